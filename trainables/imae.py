"""IMAE (Wang et al., "IMAE for Noise-Robust Learning"): the forward value is MAE; the backward
pass rescales MAE's gradient w.r.t. the logits to per-sample L1 norm ``exp(T p_y (1 - p_y))``
(IMAE paper Eq. 21-22; see :func:`tune_lnl.methods.losses.imae`). T: 8 under noise, 0.5 clean (paper)."""
from dataclasses import dataclass

from tune_lnl.methods.constraints import NON_NEGATIVE
from tune_lnl.methods.hparams import hp
from tune_lnl.methods.losses import imae
from tune_lnl.methods.ray_adapter import MethodTrainable
from tune_lnl.methods.single_network import SingleNetwork


class IMAE(SingleNetwork):
    """IMAE (Wang et al.): MAE whose gradient is rescaled to the L1 norm exp(T p_y (1 - p_y))."""
    name = "imae"

    @dataclass(frozen=True)
    class Hyper(SingleNetwork.Hyper):
        T: float = hp(8.0, "temperature of the gradient's L1 norm exp(T p_y (1 - p_y)) (Eq. 21-22; paper: 8 "
                           "under noise, 0.5 clean)", NON_NEGATIVE)

    def loss(self, logits, labels):
        return imae(logits, labels, self.hp.T)  # Eq. 21-22


class IMAETrainable(MethodTrainable):
    method_cls = IMAE
