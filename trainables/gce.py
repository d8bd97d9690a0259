"""Generalized cross entropy ``L_q = (1 - p_y^q) / q`` (Zhang & Sabuncu 2018), q = 0.7 by default."""
from dataclasses import dataclass

from tune_lnl.methods.constraints import POSITIVE, Range
from tune_lnl.methods.hparams import hp
from tune_lnl.methods.losses import gce
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.methods.single_network import SingleNetwork


class GCE(SingleNetwork):
    """Generalized cross entropy (Zhang & Sabuncu, NeurIPS 2018): (1 - p_y^q) / q."""
    name = "gce"

    @dataclass(frozen=True)
    class Hyper(SingleNetwork.Hyper):
        q: float = hp(0.7, "exponent of p_y: q -> 0 is cross-entropy, q = 1 is MAE (paper: 0.7)", POSITIVE,
                      Range(high=1.0, message="GCE's q lies in (0, 1] (q -> 0 is cross-entropy, q = 1 is MAE)"))

    def loss(self, logits, labels):
        return gce(logits, labels, self.hp.q)


class GCETrainable(MethodTrainable):
    method_cls = GCE
