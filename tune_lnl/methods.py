"""Registry of methods: name -> (plain training class, Ray Trainable class)."""
from __future__ import annotations


def registry() -> dict:
    from trainables.mlc import MLC, MLCTrainable
    return {"mlc": (MLC, MLCTrainable)}


METHOD_NAMES = ("mlc",)


def method_class(name: str):
    return registry()[name][0]


def trainable_class(name: str):
    return registry()[name][1]
