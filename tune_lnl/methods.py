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
    return {**BACKBONE_DEFAULTS, **method_class(name).defaults}
