"""MAE on the noisy labels, as in the IMAE paper: ``2 (1 - p_y)`` (its Eq. 16)."""
from tune_lnl.methods.losses import mae
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.methods.single_network import SingleNetwork


class MAE(SingleNetwork):
    """MAE on the noisy labels, 2 (1 - p_y) (the IMAE paper's Eq. 16)."""
    name = "mae"

    def loss(self, logits, labels):
        return mae(logits, labels)


class MAETrainable(MethodTrainable):
    method_cls = MAE
