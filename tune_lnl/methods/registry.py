"""Which class a method spec names: a built-in name (``mlc``), an import path
(``"package.module:ClassName"``, the user's module found through the Python path) or a name an
installed package registers under the entry-point group ``tune_lnl.methods``. The spec, exactly as
written, is the method's identity everywhere (study names, folders, checkpoints, tables)."""
from __future__ import annotations

import dataclasses
import inspect

from ..errors import ConfigError
from ..plugins import resolve
from . import hparams
from .base import Method

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
    "sce": "trainables.sce:SCE",
    "nce_rce": "trainables.nce_rce:NCERCE",
    "gls": "trainables.gls:GLS",
    "bootstrap": "trainables.bootstrap:Bootstrap",
    "peer": "trainables.peer:Peer",
    "elr": "trainables.elr:ELR",
    "sop": "trainables.sop:SOP",
    "volminnet": "trainables.volminnet:VolMinNet",
    "cores": "trainables.cores:CORES",
    "forward_t": "trainables.forward_t:ForwardT",
    "backward_t": "trainables.backward_t:BackwardT",
    "t_revision": "trainables.t_revision:TRevision",
    "dividemix": "trainables.dividemix:DivideMix",
    "unicon": "trainables.unicon:UNICON",
    "elr_plus": "trainables.elr_plus:ELRPlus",
    "sop_plus": "trainables.sop_plus:SOPPlus",
    "pes_semi": "trainables.pes_semi:PESSemi",
    "promix": "trainables.promix:ProMix",
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
    """A usable method class: a concrete subclass of :class:`tune_lnl.Method` (every abstract
    method implemented) whose ``Hyper`` is a dataclass of declared hyperparameters."""
    if not inspect.isclass(cls):
        raise ConfigError(f"{where}: {spec!r} is not a class but {type(cls).__name__} {cls!r}")
    if not issubclass(cls, Method):
        raise ConfigError(f"{where}: {spec!r} ({cls.__module__}.{cls.__qualname__}) is not a method: it must subclass "
                          f"tune_lnl.Method, tune_lnl.SingleNetwork or tune_lnl.TwoNetworks")
    hyper = getattr(cls, "Hyper", None)
    if not (inspect.isclass(hyper) and dataclasses.is_dataclass(hyper) and issubclass(hyper, hparams.Common)):
        raise ConfigError(f"{where}: {spec!r}: its 'Hyper' must be a dataclass deriving from its base's Hyper "
                          f"(at the root: tune_lnl.Common), got {hyper!r}")
    loose = [k for k, v in vars(hyper).items() if isinstance(v, dataclasses.Field)]
    if loose:  # hp() fields in a class the @dataclass decorator never processed: no hyperparameters
        raise ConfigError(f"{where}: {spec!r}: its 'Hyper' is not decorated with @dataclass(frozen=True), so "
                          f"{', '.join(loose)} {'is' if len(loose) == 1 else 'are'} not declared")
    if inspect.isabstract(cls):
        missing = sorted(cls.__abstractmethods__)
        hint = ("implement loss(logits, labels) (a per-sample loss [B])" if missing == ["loss"] else
                "subclass tune_lnl.SingleNetwork and implement loss(), or implement these on tune_lnl.Method")
        raise ConfigError(f"{where}: {spec!r} does not implement {', '.join(missing)}: {hint}")


def defaults_of(spec: str, where: str = "method") -> dict:
    """Every hyperparameter ``spec`` declares, with its default (``{key: default}``)."""
    return hparams.defaults(method_class(spec, where).Hyper)


def rules_of(spec: str, where: str = "method") -> dict:
    """The value rules of ``spec``'s hyperparameters (``{key: (Rule, ...)}``)."""
    return hparams.rules(method_class(spec, where).Hyper)


def describe(spec: str, where: str = "method") -> dict:
    """``{key: {"default", "type", "meaning", "choices" | "low"/"high"}}`` of ``spec``'s
    hyperparameters, in declaration order (``tune-lnl methods --json``)."""
    return {k: d.describe() for k, d in hparams.declared(method_class(spec, where).Hyper).items()}
