"""Registry of methods: name -> (plain training class, Ray Trainable class)."""
from __future__ import annotations

METHOD_NAMES = ("mlc", "ce", "mae", "gce", "imae", "coteaching", "jocor")


def registry() -> dict:
    from trainables.ce import CE, CETrainable
    from trainables.coteaching import CoTeaching, CoTeachingTrainable
    from trainables.gce import GCE, GCETrainable
    from trainables.imae import IMAE, IMAETrainable
    from trainables.jocor import JoCoR, JoCoRTrainable
    from trainables.mae import MAE, MAETrainable
    from trainables.mlc import MLC, MLCTrainable
    return {"mlc": (MLC, MLCTrainable), "ce": (CE, CETrainable), "mae": (MAE, MAETrainable),
            "gce": (GCE, GCETrainable), "imae": (IMAE, IMAETrainable),
            "coteaching": (CoTeaching, CoTeachingTrainable), "jocor": (JoCoR, JoCoRTrainable)}


def method_class(name: str):
    return registry()[name][0]


def trainable_class(name: str):
    return registry()[name][1]
