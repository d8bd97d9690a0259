"""ELR (Liu, Niles-Weed, Razavian & Fernandez-Granda, "Early-Learning Regularization Prevents
Memorization of Noisy Labels", NeurIPS 2020): cross-entropy plus a regulariser that keeps the
prediction close to a running average of the network's own earlier predictions, which are right on
the mislabelled samples during the early-learning phase. ELR only (one network, no mixup, no weight
averaging: ELR+ is another method).

Each training sample ``i`` owns a target ``t_i`` (a row of the table ``target``, zeros at the start,
as in the official code). For a batch with logits ``z`` and ``p = softmax(z)``:

* target, temporal ensembling (paper Sec. 4.1, the update after Eq. 6 / Lemma 4.2's setting):
  ``t_i <- beta t_i + (1 - beta) p~_i`` with ``p~`` the prediction clamped to ``[1e-4, 1 - 1e-4]``,
  renormalised to sum 1 and detached (the official code's exact form), updated BEFORE the loss of
  the same step, which uses the new rows;
* loss (paper Sec. 4.2, the ELR objective): ``L = CE(z, y) + lambda log(1 - <p^, t_i>)`` averaged over
  the batch, ``p^`` the clamped (not renormalised) prediction, gradient through ``p^`` only.

Its gradient w.r.t. the logits (Lemma 4.2): ``d/dz_c lambda log(1 - <p, t>) = lambda p_c (<p, t> - t_c)
/ (1 - <p, t>)``: negative where ``t_c`` exceeds the p-weighted mean of ``t``, so a descent step raises
those logits: ``p`` moves towards ``t`` (checked by hand in the tests).

Defaults: the paper's / official code's CIFAR-10 values beta 0.7, lambda 3 (CIFAR-100: 0.9 and 7;
ELR/config_cifar10.json and config_cifar100.json of github shengliu66/ELR). The optimisation
defaults are the paper's CIFAR-10 ones too (SGD momentum 0.9, weight decay 1e-3, lr 0.02, batch 128,
120 epochs; search_spaces/elr_cifar10.yaml). What differs from it: the paper divides lr by 100 at epochs 40 and
80 (the released symmetric-noise config uses cosine annealing with warm restarts instead); our
``lr_schedule: step`` divides by 10 at 50% and 75% of the epochs (60 and 90 of 120).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tune_lnl.methods.base import LossMeter, set_lr, step_lr
from tune_lnl.methods.constraints import NON_NEGATIVE, RATE
from tune_lnl.methods.hparams import Common, LrSchedule, Optimizer, hp, like
from tune_lnl.methods.losses import cross_entropy
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.methods.single_network import SingleNetwork

#: the official code's clamp of the prediction, ``[EPS, 1 - EPS]``
EPS = 1e-4


def clamped_softmax(logits: torch.Tensor) -> torch.Tensor:
    """``softmax(z)`` clamped to ``[1e-4, 1 - 1e-4]`` (at least float32, also under bf16 autocast)."""
    return F.softmax(logits if logits.dtype == torch.float64 else logits.float(), dim=1).clamp(EPS, 1.0 - EPS)


def elr_target_update(rows: torch.Tensor, logits: torch.Tensor, beta: float, clamp: bool = True) -> torch.Tensor:
    """New target rows ``beta t + (1 - beta) p~`` with ``p~`` the clamped, renormalised, detached prediction
    (``clamp=False``: the plain softmax, ELR+'s official update)."""
    z = logits.detach()
    p = clamped_softmax(z) if clamp else F.softmax(z if z.dtype == torch.float64 else z.float(), dim=1)
    return torch.add(rows * beta, p / p.sum(1, keepdim=True), alpha=1.0 - beta)


def elr_regulariser(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample ``log(1 - <p^, t>)`` ``[B]`` (``p^`` the clamped prediction; ``targets`` constant)."""
    p = clamped_softmax(logits)
    return torch.log1p(-torch.linalg.vecdot(p, targets.detach().to(p.dtype), dim=1))


def elr_loss(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor, lam: float) -> torch.Tensor:
    """Per-sample ``CE(z, y) + lambda log(1 - <p^, t>)`` ``[B]`` (``p^`` clamped; ``targets`` constant)."""
    reg = elr_regulariser(logits, targets)
    return cross_entropy(logits, labels).to(reg.dtype) + lam * reg


class ELR(SingleNetwork):
    """ELR (Liu et al., NeurIPS 2020): CE + lambda log(1 - <p, t>) with per-sample temporal-ensembling targets."""
    name = "elr"
    tables = ("target",)  # the per-sample targets t are checkpointed with the network

    @dataclass(frozen=True)
    class Hyper(SingleNetwork.Hyper):
        """ELR's two and the paper's CIFAR-10 optimisation (module docstring)."""
        epochs: int = like(Common, "epochs", 120, "training epochs (paper, CIFAR-10: 120)")
        lr: float = like(Common, "lr", 0.02, "learning rate (paper, CIFAR-10: 0.02)")
        optimizer: str = like(Optimizer, "optimizer", "sgd", "adam or sgd (paper: SGD, momentum 0.9)")
        weight_decay: float = like(Optimizer, "weight_decay", 1e-3, "L2 weight decay (paper, CIFAR-10: 1e-3)")
        lr_schedule: str = like(LrSchedule, "lr_schedule", "step", "constant, or step (lr / 10 at 50% and 75%; "
                                "the paper: lr / 100 at epochs 40 and 80)")
        beta: float = hp(0.7, "momentum of the temporal-ensembling target t (paper: CIFAR-10 0.7, CIFAR-100 0.9)",
                         RATE)
        lambda_: float = hp(3.0, "weight of the regulariser log(1 - <p, t>) (paper: CIFAR-10 3, CIFAR-100 7)",
                            NON_NEGATIVE, key="lambda")

    def loss(self, logits, labels):
        """Not used by :meth:`train_epoch` (the loss needs the batch's targets): plain cross-entropy."""
        return cross_entropy(logits, labels)

    def build(self) -> None:
        super().build()  # the network, its optimizer
        self.target = torch.zeros(self.data.n_train, self.data.num_classes, device=self.device)

    def train_epoch(self) -> dict:
        lr = step_lr(self.epoch, self.hp)
        set_lr(self.opt, lr)
        beta, lam = float(self.hp.beta), float(self.hp.lambda_)
        meter = LossMeter(self.device)
        for idx, x, noisy in self.train_batches():
            logits = self.net(x)
            rows = elr_target_update(self.target.index_select(0, idx), logits, beta)
            self.target.index_copy_(0, idx, rows)
            loss = elr_loss(logits, noisy, rows, lam).mean()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            meter.add(loss)
        return {"train_loss": meter.mean, "lr": lr, **self.label_correction(self.target)}


class ELRTrainable(MethodTrainable):
    method_cls = ELR
