"""Methods: the plain-PyTorch base classes a method derives from, their shared parts (losses,
small-loss selection, the label table, analytics), value constraints, the registry that turns a
spec into a class, and the thin Ray Tune adapter. One file per method lives in ``trainables/``.

Layer: imports :mod:`tune_lnl.data` and :mod:`tune_lnl.models` (below it), nothing above.
"""
from . import hparams
from .base import AMP_MODES, SPEED_DEFAULTS, CheckpointMismatch, LossMeter, Method, make_optimizer, set_lr, step_lr
from .hparams import hp
from .registry import BUILTIN, METHOD_NAMES, defaults_of, describe, method_class, rules_of
from .run_config import RunConfig
from .single_network import SingleNetwork
from .two_networks import SmallLoss, SmallLossHyper, TwoNetworks

__all__ = ["hparams", "hp", "AMP_MODES", "SPEED_DEFAULTS", "CheckpointMismatch", "LossMeter", "Method",
           "make_optimizer", "set_lr", "step_lr", "BUILTIN", "METHOD_NAMES", "defaults_of", "describe",
           "method_class", "rules_of", "RunConfig", "SingleNetwork", "SmallLoss", "SmallLossHyper", "TwoNetworks"]
