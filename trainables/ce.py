"""Standard training: cross entropy on the noisy labels (the papers' "Standard" row)."""
from tune_lnl.methods.losses import cross_entropy
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.methods.single_network import SingleNetwork


class CE(SingleNetwork):
    """Standard training: cross entropy on the noisy labels (the papers' "Standard" row)."""
    name = "ce"

    def loss(self, logits, labels):
        return cross_entropy(logits, labels)


class CETrainable(MethodTrainable):
    method_cls = CE
