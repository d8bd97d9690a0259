"""CORES^2, phase 1 (Hao Cheng, Zhaowei Zhu, Xingyu Li, Yifei Gong, Xing Sun, Yang Liu, "Learning with
Instance-Dependent Label Noise: A Sample Sieve Approach", ICLR 2021): ONE network trained with the
confidence-regularised cross entropy on the samples its sample sieve keeps.

Confidence regulariser (the paper's CR term, Sec. 2): with ``p = softmax(f(x))`` and ``P(Y~)`` the
prior of the noisy labels,

    l_CORES(f(x_n), y~_n) = CE(f(x_n), y~_n) - beta_t * E_{Y ~ P(Y~)} [CE(f(x_n), Y)]
                          = CE(f(x_n), y~_n) - beta_t * sum_k P(Y~ = k) * (-log p_k(x_n)),

the regulariser's ``-log p_k`` taken as ``-log(p_k + 1e-8)`` (official ``loss.py``: bounded, so the
reward for confident predictions cannot run to infinity). It pushes predictions towards
confidence, which separates clean from corrupted samples.

Sample sieve (Sec. 3): sample ``n`` is kept at epoch ``t`` (``v_{n,t} = 1``) when its regularised
loss lies below the threshold ``alpha_{n,t} = 1/K sum_k CE(f(x_n), k) + l_CR(f(x_n))``; the CR term
cancels, so the test is

    CE(f(x_n), y~_n) - 1/K sum_k -log(p_k(x_n) + 1e-8) <= 0

(official ``loss_sel <= 0``: the label's CE at most the mean CE over all labels; independent of
beta and of the prior). The batch loss is the mean of ``l_CORES`` over the kept samples (0 when
none is kept). The sieve acts from 0-based epoch ``sieve_start`` on (official: every sample is
kept while ``epoch <= 30``, so 31).

beta_t (official ``f_beta``): 0 for the first ``beta_warmup`` epochs (10), then
``np.linspace(0, beta, beta_ramp)`` over the next ``beta_ramp`` (30) epochs, then ``beta`` (2).

The prior ``P(Y~)`` (``prior: sieved``, official ``phase1.py``): the class shares of the noisy
training labels at the start; after each epoch, those of the samples the sieve did NOT drop in
it (the training labels' counts minus the dropped samples' counts). ``prior: fixed`` keeps the
training labels' shares throughout (the paper's text: "P(Y~)").

Defaults: the official CIFAR-10 phase-1 run (``phase1.py``): ResNet-34 there, SGD without
momentum or weight decay, batch 64, 100 epochs, lr 0.1 for epochs 0-49 and 0.01 from 50, each
epoch's lr divided by ``1 + beta_t`` (``adjust_learning_rate``; the script's ``--lr`` is unused).
Phase 2 of CORES^2 (semi-supervised consistency training on the sieved sets, a UDA run) is not
part of this method.

Equation numbers: the paper's text was not available to this implementation (no copy in the
shared folder or the search corpora); the equations above are the official code's
(UCSC-REAL/cores @ cf0945e, ``loss.py``: ``loss_cores``, ``f_beta``), checked number for number in
tests/unit/builtin_methods/test_cores.py.

Analytics only (never used for training or selection): each epoch's ``beta``, ``sieve_kept``
(the kept share), ``sieve_precision`` (the share of kept samples whose noisy label is clean) and
``sieve_recall`` (the share of clean-labelled samples kept), from ``train_clean``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tune_lnl.methods import hparams
from tune_lnl.methods.base import LossMeter, set_lr
from tune_lnl.methods.constraints import NON_NEGATIVE, OneOf
from tune_lnl.methods.hparams import hp, like
from tune_lnl.methods.losses import cross_entropy
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.methods.single_network import SingleNetwork

#: added to p inside the regulariser's and the sieve's logs (official loss.py)
CR_EPS = 1e-8


def beta_at(epoch: int, beta: float, warmup: int, ramp: int) -> float:
    """beta_t at 0-based ``epoch``: 0 for ``warmup`` epochs, then ``np.linspace(0, beta, ramp)``,
    then ``beta`` (official ``f_beta`` with warmup 10, ramp 30, beta 2)."""
    k = epoch - warmup
    if k < 0:
        return 0.0
    if k < ramp:
        return beta * k / (ramp - 1) if ramp > 1 else 0.0
    return float(beta)


def beta_of(epoch: int, hp) -> float:
    """beta_t of the hyperparameters ``hp`` (a ``CORES.Hyper``) at 0-based ``epoch``."""
    return beta_at(epoch, hp.beta, hp.beta_warmup, hp.beta_ramp)


def lr_of(epoch: int, hp) -> float:
    """The epoch's learning rate: ``lr``, / 10 from ``lr_drop`` on, / (1 + beta_t) when ``lr_over_beta``
    (official ``adjust_learning_rate``: ``alpha_plan[epoch] / (1 + f_beta(epoch))``)."""
    lr = hp.lr * (0.1 if epoch >= hp.lr_drop else 1.0)
    return lr / (1.0 + beta_of(epoch, hp)) if hp.lr_over_beta else lr


def neg_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """``-log(p_k + 1e-8)`` ``[B, C]``, ``p = softmax(logits)`` (in the logits' dtype)."""
    return torch.log(F.softmax(logits, dim=1) + CR_EPS).neg_()


def cores_loss(logits: torch.Tensor, labels: torch.Tensor, prior: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-sample ``CE(f(x), y~) - beta * sum_k prior_k (-log(p_k + 1e-8))`` ``[B]``."""
    ce = cross_entropy(logits, labels)
    if beta == 0.0:
        return ce
    return ce - beta * (neg_log_probs(logits) @ prior.to(logits.dtype))


def sieve_keep(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Boolean ``[B]``: the sieve keeps sample n when ``CE(f(x_n), y~_n) - mean_k -log(p_k + 1e-8) <= 0``
    (its regularised loss at most alpha_{n,t})."""
    with torch.no_grad():
        stat = cross_entropy(logits, labels) - neg_log_probs(logits).mean(1)
    return stat <= 0


class CORES(SingleNetwork):
    """CORES^2 phase 1 (Cheng et al., ICLR 2021): confidence-regularised CE and the sample sieve."""
    name = "cores"

    @dataclass(frozen=True)
    class Hyper(hparams.Optimizer, hparams.Common):
        """The official phase-1 optimizer and schedules (no inherited lr_schedule: CORES's lr
        follows beta)."""
        epochs: int = like(hparams.Common, "epochs", 100, "training epochs (official: 100)")
        batch_size: int = like(hparams.Common, "batch_size", 64, "training batch size (official: 64)")
        lr: float = like(hparams.Common, "lr", 0.1, "learning rate before lr_drop (official: 0.1)")
        optimizer: str = like(hparams.Optimizer, "optimizer", "sgd", "adam or sgd (official: sgd)")
        momentum: float = like(hparams.Optimizer, "momentum", 0.0, "SGD momentum (official: none)")
        lr_drop: int = hp(50, "0-based epoch from which lr is divided by 10 (official: 50 of 100; >= epochs: "
                              "never)", NON_NEGATIVE)
        lr_over_beta: bool = hp(True, "divide each epoch's lr by 1 + beta_t (official adjust_learning_rate)")
        beta: float = hp(2.0, "weight of the confidence regulariser after its ramp (official: 2)", NON_NEGATIVE)
        beta_warmup: int = hp(10, "epochs with beta_t = 0 (official: 10)", NON_NEGATIVE)
        beta_ramp: int = hp(30, "epochs of the linear ramp of beta_t from 0 to beta (official: 30)", NON_NEGATIVE)
        sieve_start: int = hp(31, "0-based epoch from which the sample sieve acts (official: 31; every sample "
                                  "is kept before)", NON_NEGATIVE)
        prior: str = hp("sieved", "P(Y~) of the regulariser: sieved (the kept samples' label shares of the "
                                  "previous epoch; official) or fixed (the training labels')",
                        OneOf(("sieved", "fixed")))

    def build(self) -> None:
        super().build()  # the network and its optimizer
        d = self.data
        #: the noisy training labels' class counts, and the prior P(Y~) in use (checkpointed)
        self.label_counts = torch.bincount(d.train_noisy, minlength=d.num_classes).float()
        self.prior = self.label_counts / self.label_counts.sum()

    def loss(self, logits, labels):
        """Per-sample l_CORES at this epoch's beta_t (no sieve: :meth:`train_epoch` applies it)."""
        return cores_loss(logits.float(), labels, self.prior, beta_of(self.epoch, self.hp))

    def train_epoch(self) -> dict:
        beta, lr = beta_of(self.epoch, self.hp), lr_of(self.epoch, self.hp)
        set_lr(self.opt, lr)
        sieving = self.epoch >= self.hp.sieve_start
        C = self.data.num_classes
        meter, sel = LossMeter(self.device), self.selection_meter()
        dropped = torch.zeros(C, device=self.device)
        for idx, x, noisy in self.train_batches():
            logits = self.net(x)
            with torch.autocast(self.device.type, enabled=False):  # the loss in float32
                logits = logits.float()
                per = cores_loss(logits, noisy, self.prior, beta)
                keep = sieve_keep(logits, noisy) if sieving else torch.ones_like(noisy, dtype=torch.bool)
                v = keep.float()
                loss = (per * v).sum() / v.sum().clamp_min(1.0)  # mean over the kept (0 if none)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            meter.add(loss)
            sel.add(idx, keep)  # analytics only
            if sieving:
                dropped.index_add_(0, noisy, (~keep).to(dropped.dtype))  # (no boolean indexing: no host sync)
        if sieving and self.hp.prior == "sieved":
            left = self.label_counts - dropped
            if float(left.sum()) > 0:  # (all dropped: keep the last prior)
                self.prior = left / left.sum()
        return {"train_loss": meter.mean, "lr": lr, "beta": beta, "sieve_kept": sel.kept_fraction,
                "sieve_precision": sel.precision, "sieve_recall": sel.recall}

    def method_state(self) -> dict:
        return {**super().method_state(), "prior": self.prior.clone()}

    def load_method_state(self, state: dict) -> None:
        super().load_method_state(state)
        self.prior = state["prior"].to(self.device).clone()


class CORESTrainable(MethodTrainable):
    method_cls = CORES
