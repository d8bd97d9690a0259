"""One network trained on the noisy labels with a per-sample loss: the base of the standard
(CE) and robust-loss (MAE, GCE, IMAE) baselines. Each method file in ``trainables/`` only names
its loss."""
from __future__ import annotations

import torch

from .base import OPTIM_DEFAULTS, LossMeter, Method, make_optimizer, set_lr, step_lr
from ..models import build_model


class SingleNetwork(Method):
    """One network of the run config's ``model``, trained on the noisy labels with the loss
    :meth:`loss` returns per sample: subclass it and implement ``loss`` (and extend
    ``defaults`` / ``constraints`` with your own keys)."""
    defaults = {"model": "mlp", "augment": True, "epochs": 200, "batch_size": 128, "lr": 1e-3,
                **OPTIM_DEFAULTS}

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-sample loss ``[B]``."""
        raise NotImplementedError

    def build(self) -> None:
        d = self.data
        self.net = build_model(self.cfg["model"], d.num_classes, d.image_shape,
                               pretrained=self.cfg.get("pretrained", False)).to(self.device)
        self.opt = make_optimizer(self.net.parameters(), self.cfg)

    def train_epoch(self) -> dict:
        lr = step_lr(self.epoch, self.cfg)
        set_lr(self.opt, lr)
        meter = LossMeter(self.device)
        for _, x, noisy in self.train_batches():
            loss = self.loss(self.net(x), noisy).mean()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            meter.add(loss)
        return {"train_loss": meter.mean, "lr": lr}

    def eval_models(self):
        return {"net": self.net}

    def method_state(self) -> dict:
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict()}

    def load_method_state(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
