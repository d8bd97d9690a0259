"""One network trained on the noisy labels with a per-sample loss: the base of the standard
(CE) and robust-loss (MAE, GCE, IMAE) baselines. Each method file in ``trainables/`` only names
its loss."""
from __future__ import annotations

import abc
from dataclasses import dataclass

import torch

from ..models import build_model
from . import hparams
from .base import LossMeter, Method, make_optimizer, set_lr, step_lr


class SingleNetwork(Method):
    """One network of the run config's ``model``, trained on the noisy labels with the loss
    :meth:`loss` returns per sample: subclass it and implement ``loss`` (and extend ``Hyper``
    with your own hyperparameters)."""

    @dataclass(frozen=True)
    class Hyper(hparams.LrSchedule, hparams.Optimizer, hparams.Common):
        """The backbone, budget and speed switches, the optimizer (Adam or SGD) and its lr schedule."""

    @abc.abstractmethod
    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-sample loss ``[B]``."""

    def build(self) -> None:
        d = self.data
        self.net = build_model(self.hp.model, d.num_classes, d.image_shape,
                               pretrained=self.hp.pretrained).to(self.device)
        self.opt = make_optimizer(self.net.parameters(), self.hp)

    def train_epoch(self) -> dict:
        lr = step_lr(self.epoch, self.hp)
        return {"train_loss": self.fit_epoch(lr), "lr": lr}

    def fit_epoch(self, lr: float, loss_fn=None, opt: torch.optim.Optimizer | None = None) -> float:
        """One epoch of plain training at ``lr``: per batch the batch mean of the per-sample loss
        ``loss_fn(logits, noisy)`` (default :meth:`loss`), one step of ``opt`` (default the
        network's); returns the epoch's mean training loss. Methods whose phases differ only in
        their loss, lr or optimizer call it."""
        opt = opt or self.opt
        set_lr(opt, lr)
        loss_fn = loss_fn or self.loss
        meter = LossMeter(self.device)
        for _, x, noisy in self.train_batches():
            loss = loss_fn(self.net(x), noisy).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            meter.add(loss)
        return meter.mean

    def eval_models(self):
        return {"net": self.net}

    def method_state(self) -> dict:
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict()}

    def load_method_state(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
