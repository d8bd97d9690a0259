"""Registry of methods: name -> (plain training class, Ray Trainable class)."""
from __future__ import annotations

import importlib

#: method name -> (module in trainables/, plain class, Trainable class)
_REGISTRY = {
    "ce": ("ce", "CE", "CETrainable"),
    "mae": ("mae", "MAE", "MAETrainable"),
    "gce": ("gce", "GCE", "GCETrainable"),
    "imae": ("imae", "IMAE", "IMAETrainable"),
    "pencil": ("pencil", "PENCIL", "PENCILTrainable"),
    "coteaching": ("coteaching", "CoTeaching", "CoTeachingTrainable"),
    "coteaching_plus": ("coteaching_plus", "CoTeachingPlus", "CoTeachingPlusTrainable"),
    "jocor": ("jocor", "JoCoR", "JoCoRTrainable"),
    "mlc": ("mlc", "MLC", "MLCTrainable"),
}
METHOD_NAMES = tuple(_REGISTRY)

#: run-config keys every method accepts: the backbone's ImageNet weights (Clothing1M's
#: ResNet-18) and the decoding workers of streamed datasets (Clothing1M; -1: min(8, CPUs))
BACKBONE_DEFAULTS = {"pretrained": False, "num_workers": -1}

#: run-config keys every method accepts that change how, not what, it computes (all off by
#: default; see README "Speed switches"): ``amp`` ``none`` | ``bf16`` (bf16 autocast around the
#: training forward passes and evaluation), ``channels_last`` (NHWC models and 4-D batches),
#: ``compile`` (``torch.compile`` of each model, in place). Not part of a checkpoint's identity.
SPEED_DEFAULTS = {"amp": "none", "channels_last": False, "compile": False}
#: the allowed values of ``amp``
AMP_MODES = ("none", "bf16")


def _lookup(name: str, which: int):
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; allowed: {', '.join(METHOD_NAMES)}")
    module, *classes = _REGISTRY[name]
    return getattr(importlib.import_module(f"trainables.{module}"), classes[which])


def method_class(name: str):
    return _lookup(name, 0)


def trainable_class(name: str):
    return _lookup(name, 1)


def defaults_of(name: str) -> dict:
    """Every key a run config of ``name`` may set, with its default."""
    return {**BACKBONE_DEFAULTS, **SPEED_DEFAULTS, **method_class(name).defaults}
