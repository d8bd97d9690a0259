"""Generalized cross entropy ``L_q = (1 - p_y^q) / q`` (Zhang & Sabuncu 2018), q = 0.7 by default."""
from tune_lnl.methods.constraints import POSITIVE, Range
from tune_lnl.methods.losses import gce
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.methods.single_network import SingleNetwork


class GCE(SingleNetwork):
    name = "gce"
    defaults = {**SingleNetwork.defaults, "q": 0.7}
    constraints = {"q": (POSITIVE, Range(high=1.0, message="GCE's q lies in (0, 1] (q -> 0 is cross-entropy, "
                                                          "q = 1 is MAE)"))}

    def loss(self, logits, labels):
        return gce(logits, labels, self.cfg["q"])


class GCETrainable(MethodTrainable):
    method_cls = GCE
