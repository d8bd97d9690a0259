"""Per-sample loss terms shared by methods (each returns a ``[B]`` tensor; reduce outside).

PENCIL (Yi & Wu, CVPR 2019), used by MLC Eq. 8 and the PENCIL baseline, with ``p`` the
network's prediction, ``y_d = softmax(y~)`` the label distribution and ``y^`` the noisy one-hot:

* ``lc = KL(p || y_d) = sum_j p_j (log p_j - log y_d_j)``  (flipped KL: prediction first)
* ``lo = -sum_j y^_j log y_d_j``                          (compatibility with the noisy label)
* ``le = -sum_j p_j log p_j``                               (entropy of the prediction)

``class_mean=True`` divides the class sums by ``C`` (the published code's mean over N*C entries).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, labels, reduction="none")


def pencil_lc(pred_logits: torch.Tensor, ytilde: torch.Tensor, class_mean: bool = False) -> torch.Tensor:
    logp = F.log_softmax(pred_logits, dim=1)
    lc = (logp.exp() * (logp - F.log_softmax(ytilde, dim=1))).sum(1)
    return lc / pred_logits.shape[1] if class_mean else lc


def pencil_lo(ytilde: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(ytilde, noisy, reduction="none")


def pencil_le(pred_logits: torch.Tensor, class_mean: bool = False) -> torch.Tensor:
    logp = F.log_softmax(pred_logits, dim=1)
    le = -(logp.exp() * logp).sum(1)
    return le / pred_logits.shape[1] if class_mean else le
