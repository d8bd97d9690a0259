"""Methods: the plain-PyTorch base classes a method derives from, their shared parts (losses,
small-loss selection, the label table, analytics), value constraints, the registry that turns a
spec into a class, and the thin Ray Tune adapter. One file per method lives in ``trainables/``.

Layer: imports :mod:`tune_lnl.data` and :mod:`tune_lnl.models` (below it), nothing above.
"""
from .base import AMP_MODES, BACKBONE_DEFAULTS, OPTIM_DEFAULTS, SPEED_DEFAULTS, CheckpointMismatch, LossMeter, \
    Method, make_optimizer, set_lr, step_lr
from .registry import BUILTIN, METHOD_NAMES, defaults_of, method_class
from .single_network import SingleNetwork
from .two_networks import SMALL_LOSS_DEFAULTS, TwoNetworks

__all__ = ["AMP_MODES", "BACKBONE_DEFAULTS", "OPTIM_DEFAULTS", "SPEED_DEFAULTS", "CheckpointMismatch", "LossMeter",
           "Method", "make_optimizer", "set_lr", "step_lr", "BUILTIN", "METHOD_NAMES", "defaults_of", "method_class",
           "SingleNetwork", "SMALL_LOSS_DEFAULTS", "TwoNetworks"]
