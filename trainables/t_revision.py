"""T-Revision (Xia, Liu, Wang, Han, Gong, Niu, Sugiyama, "Are Anchor Points Really Indispensable in Label-Noise
Learning?", NeurIPS 2019).

With ``g(x) = softmax(f(x))`` the clean class posterior and ``T[i, j] = p(y~ = j | y = i)``, the noisy posterior is
``T^T g(x)`` and the clean risk is an importance-reweighted noisy risk (the paper's Sec. 3 risk-consistent
estimator): ``R(f) = E_{(x, y~)}[beta(x, y~) l(f(x), y~)]``, ``beta = g_{y~}(x) / (T^T g(x))_{y~}``, l = CE.

Phases (0-based epochs; shared machinery in :mod:`tune_lnl.methods.transition`):

1. ``[0, warmup)``: cross-entropy on the noisy labels; at epoch ``warmup`` T^ is initialised by the anchor-point
   estimator (the sample at the 97th ``percentile`` of each column of the warm-up network's softmax over the
   training set; the arg-max, ``percentile: 100``, on CIFAR-100), or the setting's true T (``t_source: oracle``,
   labelled ``t_oracle: 1``).
2. ``[warmup, revision_start)``: the reweighted loss with T^, ``beta`` held fixed (no gradient through it), the
   network continued from the warm-up (``retrain: false``, the official code), SGD.
3. ``[revision_start, epochs)``: the revision: the same loss with ``T^ + Delta T``, the slack ``Delta T``
   (initialised to 0) learned with the network by minimising it, the gradient reaching both through ``beta``; one
   Adam over the network and ``Delta T`` with ``lr_revision`` and ``weight_decay`` (the official code's).

``t_error`` logs ||T - T_true||_1 / C of the T in use (T^ + Delta T in phase 3): analytics only.

Defaults: the official code (xiaoboxia/T-Revision ``main.py``) for CIFAR-10: 20 warm-up epochs, 200 reweighting
epochs (SGD lr 0.01, momentum 0.9, weight decay 1e-4; its MultiStepLR milestones [40, 80], here lr / 10 at 50% and
75% of the phase), 200 revision epochs (Adam lr 5e-7), batch 128, percentile 97. Differences from that code: its
warm-up uses SGD without momentum and it keeps the best warm-up / reweighting epoch by noisy validation accuracy
(here the last); its revision loss adds Delta T once per sample of the batch inside its loop (sample i sees T^ + (i
+ 1) Delta T), while this follows the paper's T^ + Delta T (the same as its loss called one sample at a time).
Checked against that code's numbers: tests/unit/builtin_methods/test_transition_methods.py.
"""
from dataclasses import dataclass

import torch

from tune_lnl.methods import hparams
from tune_lnl.methods.base import step_lr
from tune_lnl.methods.constraints import NON_NEGATIVE, POSITIVE
from tune_lnl.methods.hparams import hp
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.methods.transition import Transition, TransitionMethod, check_warmup, reweighted_loss


class TRevision(TransitionMethod):
    """T-Revision (Xia et al., NeurIPS 2019): importance reweighting with the estimated T from epoch ``warmup``,
    then, from epoch ``revision_start``, reweighting with ``T^ + Delta T`` where the slack ``Delta T`` (zeros at
    first) is learned together with the network by its own Adam (``lr_revision``, ``weight_decay``), the gradient
    reaching both through the weights. Defaults: the official code's CIFAR-10 run (ResNet-18, 20 warm-up epochs,
    200 reweighting epochs with SGD lr 0.01, momentum 0.9, weight decay 1e-4, 200 revision epochs with Adam lr
    5e-7; the warm-up network is continued)."""
    name = "t_revision"

    @dataclass(frozen=True)
    class Hyper(TransitionMethod.Hyper):
        warmup: int = hparams.like(Transition, "warmup", 20, "epochs of cross-entropy before T is estimated "
                                                             "(official code: 20; 15 on CIFAR-100)")
        retrain: bool = hparams.like(Transition, "retrain", False)
        revision_start: int = hp(220, "first epoch of the revision phase (learned slack Delta T; official: 20 + 200)",
                                 NON_NEGATIVE)
        lr_revision: float = hp(5e-7, "Adam learning rate of the revision phase, network and Delta T (official: "
                                      "5e-7)", POSITIVE)
        epochs: int = hparams.like(hparams.Common, "epochs", 420)
        lr: float = hparams.like(hparams.Common, "lr", 0.01)
        optimizer: str = hparams.like(hparams.Optimizer, "optimizer", "sgd")
        weight_decay: float = hparams.like(hparams.Optimizer, "weight_decay", 1e-4)
        lr_schedule: str = hparams.like(hparams.LrSchedule, "lr_schedule", "step")

    @classmethod
    def check_config(cls, hp_):
        out = check_warmup(hp_)
        if not hp_.warmup <= hp_.revision_start <= hp_.epochs:
            out.append(("needs warmup <= revision_start <= epochs",
                        {"warmup": hp_.warmup, "revision_start": hp_.revision_start, "epochs": hp_.epochs}))
        return out

    def build(self) -> None:
        super().build()
        #: the slack Delta T (learned in the revision phase) and its optimizer (None before that phase)
        self.delta = torch.nn.Parameter(torch.zeros(self.data.num_classes, self.data.num_classes, device=self.device))
        self.opt_rev: torch.optim.Optimizer | None = None

    def start_revision(self) -> None:
        """Delta T = 0 and its Adam over the network's parameters and Delta T (the official code's)."""
        with torch.no_grad():
            self.delta.zero_()
        self.opt_rev = torch.optim.Adam([*self.net.parameters(), self.delta], lr=self.hp.lr_revision,
                                        weight_decay=float(self.hp.weight_decay), fused=True)

    def current_T(self):
        if self.T is None:
            return None
        return self.T + self.delta.detach().double() if self.opt_rev is not None else self.T

    def corrected_epoch(self) -> dict:
        hp_, e = self.hp, self.epoch
        revision = e >= hp_.revision_start
        if revision and self.opt_rev is None:
            self.start_revision()
        T = self.T.to(torch.float32)
        if revision:  # the gradient reaches the network and Delta T through the weights
            lr = float(hp_.lr_revision)
            train_loss = self.fit_epoch(lr, lambda z, y: reweighted_loss(z, y, T + self.delta, detach=False),
                                        self.opt_rev)
        else:
            lr = step_lr(e, hp_, hp_.warmup, hp_.revision_start)
            train_loss = self.fit_epoch(lr, lambda z, y: reweighted_loss(z, y, T))
        return {"phase": 3 if revision else 2, "train_loss": train_loss, "lr": lr}

    def method_state(self) -> dict:
        return {**super().method_state(), "delta": self.delta.detach().cpu().clone(),
                "opt_rev": {} if self.opt_rev is None else self.opt_rev.state_dict()}

    def load_method_state(self, state: dict) -> None:
        super().load_method_state(state)
        self.opt_rev = None
        if state["opt_rev"]:
            self.start_revision()
            self.opt_rev.load_state_dict(state["opt_rev"])
        with torch.no_grad():
            self.delta.copy_(state["delta"])


class TRevisionTrainable(MethodTrainable):
    method_cls = TRevision
