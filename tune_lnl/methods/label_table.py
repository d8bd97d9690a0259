"""The per-sample label table ``y~`` of PENCIL and MLC, and their shared three-stage schedule.

Both methods keep one row ``y~_i`` per training sample, initialised ``K * onehot(noisy)`` (MLC
paper Eq. 4), train in three stages by 0-based epoch (1: backbone, 2: joint network and label
learning, 3: fine-tuning on the frozen table), use ``lr`` before ``stage2`` and ``lr2`` from
it on, and move the table by a plain gradient step ``y~ <- y~ - lambda * dL/dy~`` (MLC Eq. 7,
PENCIL's update). Each method writes its own loss ``L`` and the closed form of ``dL/dy~``
(``trainables.mlc.label_grad``, ``trainables.pencil.label_grad``; the tests compare both with
autograd); only the shared mechanics live here."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .constraints import NON_NEGATIVE, POSITIVE
from .hparams import hp


@dataclass(frozen=True)
class LabelTable:
    """The hyperparameters of the label table and its three stages (PENCIL's and MLC's ``Hyper``
    derive from it; defaults: the MLC paper's MNIST setup, Sec. V-A.3)."""
    stage1: int = hp(30, "first epoch of stage 2 (joint network and label learning; 0-based)", NON_NEGATIVE)
    stage2: int = hp(140, "first epoch of stage 3 (fine-tuning on the frozen table)", NON_NEGATIVE)
    lr2: float = hp(1e-4, "learning rate from stage2 on", POSITIVE)
    alpha: float = hp(0.4, "weight of the compatibility loss lo (Eq. 8)", NON_NEGATIVE)
    beta: float = hp(0.1, "weight of the entropy loss le (Eq. 8)", NON_NEGATIVE)
    K: float = hp(10.0, "initial label table y~ = K * onehot(noisy label) (Eq. 4)", POSITIVE)
    lambda_: float = hp(1000.0, "step of the label update y~ <- y~ - lambda dL/dy~ (Eq. 6-7)", POSITIVE, key="lambda")


def check_stages(hp) -> list[tuple[str, object]]:
    """The three stages must fit the run: ``0 <= stage1 <= stage2 <= epochs`` (``hp``: a
    :class:`LabelTable` object that also has ``epochs``)."""
    if 0 <= hp.stage1 <= hp.stage2 <= hp.epochs:
        return []
    return [("needs 0 <= stage1 <= stage2 <= epochs", {"stage1": hp.stage1, "stage2": hp.stage2, "epochs": hp.epochs})]


def init_table(noisy: torch.Tensor, num_classes: int, K: float) -> torch.Tensor:
    """MLC Eq. 4: ``y~ = K * onehot(noisy label)``, one row per training sample."""
    return K * F.one_hot(noisy, num_classes).float()


def stage_of(epoch: int, hp) -> int:
    """1 (backbone), 2 (joint network + label learning) or 3 (fine-tuning), 0-based epoch."""
    return 1 if epoch < hp.stage1 else (2 if epoch < hp.stage2 else 3)


def stage_lr(epoch: int, hp) -> float:
    """``lr`` before ``stage2``, ``lr2`` from it on (MLC paper Sec. V-A.3)."""
    return hp.lr if epoch < hp.stage2 else hp.lr2
