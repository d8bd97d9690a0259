"""MLC: Mutual Label Correction (Liu et al., "Co-Correcting: Noise-tolerant Medical Image
Classification via mutual Label Correction" / the MLC paper in shared/papers), as a plain
PyTorch object (:class:`MLC`) plus its Ray Tune adapter (:class:`MLCTrainable`).

Two networks A and B train in three stages (epoch ``e``, 0-based):

1. ``e < stage1``: co-teaching. Each network ranks the batch by its own loss against the noisy
   label and keeps the ``1 - forget_rate(e)`` smallest; its PEER is trained on that selection.
2. ``stage1 <= e < stage2``: the same exchange on the PENCIL loss (Eq. 8) against the label
   distribution ``y_d = softmax(y~)`` (Eq. 5); after the network step the label table ``y~`` of
   every sample of the batch moves against the SUM of both networks' gradients (Eq. 7).
3. ``e >= stage2``: the same exchange on ``lc`` alone, label table frozen.

Every network loss adds the co-regularization ``xi * ld``, ``ld = dist ** mu`` (Eq. 2-3).

``variant: paper`` follows the paper's equations. ``variant: official`` (the default: Table I's
lambdas are in its units, see docs/reproduction.md section 5) reproduces what the
authors' published code computes (see shared/reference/mlc-official-code-notes.md): losses on
``softmax(softmax(logits))``, ``lo`` on ``softmax(softmax(y~))``, ``lc``/``le`` averaged over
classes, ``dist`` as the sum of per-tensor mean squared differences, network A receiving the
gradient of ``xi * ld`` twice, and the step-wise lr decay over the last stage.

Speed: the network losses go through autograd; two gradients are computed in closed form
instead, each checked against autograd in tests/unit/builtin_methods/test_mlc_math.py: the label step's
``dL1/dy~ + dL2/dy~`` (:func:`label_grad`, Eq. 7) and the gradient of ``xi * ld``
(:func:`add_co_regularization_grad`, Eq. 2-3), added to the networks' gradients after the
backward pass of the selection losses (fused ``_foreach`` ops over the parameter lists).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tune_lnl.methods import hparams
from tune_lnl.methods.base import LossMeter
from tune_lnl.methods.constraints import NON_POSITIVE, POSITIVE, OneOf
from tune_lnl.methods.label_table import LabelTable, check_stages, init_table, stage_lr, stage_of
from tune_lnl.methods.losses import cross_entropy, pencil_lc, pencil_lc_le, pencil_lo
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.methods.selection import cross_update, forget_rate_at, small_loss_selection
from tune_lnl.methods.two_networks import SmallLoss, TwoNetworks

__all__ = ["MLC", "MLCTrainable", "PAPER_MNIST", "add_co_regularization_grad", "co_regularization",
           "forget_rate_at", "label_grad", "label_loss", "label_terms", "lr_at", "network_loss",
           "param_distance", "per_sample_loss",
           "small_loss_selection"]  # forget_rate_at, small_loss_selection: re-exported for the tests

#: The paper's MNIST settings: Table I label-update steps, forget rate = noise rate, stage1 50
#: for pair-0.45 (published code), everything else from Sec. V-A.3.
PAPER_MNIST = {
    "common": {"epochs": 320, "stage1": 30, "stage2": 140, "lr": 1e-3, "lr2": 1e-4, "batch_size": 128,
               "alpha": 0.4, "beta": 0.1, "K": 10.0, "mu": -1.0, "xi": 0.01, "num_gradual": 10},
    "sym-0.2": {"lambda": 1000.0, "forget_rate": 0.2},
    "sym-0.4": {"lambda": 3000.0, "forget_rate": 0.4},
    "sym-0.8": {"lambda": 3000.0, "forget_rate": 0.8},
    "pair-0.2": {"lambda": 2000.0, "forget_rate": 0.2},
    "pair-0.45": {"lambda": 2500.0, "forget_rate": 0.45, "stage1": 50},
}


def lr_at(epoch: int, hp) -> float:
    """paper: ``lr`` before stage2, then ``lr2``. official: ``lr`` before stage2, then ``lr2``,
    ``lr2/10``, ``lr2/100`` over successive thirds of the remaining epochs."""
    if epoch < hp.stage2 or hp.variant == "paper":
        return stage_lr(epoch, hp)
    rest = max(1, hp.epochs - hp.stage2)
    return hp.lr2 / 10 ** min(2, (epoch - hp.stage2) * 3 // rest)


def _diffs(net_a: torch.nn.Module, net_b: torch.nn.Module, detach_b: bool) -> list[torch.Tensor]:
    """``theta_1t - theta_2t`` for every parameter tensor ``t``, one fused (``_foreach``) op."""
    params_b = [p.detach() for p in net_b.parameters()] if detach_b else list(net_b.parameters())
    return torch._foreach_sub(list(net_a.parameters()), params_b)


def param_distance(net_a: torch.nn.Module, net_b: torch.nn.Module, variant: str,
                   detach_b: bool = False) -> torch.Tensor:
    """Eq. 2, ``dist = ||theta_1 - theta_2||_2`` over the whole parameter vector (paper); the
    published code's ``sum_t mean((theta_1t - theta_2t)^2)`` over parameter tensors (official).

    Both from the per-tensor norms ``n_t = ||theta_1t - theta_2t||_2`` (fused ``_foreach`` ops
    instead of a Python loop of small ones): ``dist = ||(n_t)_t||_2`` (paper) and
    ``sum_t n_t^2 / size_t`` (official)."""
    return _distance(_diffs(net_a, net_b, detach_b), variant)


def _distance(diffs: list[torch.Tensor], variant: str) -> torch.Tensor:
    """:func:`param_distance` from the per-tensor differences."""
    norms = torch.stack(torch._foreach_norm(diffs))
    if variant == "paper":
        return torch.linalg.vector_norm(norms)
    sizes = torch.tensor([d.numel() for d in diffs], dtype=norms.dtype, device=norms.device)
    return (norms.square() / sizes).sum()


def co_regularization(net_a, net_b, mu: float, xi: float, variant: str) -> torch.Tensor:
    """``xi * ld`` with ``ld = dist ** mu`` (Eq. 3), as ONE term whose backward gives each
    network the gradient of its own loss's ``xi * ld`` (paper). official: A gets it twice."""
    ld = param_distance(net_a, net_b, variant).clamp_min(1e-12) ** mu
    if variant == "paper":
        return xi * ld
    # published code: the xi*ld gradient reaches A twice, B once
    ld_a_only = param_distance(net_a, net_b, variant, detach_b=True).clamp_min(1e-12) ** mu
    return xi * (ld + ld_a_only)


@torch.no_grad()
def add_co_regularization_grad(net_a, net_b, mu: float, xi: float, variant: str) -> torch.Tensor:
    """Adds the gradient of :func:`co_regularization` to the networks' ``.grad`` in closed form
    (fused ``_foreach`` ops; no autograd graph over the parameters) and returns its value.

    paper (Eq. 2-3): ``d(xi * dist^mu) / d theta_1 = xi mu dist^(mu-1) (theta_1 - theta_2) / dist
    = xi mu dist^(mu-2) (theta_1 - theta_2)``, and the negative for ``theta_2``.
    official: ``dist = S = sum_t ||theta_1t - theta_2t||^2 / size_t``, ``d(xi S^mu) / d theta_1t
    = xi mu S^(mu-1) 2 (theta_1t - theta_2t) / size_t``; A receives it twice, B once (negative).
    Both as the autograd of ``co_regularization`` computes them, the ``clamp_min(1e-12)`` included
    (no gradient below it). Tests compare the two."""
    grads_a, grads_b = _grads(list(net_a.parameters())), _grads(list(net_b.parameters()))
    diffs = _diffs(net_a, net_b, detach_b=False)
    dist = _distance(diffs, variant)
    on_cpu = dist.device.type == "cpu"  # a host copy of the coefficient costs no sync there
    if variant == "paper":
        clamped = dist.clamp_min(1e-12)
        coef = torch.where(dist >= 1e-12, (xi * mu) * clamped ** (mu - 2.0), 0.0)
        if on_cpu:  # coef * diff folded into the accumulation: one pass less over the parameters
            c = float(coef)
            torch._foreach_add_(grads_a, diffs, alpha=c)
            torch._foreach_add_(grads_b, diffs, alpha=-c)
        else:
            torch._foreach_mul_(diffs, coef)
            torch._foreach_add_(grads_a, diffs)
            torch._foreach_sub_(grads_b, diffs)
        return xi * clamped ** mu
    sizes = [d.numel() for d in diffs]
    clamped = dist.clamp_min(1e-12)
    coef = torch.where(dist >= 1e-12, (xi * mu) * clamped ** (mu - 1.0), 0.0)
    if on_cpu:
        c = float(coef)
        torch._foreach_mul_(diffs, [2.0 * c / n for n in sizes])
    else:
        torch._foreach_mul_(diffs, [2.0 / n for n in sizes])
        torch._foreach_mul_(diffs, coef)
    torch._foreach_add_(grads_a, diffs, alpha=2.0)  # published code: A gets the gradient twice
    torch._foreach_sub_(grads_b, diffs)
    return 2.0 * xi * clamped ** mu


def _grads(params: list[torch.Tensor]) -> list[torch.Tensor]:
    """The ``.grad`` of every parameter, zeros created where backward left none."""
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    return [p.grad for p in params]


def label_terms(ytilde: torch.Tensor, noisy: torch.Tensor, hp) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's ``y~`` terms of Eq. 8, shared by both networks (``y~`` treated as fixed):
    ``log y_d = log_softmax(y~)`` (Eq. 5) and ``alpha * lo(y^, y_d)``, ``lo = -log y_d[y]``
    (paper; :func:`~tune_lnl.methods.losses.pencil_lo` without recomputing ``log y_d``)."""
    log_yd = F.log_softmax(ytilde, dim=1)
    if hp.variant == "official":
        lo = pencil_lo(F.softmax(ytilde, dim=1), noisy)
    else:
        lo = F.nll_loss(log_yd, noisy, reduction="none")
    return log_yd, hp.alpha * lo


def network_loss(logits: torch.Tensor, terms, noisy: torch.Tensor, stage: int, hp) -> torch.Tensor:
    """Per-sample network loss of the stage (Eq. 8 without ``xi*ld``); ``terms``: the batch's
    :func:`label_terms` (unused in stage 1)."""
    official = hp.variant == "official"
    out = F.softmax(logits, dim=1) if official else logits  # official: the code's double softmax
    if stage == 1:
        return cross_entropy(out, noisy)
    log_yd, alpha_lo = terms
    if stage == 3:
        return pencil_lc_le(out, log_yd, class_mean=official)       # lc(p, y_d)
    # lc(p, y_d) + beta * le(p), then + alpha * lo(y^, y_d): Eq. 8
    return pencil_lc_le(out, log_yd, hp.beta, class_mean=official) + alpha_lo


def per_sample_loss(logits: torch.Tensor, ytilde: torch.Tensor, noisy: torch.Tensor, stage: int,
                    hp) -> torch.Tensor:
    """Per-sample network loss of the stage (Eq. 8 without ``xi*ld``), ``y~`` treated as fixed:
    ``lc + alpha * lo + beta * le`` (stage 2), ``lc`` (stage 3), CE on the noisy label (stage 1)."""
    terms = label_terms(ytilde, noisy, hp) if stage != 1 else None
    return network_loss(logits, terms, noisy, stage, hp)


def label_loss(logits_a: torch.Tensor, logits_b: torch.Tensor, ytilde: torch.Tensor,
               noisy: torch.Tensor, hp) -> torch.Tensor:
    """``L1 + L2`` as a function of ``y~`` (detached logits), batch-mean: its gradient w.r.t.
    ``y~`` is ``dL1/dy~ + dL2/dy~`` of Eq. 7 (``le`` and ``xi*ld`` do not depend on ``y~``).
    The published code uses the raw logits here (single softmax). Training uses the closed form
    :func:`label_grad` of this gradient; this is its autograd reference."""
    official = hp.variant == "official"
    lo_in = F.softmax(ytilde, dim=1) if official else ytilde
    lo = pencil_lo(lo_in, noisy)
    total = 0.0
    for logits in (logits_a, logits_b):
        total = total + (pencil_lc(logits.detach(), ytilde, class_mean=official) + hp.alpha * lo).mean()
    return total


def label_grad(logits_a: torch.Tensor, logits_b: torch.Tensor, ytilde: torch.Tensor,
               noisy: torch.Tensor, hp) -> torch.Tensor:
    """``dL1/dy~ + dL2/dy~`` of Eq. 7, i.e. the gradient of :func:`label_loss`, in closed form.

    With ``y_d = softmax(y~)`` (Eq. 5), ``p = softmax(logits)`` of one network (no gradient into
    the networks), ``e_y`` the noisy one-hot and the batch mean (``1 / B``):

    * ``lc = sum_j p_j (log p_j - log y_d_j)``: ``d lc / d y~_k = -sum_j p_j (delta_jk - y_d_k)
      = y_d_k - p_k`` (``sum_j p_j = 1``);
    * paper ``lo = -log y_d_y``: ``d lo / d y~_k = y_d_k - e_y_k``;

    so ``dL/dy~ = ((y_d - p_A) + (y_d - p_B) + 2 alpha (y_d - e_y)) / B`` (``lo`` is in both
    networks' losses). official: ``lc`` is divided by ``C`` and ``lo = CE(s, y)`` takes
    ``s = y_d`` as logits: with ``r = softmax(s)`` and ``u = r - e_y``, ``d lo / d s = u`` and
    ``d s_m / d y~_k = s_m (delta_mk - s_k)`` give ``d lo / d y~ = s * (u - <s, u>)``, so
    ``dL/dy~ = ((s - p_A) / C + (s - p_B) / C + 2 alpha s * (u - <s, u>)) / B``.
    Tests compare it with autograd on :func:`label_loss` and with hand computations."""
    b, c = ytilde.shape
    alpha = hp.alpha
    yd = F.softmax(ytilde, dim=1)
    p_sum = F.softmax(logits_a.detach(), dim=1) + F.softmax(logits_b.detach(), dim=1)
    onehot = F.one_hot(noisy, c).to(yd.dtype)
    if hp.variant == "official":
        u = F.softmax(yd, dim=1) - onehot
        d_lo = yd * (u - torch.linalg.vecdot(yd, u, dim=1).unsqueeze(1))
        return torch.add(2.0 * yd - p_sum, d_lo, alpha=2.0 * alpha * c).div_(b * c)
    # (2 y_d - p_A - p_B + 2 alpha (y_d - e_y)) / B  =  -(p_sum - (2 + 2 alpha) y_d + 2 alpha e_y) / B
    return torch.add(p_sum, yd, alpha=-(2.0 + 2.0 * alpha)).add_(onehot, alpha=2.0 * alpha).div_(-b)


class MLC(TwoNetworks):
    """MLC, mutual label correction (Liu et al.): co-teaching, then a label table both networks correct."""
    name = "mlc"
    tables = ("ytilde",)  # the label table is checkpointed with the networks

    @dataclass(frozen=True)
    class Hyper(LabelTable, SmallLoss, hparams.Common):
        """The paper's MNIST settings (:data:`PAPER_MNIST` common values: Sec. V-A.3); Adam, no lr
        schedule besides the stages (the lr is stage-wise: :func:`lr_at`)."""
        #: ``official`` by default: Table I's lambdas (the defaults) were tuned with the published code,
        #: and at the paper's budget only that math reproduces the paper (docs/reproduction.md section 5)
        variant: str = hparams.hp("official", "paper (the paper's equations) or official (the published code's "
                                              "math, in which Table I's lambdas were tuned)",
                                  OneOf(("paper", "official")))
        epochs: int = hparams.like(hparams.Common, "epochs", 320)
        mu: float = hparams.hp(-1.0, "exponent of the co-regularization ld = dist^mu (Eq. 3): < 0 separates the "
                                     "networks, 0 switches it off", NON_POSITIVE)
        xi: float = hparams.hp(0.01, "weight of the co-regularization xi * ld (Eq. 3)", POSITIVE)

    @classmethod
    def check_config(cls, hp):
        return check_stages(hp)

    def build(self) -> None:
        super().build()  # networks A and B, their optimizers, the augmentation
        # Eq. 4: y~ = K * onehot(noisy label), one row per training sample (dataset index)
        self.ytilde = init_table(self.data.train_noisy, self.data.num_classes, self.hp.K)

    def train_epoch(self) -> dict:
        hp, e = self.hp, self.epoch
        stage = stage_of(e, hp)
        rate = forget_rate_at(e, hp.forget_rate, hp.num_gradual)
        lr = lr_at(e, hp)
        self.set_lr(lr)
        meter = LossMeter(self.device)
        picked = self.selection_meter()  # analytics: precision of the small-loss selections
        for idx, x, noisy in self.train_batches():
            ytilde = self.ytilde.index_select(0, idx)  # this batch's rows (a copy)
            logits_a, logits_b = self.net_a(x), self.net_b(x)
            terms = label_terms(ytilde, noisy, hp) if stage != 1 else None  # shared by A and B
            loss_a = network_loss(logits_a, terms, noisy, stage, hp)
            loss_b = network_loss(logits_b, terms, noisy, stage, hp)
            # co-teaching exchange: each network is trained on its PEER's small-loss selection
            train_a, train_b, keep_by_a, keep_by_b = cross_update(loss_a, loss_b, rate)
            picked.add(idx, keep_by_a, keep_by_b)
            # each network's loss + xi * ld (Eq. 3): the co-regularization's gradient is added in
            # closed form after the backward pass of the selection losses (same step as autograd
            # on train_a + train_b + co_regularization(...))
            reg = self.update_both(train_a + train_b, lambda: add_co_regularization_grad(
                self.net_a, self.net_b, hp.mu, hp.xi, hp.variant))
            total = train_a.detach() + train_b.detach() + reg
            if stage == 2:
                # Eq. 7: y~ <- y~ - lambda * (dL1/dy~ + dL2/dy~), every sample of the batch
                grad = label_grad(logits_a, logits_b, ytilde, noisy, hp)
                self.ytilde.index_copy_(0, idx, torch.add(ytilde, grad, alpha=-hp.lambda_))
            meter.add(total)
        with torch.no_grad():
            dist = float(param_distance(self.net_a, self.net_b, hp.variant))
        return {"stage": stage, "forget_rate": rate, "lr": lr, "train_loss": meter.mean, "dist": dist,
                "select_precision": picked.precision,
                **self.label_correction(self.ytilde)}  # analytics only: label_acc, _clean, _noisy



class MLCTrainable(MethodTrainable):
    method_cls = MLC
