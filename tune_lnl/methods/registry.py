"""Which class a method spec names: a built-in name (``mlc``), an import path
(``"package.module:ClassName"``, the user's module found through the Python path) or a name an
installed package registers under the entry-point group ``tune_lnl.methods``. The spec, exactly as
written, is the method's identity everywhere (study names, folders, checkpoints, tables)."""
from __future__ import annotations

import inspect

from ..errors import ConfigError
from ..plugins import resolve
from .base import BACKBONE_DEFAULTS, SPEED_DEFAULTS, Method
from .single_network import SingleNetwork

#: the built-in methods: name -> import path of their class (one file each in trainables/)
BUILTIN = {
    "ce": "trainables.ce:CE",
    "mae": "trainables.mae:MAE",
    "gce": "trainables.gce:GCE",
    "imae": "trainables.imae:IMAE",
    "pencil": "trainables.pencil:PENCIL",
    "coteaching": "trainables.coteaching:CoTeaching",
    "coteaching_plus": "trainables.coteaching_plus:CoTeachingPlus",
    "jocor": "trainables.jocor:JoCoR",
    "mlc": "trainables.mlc:MLC",
}
METHOD_NAMES = tuple(BUILTIN)
#: entry-point group under which installed packages register methods (name -> class)
GROUP = "tune_lnl.methods"

_resolved: dict[str, type] = {}


def method_class(spec: str, where: str = "method") -> type[Method]:
    """The :class:`~tune_lnl.methods.base.Method` subclass ``spec`` names; a clear
    :class:`~tune_lnl.errors.ConfigError` (naming ``where`` and ``spec``) otherwise."""
    if isinstance(spec, str) and spec in _resolved:
        return _resolved[spec]
    cls = resolve(spec, BUILTIN, GROUP, "method", where)
    check_method_class(cls, spec, where)
    _resolved[spec] = cls
    return cls


def check_method_class(cls, spec: str, where: str) -> None:
    """A usable method class: a subclass of :class:`tune_lnl.Method` that implements what its
    base leaves open and declares ``defaults`` (a mapping of every run-config key to its default)."""
    if not inspect.isclass(cls):
        raise ConfigError(f"{where}: {spec!r} is not a class but {type(cls).__name__} {cls!r}")
    if not issubclass(cls, Method):
        raise ConfigError(f"{where}: {spec!r} ({cls.__module__}.{cls.__qualname__}) is not a method: it must subclass "
                          f"tune_lnl.Method, tune_lnl.SingleNetwork or tune_lnl.TwoNetworks")
    defaults = getattr(cls, "defaults", None)
    if not isinstance(defaults, dict) or not defaults:
        raise ConfigError(f"{where}: {spec!r} declares no 'defaults': give the class a mapping of every run-config "
                          f"key it reads to its default (e.g. defaults = {{'epochs': 50, 'lr': 1e-3, ...}}); got "
                          f"{defaults!r}")
    if "epochs" not in defaults or "batch_size" not in defaults:
        raise ConfigError(f"{where}: {spec!r}: its 'defaults' must include 'epochs' and 'batch_size' "
                          f"(got keys {', '.join(sorted(defaults))})")
    if issubclass(cls, SingleNetwork) and cls.loss is SingleNetwork.loss and cls.train_epoch is SingleNetwork.train_epoch:
        raise ConfigError(f"{where}: {spec!r} subclasses tune_lnl.SingleNetwork but does not implement "
                          f"loss(logits, labels) (a per-sample loss [B])")
    missing = [name for name in ("build", "train_epoch", "eval_models", "method_state", "load_method_state")
               if getattr(cls, name) is getattr(Method, name)]
    if missing:
        raise ConfigError(f"{where}: {spec!r} does not implement {', '.join(missing)} (subclass tune_lnl.SingleNetwork "
                          f"and implement loss(), or implement these on tune_lnl.Method)")


def defaults_of(spec: str, where: str = "method") -> dict:
    """Every key a run config of ``spec`` may set, with its default."""
    return {**BACKBONE_DEFAULTS, **SPEED_DEFAULTS, **method_class(spec, where).defaults}
