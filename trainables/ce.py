"""Standard training: cross entropy on the noisy labels (the papers' "Standard" row)."""
from tune_lnl.losses import cross_entropy
from tune_lnl.ray_adapter import MethodTrainable
from tune_lnl.single_network import SingleNetwork


class CE(SingleNetwork):
    name = "ce"

    def loss(self, logits, labels):
        return cross_entropy(logits, labels)


class CETrainable(MethodTrainable):
    method_cls = CE
