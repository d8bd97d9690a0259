"""Base of the two-network methods (Co-teaching, MLC, ...): networks A and B of the configured
backbone, one Adam each, the augmentation, and their checkpoint state."""
from __future__ import annotations

from .augment import mnist_augment
from .method import Method, adam
from .models import build_model


class TwoNetworks(Method):
    def build(self) -> None:
        d, cfg = self.data, self.cfg
        shape = tuple(d.train_x.shape[1:])
        self.net_a = build_model(cfg["model"], d.num_classes, shape).to(self.device)
        self.net_b = build_model(cfg["model"], d.num_classes, shape).to(self.device)
        self.opt_a = adam(self.net_a.parameters(), cfg["lr"])
        self.opt_b = adam(self.net_b.parameters(), cfg["lr"])
        self.augment = mnist_augment if cfg["augment"] else None

    def update_both(self, loss) -> None:
        """One optimizer step of both networks on ``loss`` (each receives its own gradient)."""
        self.opt_a.zero_grad(set_to_none=True)
        self.opt_b.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_a.step()
        self.opt_b.step()

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
