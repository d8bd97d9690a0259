"""Generalized cross entropy ``L_q = (1 - p_y^q) / q`` (Zhang & Sabuncu 2018), q = 0.7 by default."""
from tune_lnl.losses import gce
from tune_lnl.ray_adapter import MethodTrainable
from tune_lnl.single_network import SingleNetwork


class GCE(SingleNetwork):
    name = "gce"
    defaults = {**SingleNetwork.defaults, "q": 0.7}

    def loss(self, logits, labels):
        return gce(logits, labels, self.cfg["q"])


class GCETrainable(MethodTrainable):
    method_cls = GCE
