"""Declared hyperparameters: every method lists its hyperparameters ONCE, on its class, as a
frozen dataclass named ``Hyper`` whose fields are made with :func:`hp`::

    class GCE(SingleNetwork):
        @dataclass(frozen=True)
        class Hyper(SingleNetwork.Hyper):
            q: float = hp(0.7, "exponent of p_y: q -> 0 is cross-entropy, q = 1 is MAE", POSITIVE, Range(high=1.0))

        def loss(self, logits, labels):
            return gce(logits, labels, self.hp.q)

A field gives the hyperparameter's name (the YAML key; ``key=`` when the key is no Python name,
e.g. ``lambda``), its type (the annotation), its default, its value rules
(:mod:`tune_lnl.methods.constraints`: a range, the choices) and a one-line meaning. Everything
else reads them from here: :mod:`tune_lnl.config` validates ``fixed:``, ``paper:`` and
``space:`` against them (an unknown key names the valid ones), the method reads typed values
(``self.hp.q``), ``tune-lnl methods`` lists them. A subclass changes a default by declaring the
field again, and adds fields of its own.

The mixins below are the hyperparameters several methods share: :class:`Common` (every method),
:class:`Optimizer` (Adam or SGD), :class:`LrSchedule` (the step schedule).
"""
from __future__ import annotations

import dataclasses
import keyword
import math
from dataclasses import dataclass
from typing import Any

from ..models import MODELS
from .constraints import NON_NEGATIVE, POSITIVE, RATE, OneOf, Range, Rule

#: the allowed values of ``amp``
AMP_MODES = ("none", "bf16")
#: the allowed values of ``augment`` (True: the dataset's own augmentation)
AUGMENT_MODES = (True, False, "none", "crop_flip", "perspective_jitter", "randaugment")
#: the allowed values of ``strong_augment`` (:class:`StrongView`)
STRONG_MODES = ("randaugment", "crop_flip", "perspective_jitter", "none")


def hp(default, meaning: str, *rules: Rule, key: str | None = None):
    """One declared hyperparameter (a dataclass field): its ``default``, one-line ``meaning``,
    value ``rules`` and, when the YAML key is not the field's name (``lambda``), its ``key``."""
    return dataclasses.field(default=default, metadata={"meaning": meaning, "rules": tuple(rules), "key": key})


def like(base: type, key: str, default, meaning: str | None = None):
    """The field of ``base``'s hyperparameter ``key`` with a new ``default`` (its rules, key and,
    unless given, meaning kept): how a subclass changes an inherited default, e.g.
    ``epochs: int = like(Common, "epochs", 320)``."""
    d = declared(base)[key]
    return hp(default, meaning or d.meaning, *d.rules, key=key if d.attr != key else None)


@dataclass(frozen=True)
class Declared:
    """What a hyperparameter declares (one field of a ``Hyper`` dataclass)."""
    key: str          #: the name in space files and run configs
    attr: str         #: the attribute on the ``Hyper`` object (``key`` unless that is no Python name)
    type: str         #: the annotation, as written
    default: Any
    rules: tuple[Rule, ...]
    meaning: str

    def describe(self) -> dict:
        """JSON-able: ``default``, ``type``, ``meaning`` and ``choices`` or ``low``/``high``."""
        out = {"default": self.default, "type": self.type, "meaning": self.meaning}
        for rule in self.rules:
            if isinstance(rule, OneOf):
                out["choices"] = list(rule.choices)
            elif isinstance(rule, Range):
                if rule.low != -math.inf:
                    out["low" if not rule.low_open else "above"] = rule.low
                if rule.high != math.inf:
                    out["high" if not rule.high_open else "below"] = rule.high
        return out


def declared(hyper: type) -> dict[str, Declared]:
    """Every hyperparameter of the ``Hyper`` dataclass ``hyper``, by key, in declaration order."""
    out = {}
    for f in dataclasses.fields(hyper):
        meta = f.metadata
        key = meta.get("key") or f.name
        typ = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        out[key] = Declared(key, f.name, typ,
                            f.default, tuple(meta.get("rules", ())), meta.get("meaning", ""))
    return out


def defaults(hyper: type) -> dict[str, Any]:
    """``{key: default}`` of every hyperparameter of ``hyper``."""
    return {k: d.default for k, d in declared(hyper).items()}


def rules(hyper: type) -> dict[str, tuple[Rule, ...]]:
    """``{key: rules}`` of every hyperparameter of ``hyper`` that has rules."""
    return {k: d.rules for k, d in declared(hyper).items() if d.rules}


def build(hyper: type, values: dict):
    """The ``hyper`` object of the run config ``values`` (a mapping by key; keys ``hyper`` does
    not declare, such as the data's, are ignored; missing ones take their defaults)."""
    return hyper(**{d.attr: values[k] for k, d in declared(hyper).items() if k in values})


def as_dict(hp_object) -> dict[str, Any]:
    """``{key: value}`` of a ``Hyper`` object (the inverse of :func:`build`)."""
    return {k: getattr(hp_object, d.attr) for k, d in declared(type(hp_object)).items()}


def from_legacy(name: str, values: dict, constraints: dict, base: type) -> type:
    """A ``Hyper`` dataclass for a plugin class that declares ``defaults = {key: default}`` (and
    ``constraints = {key: rule}``) the way tune_lnl 0.1 asked, subclassing ``base``: a key
    ``base`` declares keeps its meaning and rules (a new default, a rule given replaces them); a
    new key becomes a field of its default's type, described as "(not described)"."""
    inherited = declared(base)
    fields = []
    for key in dict.fromkeys([*values, *constraints]):
        given = constraints.get(key)
        given = None if given is None else ((given,) if isinstance(given, Rule) else tuple(given))
        if key in inherited:
            d = inherited[key]
            attr, typ, meaning, rule = d.attr, d.type, d.meaning, d.rules if given is None else given
            default = values.get(key, d.default)
        elif key in values:
            attr = key if key.isidentifier() and not keyword.iskeyword(key) else f"{key}_"
            typ, meaning, rule, default = type(values[key]).__name__, "(not described)", given or (), values[key]
        else:
            continue  # a rule on a key nobody declares: config.py reports the key when a file sets it
        fields.append((attr, typ, hp(default, meaning, *rule, key=key if attr != key else None)))
    return dataclasses.make_dataclass(f"{name}Hyper", fields, bases=(base,), frozen=True)


# -- the shared declarations -------------------------------------------------------------------
@dataclass(frozen=True)
class Common:
    """Every method's hyperparameters: the backbone, the budget and the speed switches (``amp``,
    ``channels_last``, ``compile``: how, not what, it computes; never part of a checkpoint's
    identity)."""
    model: str = hp("mlp", "backbone network (tune_lnl.models)", OneOf(tuple(MODELS)))
    augment: bool | str = hp(True, "training augmentation: true (the dataset's own), false/none, crop_flip, "
                                   "perspective_jitter, randaugment", OneOf(AUGMENT_MODES))
    epochs: int = hp(200, "training epochs", POSITIVE)
    batch_size: int = hp(128, "training batch size", POSITIVE)
    lr: float = hp(1e-3, "learning rate", POSITIVE)
    pretrained: bool = hp(False, "start the backbone from its ImageNet weights (resnet18)")
    num_workers: int = hp(-1, "decoding workers of streamed datasets (Clothing1M); -1: min(8, CPUs)",
                          Range(-1.0, message="must be >= 0 (or -1: min(8, CPUs))"))
    amp: str = hp("none", "bf16 autocast of training and evaluation (bf16) or none", OneOf(AMP_MODES))
    channels_last: bool = hp(False, "NHWC models and 4-D batches")
    compile: bool = hp(False, "torch.compile each model in place")


@dataclass(frozen=True)
class Optimizer:
    """The optimizer of methods with a plain learning rate: Adam (the MLC, Co-teaching, JoCoR
    papers) or SGD with momentum (the IMAE paper's CIFAR-10 setup)."""
    optimizer: str = hp("adam", "adam or sgd", OneOf(("adam", "sgd")))
    momentum: float = hp(0.9, "SGD momentum", RATE)
    weight_decay: float = hp(0.0, "L2 weight decay", NON_NEGATIVE)


@dataclass(frozen=True)
class LrSchedule:
    """``constant`` lr, or ``step``: divided by 10 at 50% and 75% of the epochs (He et al.)."""
    lr_schedule: str = hp("constant", "constant, or step (lr / 10 at 50% and 75% of the epochs)",
                          OneOf(("constant", "step")))


@dataclass(frozen=True)
class StrongView:
    """The strong view of the methods that train on a weak and a strong view of each image (SOP+, UNICON,
    ProMix; the weak one is the run's ``augment``)."""
    strong_augment: str = hp("randaugment", "the strong view's augmentation: randaugment (RandAugment + Cutout; "
                             "the papers: RandAugment or AutoAugment), crop_flip, perspective_jitter, none",
                             OneOf(STRONG_MODES))


#: the schedules of :class:`AnnealedLrSchedule` (tune_lnl.methods.base.step_lr computes them)
ANNEALED_SCHEDULES = ("constant", "step", "half", "cosine")


@dataclass(frozen=True)
class AnnealedLrSchedule(LrSchedule):
    """:class:`LrSchedule` plus the semi-supervised methods' schedules: ``half`` (lr / 10 from half the
    epochs on: DivideMix's 150 of 300) and ``cosine`` (``CosineAnnealingLR`` over the epochs down to
    ``lr * lr_final``: UNICON, PES 0.01, ProMix 0.001)."""
    lr_schedule: str = hp("cosine", "constant, step (lr / 10 at 50% and 75%), half (lr / 10 from 50%) or cosine "
                          "(annealed to lr * lr_final)", OneOf(ANNEALED_SCHEDULES))
    lr_final: float = hp(0.01, "cosine: the lr reached at the end, as a share of lr", Range(0.0, 1.0))
