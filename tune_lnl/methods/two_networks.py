"""Base of the two-network methods (Co-teaching, MLC, ...): networks A and B of the configured
backbone, one optimizer each (see :func:`tune_lnl.methods.base.make_optimizer`), and their
checkpoint state."""
from __future__ import annotations

from dataclasses import dataclass

from ..models import build_model
from . import hparams
from .base import Method, make_optimizer, set_lr, step_lr
from .constraints import POSITIVE, RATE
from .hparams import hp
from .selection import forget_rate_at


@dataclass(frozen=True)
class SmallLoss:
    """The small-loss selection's schedule (Co-teaching, Han et al. 2018): the forget rate ramps
    linearly from 0 to ``forget_rate`` over the first ``num_gradual`` epochs (Tk = 10)."""
    forget_rate: float = hp(0.2, "share of each batch dropped as likely noisy (after the ramp)", RATE)
    num_gradual: int = hp(10, "epochs of the forget rate's linear ramp (Tk)", POSITIVE)


@dataclass(frozen=True)
class SmallLossHyper(SmallLoss, hparams.LrSchedule, hparams.Optimizer, hparams.Common):
    """The small-loss methods' hyperparameters (Co-teaching, Co-teaching+, JoCoR): the MNIST setup
    of the Co-teaching paper (MLP, Adam lr 1e-3, batch 128, 200 epochs, Tk = 10)."""


class TwoNetworks(Method):
    """Networks A and B of the run config's ``model`` with an optimizer each; implement
    :meth:`train_epoch` (``self.train_batches()``, :meth:`update_both`, :meth:`begin_epoch`)."""
    Hyper = SmallLossHyper

    def build(self) -> None:
        d, hp_ = self.data, self.hp
        self.net_a = build_model(hp_.model, d.num_classes, d.image_shape, pretrained=hp_.pretrained).to(self.device)
        self.net_b = build_model(hp_.model, d.num_classes, d.image_shape, pretrained=hp_.pretrained).to(self.device)
        self.opt_a = make_optimizer(self.net_a.parameters(), hp_)
        self.opt_b = make_optimizer(self.net_b.parameters(), hp_)

    def set_lr(self, lr: float) -> None:
        set_lr(self.opt_a, lr)
        set_lr(self.opt_b, lr)

    def begin_epoch(self) -> tuple[float, float]:
        """Small-loss methods (Co-teaching, Co-teaching+, JoCoR): this epoch's forget rate (the
        Co-teaching ramp) and learning rate (``lr_schedule``), the latter applied to both."""
        rate = forget_rate_at(self.epoch, self.hp.forget_rate, self.hp.num_gradual)
        lr = step_lr(self.epoch, self.hp)
        self.set_lr(lr)
        return rate, lr

    def update_both(self, loss, add_grads=None):
        """One optimizer step of both networks on ``loss`` (each receives its own gradient).
        ``add_grads``: called between the backward pass and the steps (to add a gradient computed
        in closed form to the parameters' ``.grad``); its return value is returned."""
        self.opt_a.zero_grad(set_to_none=True)
        self.opt_b.zero_grad(set_to_none=True)
        loss.backward()
        extra = add_grads() if add_grads is not None else None
        self.opt_a.step()
        self.opt_b.step()
        return extra

    def eval_models(self):
        return {"a": self.net_a, "b": self.net_b}

    def method_state(self) -> dict:
        return {"net_a": self.net_a.state_dict(), "net_b": self.net_b.state_dict(),
                "opt_a": self.opt_a.state_dict(), "opt_b": self.opt_b.state_dict()}

    def load_method_state(self, state: dict) -> None:
        self.net_a.load_state_dict(state["net_a"])
        self.net_b.load_state_dict(state["net_b"])
        self.opt_a.load_state_dict(state["opt_a"])
        self.opt_b.load_state_dict(state["opt_b"])
