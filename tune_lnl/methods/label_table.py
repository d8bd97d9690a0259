"""The per-sample label table ``y~`` of PENCIL and MLC, and their shared three-stage schedule.

Both methods keep one row ``y~_i`` per training sample, initialised ``K * onehot(noisy)`` (MLC
paper Eq. 4), train in three stages by 0-based epoch (1: backbone, 2: joint network and label
learning, 3: fine-tuning on the frozen table), use ``lr`` before ``stage2`` and ``lr2`` from
it on, and move the table by a plain gradient step ``y~ <- y~ - lambda * dL/dy~`` (MLC Eq. 7,
PENCIL's update). Each method writes its own loss ``L`` and the closed form of ``dL/dy~``
(``trainables.mlc.label_grad``, ``trainables.pencil.label_grad``; the tests compare both with
autograd); only the shared mechanics live here."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .constraints import NON_NEGATIVE, POSITIVE

#: the value rules of the label-table keys (PENCIL's and MLC's ``constraints`` include them)
LABEL_TABLE_CONSTRAINTS = {"K": POSITIVE, "lambda": POSITIVE, "lr2": POSITIVE, "alpha": NON_NEGATIVE,
                           "beta": NON_NEGATIVE, "stage1": NON_NEGATIVE, "stage2": NON_NEGATIVE}


def check_stages(cfg: dict) -> list[tuple[str, object]]:
    """The three stages must fit the run: ``0 <= stage1 <= stage2 <= epochs``."""
    if 0 <= cfg["stage1"] <= cfg["stage2"] <= cfg["epochs"]:
        return []
    return [("needs 0 <= stage1 <= stage2 <= epochs", {k: cfg[k] for k in ("stage1", "stage2", "epochs")})]


def init_table(noisy: torch.Tensor, num_classes: int, K: float) -> torch.Tensor:
    """MLC Eq. 4: ``y~ = K * onehot(noisy label)``, one row per training sample."""
    return K * F.one_hot(noisy, num_classes).float()


def stage_of(epoch: int, cfg: dict) -> int:
    """1 (backbone), 2 (joint network + label learning) or 3 (fine-tuning), 0-based epoch."""
    return 1 if epoch < cfg["stage1"] else (2 if epoch < cfg["stage2"] else 3)


def stage_lr(epoch: int, cfg: dict) -> float:
    """``lr`` before ``stage2``, ``lr2`` from it on (MLC paper Sec. V-A.3)."""
    return cfg["lr"] if epoch < cfg["stage2"] else cfg["lr2"]
