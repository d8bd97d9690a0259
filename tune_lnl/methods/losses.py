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


def pencil_lc_le(pred_logits: torch.Tensor, log_yd: torch.Tensor, beta: float = 0.0,
                 class_mean: bool = False) -> torch.Tensor:
    """``lc + beta * le`` in one pass over the classes, given ``log_yd = log_softmax(y~)``
    (computed once per batch and shared by the networks):

        lc + beta le = sum_j p_j (log p_j - log y_d_j) - beta sum_j p_j log p_j
                     = sum_j p_j ((1 - beta) log p_j - log y_d_j).

    ``beta = 0`` is ``lc`` alone. Same value as ``pencil_lc(...) + beta * pencil_le(...)``."""
    logp = F.log_softmax(pred_logits, dim=1)
    inner = (logp - log_yd) if beta == 0.0 else (logp * (1.0 - beta)).sub_(log_yd)
    out = torch.linalg.vecdot(logp.exp(), inner, dim=1)  # sum_j p_j inner_j
    return out / pred_logits.shape[1] if class_mean else out


def mae(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """MAE as in the IMAE paper: ``||onehot - p||_1 = 2 (1 - p_y)``, with
    ``p_y = exp(-CE)``: ``2 (1 - exp(-CE)) = -2 expm1(-CE)`` (one fused cross-entropy op)."""
    return -2.0 * torch.expm1(-cross_entropy(logits, labels))


def gce(logits: torch.Tensor, labels: torch.Tensor, q: float = 0.7) -> torch.Tensor:
    """Generalized cross entropy ``(1 - p_y^q) / q`` (Zhang & Sabuncu 2018), via
    ``log p_y = -CE``: ``(1 - exp(-q CE)) / q = -expm1(-q CE) / q``."""
    return torch.expm1(cross_entropy(logits, labels) * -q) / -q


def rce(logits: torch.Tensor, labels: torch.Tensor, A: float = -4.0) -> torch.Tensor:
    """Reverse cross entropy ``-sum_k p_k log q_k`` of the prediction ``p`` against the one-hot
    label ``q`` (Wang et al., ICCV 2019, Eq. 5; the passive term of Ma et al., ICML 2020): ``log q_y
    = 0`` and ``log 0`` is clipped to ``A < 0``, so ``RCE = -A sum_{k != y} p_k = -A (1 - p_y)``,
    via ``p_y = exp(-CE)``: ``A expm1(-CE)`` (one fused cross-entropy op, like :func:`mae`).
    Used by ``sce`` and ``nce_rce``. (The official codes clip ``q`` at 1e-4, i.e. ``A = ln 1e-4
    = -9.21``; the SCE paper's text sets ``A = -4``.)"""
    return torch.expm1(-cross_entropy(logits, labels)) * float(A)


class _IMAE(torch.autograd.Function):
    """Forward: MAE. Backward (IMAE paper Eq. 21-22): MAE's gradient w.r.t. the logits,
    rescaled so that each sample's L1 norm is ``w = exp(T p_y (1 - p_y))``.

    MAE's gradient (Eq. 18) is ``2 p_y (p - onehot)`` with L1 norm ``4 p_y (1 - p_y)`` (Eq. 20),
    so its direction is ``(p - onehot) / (2 (1 - p_y))``: ``-1/2`` at ``y`` and
    ``p_j / (2 sum_{k != y} p_k)`` elsewhere, i.e. half the softmax over the OTHER logits, which
    stays finite for ``p_y`` at 0 or 1 (no division by ``1 - p_y``)."""

    @staticmethod
    def forward(ctx, logits, labels, T):
        p_y = torch.exp(-cross_entropy(logits, labels))
        ctx.save_for_backward(logits, labels, p_y)
        ctx.T = T
        return (1.0 - p_y).mul_(2.0)  # MAE, Eq. 16

    @staticmethod
    def backward(ctx, grad_out):
        logits, labels, p_y = ctx.saved_tensors
        onehot = F.one_hot(labels, logits.shape[1]).bool()
        others = F.softmax(logits.masked_fill(onehot, float("-inf")), dim=1)  # softmax over j != y
        direction = others.masked_fill_(onehot, -1.0)  # (without the 1/2, folded into the scale)
        weight = torch.exp((ctx.T * p_y) * (1.0 - p_y))  # Eq. 21
        return (grad_out * weight * 0.5).unsqueeze(1) * direction, None, None  # Eq. 22


def imae(logits: torch.Tensor, labels: torch.Tensor, T: float) -> torch.Tensor:
    return _IMAE.apply(logits, labels, float(T))


def symmetric_kl(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """``KL(p_a || p_b) + KL(p_b || p_a)`` per sample (MLC paper Eq. 1; JoCoR's co-regularization)."""
    return symmetric_kl_log(F.log_softmax(logits_a, dim=1), F.log_softmax(logits_b, dim=1))


def symmetric_kl_log(log_pa: torch.Tensor, log_pb: torch.Tensor) -> torch.Tensor:
    """:func:`symmetric_kl` from log-probabilities, as one sum over the classes:
    ``sum_j p_a_j (log p_a_j - log p_b_j) + sum_j p_b_j (log p_b_j - log p_a_j)
    = sum_j (p_a_j - p_b_j) (log p_a_j - log p_b_j)``."""
    return torch.linalg.vecdot(log_pa.exp() - log_pb.exp(), log_pa - log_pb, dim=1)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``-sum_c t_c log softmax(z)_c`` per sample, ``targets`` a distribution per row (mixup's mixed
    labels, MixMatch's refined and guessed ones; torch's cross entropy with probability targets, at
    least float32, also under bf16 autocast)."""
    z = logits if logits.dtype == torch.float64 else logits.float()
    return F.cross_entropy(z, targets.to(z.dtype), reduction="none")
