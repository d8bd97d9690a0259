"""SOP (Liu, Zhu, Qu & You, "Robust Training under Label Noise by Over-parameterization", ICML 2022):
the label noise of each training sample is modelled by a sparse over-parameterised term that
gradient descent with small initialisation keeps sparse, and separated from the network's output.

Each training sample ``i`` owns ``u_i`` and ``v_i`` (tables ``u`` ``[N, 1]`` and ``v`` ``[N, C]``, drawn
from N(0, init_std^2), the official code's 1e-8). The noise term (paper Eq. 4; entries clamped to
[0, 1] as in the official code) is

    s_i = u_i^2 y_i - v_i^2 (1 - y_i),      y_i the one-hot noisy label.

(The paper's ``u_i`` is a vector of R^C, but ``u_i * u_i * y_i`` only ever reads its label entry, and no
other entry gets a gradient; the official code, like ours, keeps that one entry.)
For a batch with ``p = softmax(z)``:

* ``q = clamp(normalise_1(clamp(p + s_i, 1e-4)), 1e-4, 1)`` and ``L_CE = -sum_c y_c log q_c`` (Eq. 5 with the
  official code's clamping and L1 normalisation);
* ``L_MSE = ||onehot(argmax z) + s_i - y_i||^2`` (the squared loss Sec. 3 uses for ``u``);
* ``ratio_balance * (-(1/C) sum_c log clamp(mean_batch q_c, 1e-4, 1))``: SOP+'s class-balance term
  (its KL to the uniform prior up to a constant); 0 is plain SOP.

The loss is the batch mean of ``L_CE + L_MSE`` plus the balance term. Which variables each part trains
(``variant``): ``official`` (the released code, github shengliu66/SOP model/loss.py): ``v`` is detached
inside ``q`` (the network and ``u`` learn from ``L_CE`` and the balance term; ``u`` and ``v`` from
``L_MSE``). ``paper``: Sec. 3's split as we read it (the text was not at hand to quote), the
network and ``v`` on the cross-entropy, ``u`` on the squared loss (``u`` detached inside ``q``,
``v`` detached inside ``L_MSE``). The README of the code says it was
changed "for better delivery after camera ready": the published numbers may come from either.

``u`` and ``v`` have their own plain SGD (the official ``optimizer_overparametrization``: momentum 0,
weight decay 0, constant learning rates ``lr_u`` and ``lr_v``), applied to the batch's rows after the
network's step; with no momentum the SGD has no state: the tables are all of it.

``ratio_consistency`` (SOP+'s KL between the predictions of a weak and a strong view) is declared here with 0
as its only value: plain SOP trains on one view. SOP+ is the method ``sop_plus`` (trainables/sop_plus.py),
which owns it.

Defaults: plain SOP on CIFAR-10 with ResNet-34 (the values of noisypy's reproduction config
sop_cifar10_clean; the paper's Table A.1 itself was not at hand): lr_u 10, lr_v 10. The network's
optimisation defaults are the paper's too (SGD momentum 0.9, weight decay 5e-4, lr 0.02, batch 128,
120 epochs, lr / 10 at epochs 40 and 80; search_spaces/sop_cifar10.yaml). What differs from it: our
``lr_schedule: step`` divides by 10 at 50% and 75% (60 and 90). CIFAR-100: lr_u 1, lr_v 10 (symmetric noise; the code's
README: lr_u 0.1, lr_v 100 for asymmetric); SOP+: ratio_balance 0.1, ratio_consistency 0.9
(config_cifar100.json).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tune_lnl.methods.base import LossMeter, set_lr, step_lr
from tune_lnl.methods.constraints import NON_NEGATIVE, OneOf
from tune_lnl.methods.hparams import Common, LrSchedule, Optimizer, hp, like
from tune_lnl.methods.losses import cross_entropy
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.methods.single_network import SingleNetwork

#: the official code's clamp floor
EPS = 1e-4
VARIANTS = ("official", "paper")


def sop_loss(logits: torch.Tensor, labels: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
             ratio_balance: float = 0.0, variant: str = "official") -> torch.Tensor:
    """SOP's batch loss (a scalar) for ``logits`` ``[B, C]``, noisy ``labels`` ``[B]`` and the batch's rows
    ``u`` ``[B, 1]``, ``v`` ``[B, C]`` (see the module docstring for which part trains what)."""
    c = logits.shape[1]
    z = logits if logits.dtype == torch.float64 else logits.float()  # at least float32 (bf16 autocast)
    y = F.one_hot(labels, c).to(z.dtype)
    us = (u * u * y).clamp(0.0, 1.0)           # u_i^2 y_i
    vs = (v * v * (1.0 - y)).clamp(0.0, 1.0)   # v_i^2 (1 - y_i)
    paper = variant == "paper"
    q = F.softmax(z, dim=1) + (us.detach() if paper else us) - (vs if paper else vs.detach())
    q = q.clamp_min(EPS)
    q = (q / q.sum(1, keepdim=True).clamp_min(EPS)).clamp(EPS, 1.0)
    ce = -(y * q.log()).sum(1)
    hard = F.one_hot(logits.detach().argmax(1), c).to(z.dtype)
    mse = (hard + us - (vs.detach() if paper else vs) - y).square().sum(1)
    loss = (ce + mse).mean()
    if ratio_balance > 0:
        avg = q.mean(0).clamp(EPS, 1.0)
        loss = loss + ratio_balance * -avg.log().mean()  # -(1/C) sum_c log mean_b q_c
    return loss


class SOP(SingleNetwork):
    """SOP (Liu et al., ICML 2022): per-sample sparse over-parameterised noise u^2 y - v^2 (1 - y)."""
    name = "sop"
    tables = ("u", "v")  # the per-sample noise parameters are checkpointed with the network

    @dataclass(frozen=True)
    class Hyper(SingleNetwork.Hyper):
        """SOP's own and the paper's CIFAR-10 optimisation (module docstring)."""
        epochs: int = like(Common, "epochs", 120, "training epochs (paper, CIFAR-10: 120)")
        lr: float = like(Common, "lr", 0.02, "learning rate (paper, CIFAR-10: 0.02)")
        optimizer: str = like(Optimizer, "optimizer", "sgd", "adam or sgd (paper: SGD, momentum 0.9)")
        weight_decay: float = like(Optimizer, "weight_decay", 5e-4, "L2 weight decay (paper, CIFAR-10: 5e-4)")
        lr_schedule: str = like(LrSchedule, "lr_schedule", "step", "constant, or step (lr / 10 at 50% and 75%; "
                                "the paper: at epochs 40 and 80)")
        lr_u: float = hp(10.0, "SGD learning rate of u (paper: CIFAR-10 10, CIFAR-100 1)", NON_NEGATIVE)
        lr_v: float = hp(10.0, "SGD learning rate of v (paper: CIFAR-10 10, CIFAR-100 10; CIFAR-100 asymmetric 100)",
                         NON_NEGATIVE)
        init_std: float = hp(1e-8, "standard deviation of the N(0, std^2) init of u and v (official: 1e-8)",
                             NON_NEGATIVE)
        ratio_balance: float = hp(0.0, "weight of SOP+'s class-balance term (plain SOP: 0; SOP+: 0.1)",
                                  NON_NEGATIVE)
        ratio_consistency: float = hp(0.0, "SOP+'s two-view consistency weight: only 0 here (plain SOP, one "
                                           "view); SOP+ is the method sop_plus", OneOf((0.0,)))
        variant: str = hp("official", "official (v trained by the squared loss only, u by both; the released "
                                      "code) or paper (network and v by CE, u by the squared loss)",
                          OneOf(VARIANTS))

    def loss(self, logits, labels):
        """Not used by :meth:`train_epoch` (the loss needs the batch's u, v): plain cross-entropy."""
        return cross_entropy(logits, labels)

    def build(self) -> None:
        super().build()  # the network, its optimizer (the global RNG is seeded: the draws are the seed's)
        n, c, std = self.data.n_train, self.data.num_classes, float(self.hp.init_std)
        self.u = torch.randn(n, 1).mul_(std).to(self.device)
        self.v = torch.randn(n, c).mul_(std).to(self.device)

    def train_epoch(self) -> dict:
        lr = step_lr(self.epoch, self.hp)
        set_lr(self.opt, lr)
        meter = LossMeter(self.device)
        for idx, x, noisy in self.train_batches():
            meter.add(self.sop_step(idx, self.net(x), noisy))
        return {"train_loss": meter.mean, "lr": lr, **self.noise_stats()}

    def sop_step(self, idx: torch.Tensor, logits: torch.Tensor, noisy: torch.Tensor,
                 extra: torch.Tensor | None = None) -> torch.Tensor:
        """One step on a batch: :func:`sop_loss` of ``logits`` (plus ``extra``, a term of the same graph:
        SOP+'s consistency), the network's optimizer step, then plain SGD on the batch's rows of ``u`` and
        ``v`` (momentum 0, weight decay 0). Returns the loss."""
        hp_ = self.hp
        u = self.u.index_select(0, idx).requires_grad_(True)
        v = self.v.index_select(0, idx).requires_grad_(True)
        loss = sop_loss(logits, noisy, u, v, float(hp_.ratio_balance), hp_.variant)
        if extra is not None:
            loss = loss + extra
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            self.u.index_copy_(0, idx, u.sub_(u.grad, alpha=float(hp_.lr_u)))
            self.v.index_copy_(0, idx, v.sub_(v.grad, alpha=float(hp_.lr_v)))
        return loss

    def noise_stats(self) -> dict:
        """Analytics (never select): the mean of the clamped u_i^2 (the weight SOP moves to the label)."""
        return {"u2_mean": float((self.u * self.u).clamp(0.0, 1.0).mean())}


class SOPTrainable(MethodTrainable):
    method_cls = SOP
