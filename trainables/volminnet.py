"""VolMinNet (Xuefeng Li, Tongliang Liu, Bo Han, Gang Niu, Masashi Sugiyama, "Provably End-to-end
Label-noise Learning without Anchor Points", ICML 2021): ONE network ``h_theta`` (the clean class
posterior ``p = softmax(logits)``) and a LEARNABLE transition matrix ``T`` (``T[i, j]``: the
probability that clean class ``i`` is labelled ``j``), trained together end to end.

The model of the noisy posterior is ``P(Y~ = j | x) = sum_i T[i, j] p_i(x)``, i.e. the row vector
``p @ T`` (the paper writes ``T^T h_theta(x)`` with the transpose convention of its Sec. 2). The
objective (the paper's volume-minimisation problem, Sec. 4, relaxed to a penalty) is

    L(theta, T) = -1/B sum_n log (p(x_n) @ T)[y~_n]  +  lambda * log |det T|,

the cross entropy of ``p @ T`` against the noisy label plus the volume regulariser ``log det T``
(the log of the volume of the simplex spanned by T's rows); it is minimised over ``theta`` and
``T`` simultaneously, each with its own optimizer, one step of both per batch.

T's parameterisation (Sec. 4 of the paper; official code ``models.sig_t``): a free matrix ``W``,

    A = I + sigmoid(W) * (1 - I),        T = A / rowsum(A),

so every T is row-stochastic with positive entries and (for W's initial value -init, sigmoid(-2)
~ 0.12 off the diagonal) diagonally dominant; the diagonal of ``W`` gets no gradient. ``W`` starts
at ``-t_init`` everywhere (official: 2 for MNIST and CIFAR-10, 4.5 for CIFAR-100); a large
``t_init`` starts at ``T = I`` (plain CE). ``log |det T|`` is the official ``slogdet().logabsdet``.

Defaults: the paper's / official code's CIFAR-10 setup (``main.py``): the network by SGD, lr 0.01,
momentum 0.9, weight decay 1e-4, batch 128, 80 epochs, both learning rates divided by 10 at epochs
30 and 60 (``MultiStepLR``); T by SGD, lr 0.01, momentum 0.9, no weight decay (MNIST and
CIFAR-100: Adam, lr 0.01; MNIST: 60 epochs, no lr drops); lambda 1e-4; t_init 2. The official
code's backbones are LeNet-5 (MNIST), ResNet-18 (CIFAR-10), ResNet-34 (CIFAR-100).

Equation numbers: the paper's text was not available to this implementation (no copy in the
shared folder or the search corpora); the objective and the parameterisation above follow the
official code (xuefeng-li1/Provably-end-to-end-label-noise-learning-without-anchor-points @
06e4167, ``main.py`` and ``models.py``), whose loss, T and one T step are checked number for
number in tests/unit/builtin_methods/test_volminnet.py.

Analytics only (never used for training or selection): ``t_error``, the official estimation
error ``sum |T - T_true| / sum |T_true|`` (``tools.error``; ``||T - T_true||_1 / C`` for a
row-stochastic T_true, :func:`tune_lnl.methods.transition.estimation_error`) of the learned T against
the setting's true T (:func:`~tune_lnl.methods.transition.true_transition`: the nominal matrix of the
run's noise, else the realised one of the training labels; NaN where neither is known), and ``logdet_T``.
Evaluation uses the network's clean posterior ``p`` (as the official
test accuracy does).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tune_lnl.methods import hparams
from tune_lnl.methods.base import LossMeter, set_lr
from tune_lnl.methods.constraints import NON_NEGATIVE, POSITIVE, OneOf, Range
from tune_lnl.methods.hparams import hp, like
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.methods.single_network import SingleNetwork
from tune_lnl.methods.transition import estimation_error, true_transition

#: SGD momentum of T's optimizer (official CIFAR-10: 0.9; T never has weight decay)
T_MOMENTUM = 0.9


class SigmoidT(nn.Module):
    """The learnable transition matrix: ``T = rownorm(I + sigmoid(W) * (1 - I))``, ``W`` ``[C, C]``
    starting at ``-init`` everywhere (official ``models.sig_t``)."""

    def __init__(self, num_classes: int, init: float):
        super().__init__()
        self.w = nn.Parameter(torch.full((num_classes, num_classes), -float(init)))
        eye = torch.eye(num_classes)
        self.register_buffer("eye", eye, persistent=False)
        self.register_buffer("off", 1.0 - eye, persistent=False)

    def forward(self) -> torch.Tensor:
        a = torch.sigmoid(self.w) * self.off + self.eye
        return a / a.sum(1, keepdim=True)


def noisy_ce(logits: torch.Tensor, T: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample ``-log (softmax(logits) @ T)[y]`` ``[B]``, as ``-logsumexp_i(log p_i + log T[i, y])``
    (no log of a rounded-to-zero product)."""
    logp = F.log_softmax(logits, dim=1)
    log_ty = torch.log(T).index_select(1, labels).t()  # [B, C]: log T[i, y_n]
    return -torch.logsumexp(logp + log_ty, dim=1)


def log_volume(T: torch.Tensor) -> torch.Tensor:
    """The volume regulariser ``log |det T|`` (official: ``T.slogdet().logabsdet``)."""
    return torch.linalg.slogdet(T).logabsdet


def make_t_optimizer(params, hp) -> torch.optim.Optimizer:
    """T's optimizer: Adam (official MNIST, CIFAR-100) or SGD with momentum 0.9 (official CIFAR-10),
    learning rate ``t_lr``, no weight decay."""
    if hp.t_optimizer == "adam":
        return torch.optim.Adam(params, lr=hp.t_lr, weight_decay=0.0)
    return torch.optim.SGD(params, lr=hp.t_lr, momentum=T_MOMENTUM, weight_decay=0.0)


def lr_factor(epoch: int, hp) -> float:
    """The factor of both learning rates at 0-based ``epoch`` (official MultiStepLR, gamma 0.1, at
    ``milestone1`` and ``milestone2``)."""
    return 0.1 ** ((epoch >= hp.milestone1) + (epoch >= hp.milestone2))


class VolMinNet(SingleNetwork):
    """VolMinNet (Li et al., ICML 2021): a network and a learnable transition matrix T, CE of
    ``p @ T`` against the noisy labels plus ``lambda log det T``."""
    name = "volminnet"

    @dataclass(frozen=True)
    class Hyper(hparams.Optimizer, hparams.Common):
        """The network's optimizer (SGD, official), T's own optimizer and the lr milestones of
        both (no inherited lr_schedule: VolMinNet's drops are its own epochs)."""
        epochs: int = like(hparams.Common, "epochs", 80, "training epochs (official CIFAR-10: 80; MNIST: 60)")
        lr: float = like(hparams.Common, "lr", 0.01, "the network's learning rate (official: 0.01)")
        optimizer: str = like(hparams.Optimizer, "optimizer", "sgd", "the network's optimizer (official: sgd)")
        weight_decay: float = like(hparams.Optimizer, "weight_decay", 1e-4, "L2 weight decay (official: 1e-4)")
        lambda_: float = hp(1e-4, "weight of the volume regulariser log det T (paper / official: 1e-4)",
                            NON_NEGATIVE, key="lambda")
        t_lr: float = hp(0.01, "learning rate of T's optimizer (official: 0.01, the network's lr)", POSITIVE)
        t_optimizer: str = hp("sgd", "T's optimizer: sgd (momentum 0.9; official CIFAR-10) or adam (official "
                                     "MNIST, CIFAR-100); no weight decay", OneOf(("adam", "sgd")))
        t_init: float = hp(2.0, "W starts at -t_init: off-diagonal T ~ sigmoid(-t_init) before normalising "
                                "(official: 2; CIFAR-100: 4.5)", Range(-50.0, 50.0))
        milestone1: int = hp(30, "0-based epoch from which both learning rates are divided by 10 (official "
                                 "CIFAR: 30 of 80; >= epochs: never)", NON_NEGATIVE)
        milestone2: int = hp(60, "0-based epoch from which they are divided by 100 (official CIFAR: 60 of 80; "
                                 ">= epochs: never)", NON_NEGATIVE)

    @classmethod
    def check_config(cls, hp):
        if hp.milestone1 > hp.milestone2:
            return [("milestone1 must not come after milestone2", {"milestone1": hp.milestone1,
                                                                   "milestone2": hp.milestone2})]
        return []

    def build(self) -> None:
        super().build()  # the network and its optimizer (make_optimizer: the declared sgd / adam)
        self.trans = SigmoidT(self.data.num_classes, self.hp.t_init).to(self.device)
        self.t_opt = make_t_optimizer(self.trans.parameters(), self.hp)
        # analytics only: the setting's true T (the same as Forward-T's, tune_lnl.methods.transition)
        self.t_true = true_transition(self.run.data, self.data)

    def loss(self, logits, labels):
        """Per-sample CE of ``p @ T`` against the noisy labels (the volume term is per batch)."""
        return noisy_ce(logits.float(), self.trans(), labels)

    def train_epoch(self) -> dict:
        factor = lr_factor(self.epoch, self.hp)
        lr, t_lr = self.hp.lr * factor, self.hp.t_lr * factor
        set_lr(self.opt, lr)
        set_lr(self.t_opt, t_lr)
        lam = float(self.hp.lambda_)
        meter, ce_meter = LossMeter(self.device), LossMeter(self.device)
        for _, x, noisy in self.train_batches():
            logits = self.net(x)
            with torch.autocast(self.device.type, enabled=False):  # T, its det and the CE in float32
                T = self.trans()
                ce = noisy_ce(logits.float(), T, noisy).mean()
                loss = ce + lam * log_volume(T)
            self.opt.zero_grad(set_to_none=True)
            self.t_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.t_opt.step()
            meter.add(loss)
            ce_meter.add(ce)
        with torch.no_grad(), torch.autocast(self.device.type, enabled=False):
            T = self.trans()
            logdet = float(log_volume(T))
            err = estimation_error(T, self.t_true) if self.t_true is not None else float("nan")
        return {"train_loss": meter.mean, "train_ce": ce_meter.mean, "lr": lr, "t_lr": t_lr,
                "logdet_T": logdet, "t_error": err}  # t_error, logdet_T: analytics only

    def method_state(self) -> dict:
        return {**super().method_state(), "trans": self.trans.state_dict(), "t_opt": self.t_opt.state_dict()}

    def load_method_state(self, state: dict) -> None:
        super().load_method_state(state)
        self.trans.load_state_dict(state["trans"])
        self.t_opt.load_state_dict(state["t_opt"])


class VolMinNetTrainable(MethodTrainable):
    method_cls = VolMinNet
