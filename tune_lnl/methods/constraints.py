"""Value constraints a method declares on its own class (``constraints = {"lr": POSITIVE, ...}``)
and :mod:`tune_lnl.config` applies to every fixed value, paper value, both bounds of a range and
every choice of that method (file, key, value named in the error). Rules merge along the class
hierarchy: a subclass adds rules for its keys and may replace an inherited one.

Besides per-key rules, a method checks relations between keys of a whole run config in its
classmethod :meth:`tune_lnl.methods.base.Method.check_config` (e.g. ``stage1 <= stage2 <= epochs``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass


class Rule:
    """One constraint on one run-config value."""

    def problem(self, value) -> str | None:
        """None if ``value`` is allowed, else what is wrong (the error message's middle part)."""
        raise NotImplementedError

    #: whether the rule applies to the bounds of a searched range (numeric rules) or only to
    #: single values (choices)
    numeric = True


@dataclass(frozen=True)
class Range(Rule):
    """``low (<|<=) value (<|<=) high``; ``message`` replaces the generated one."""
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    message: str | None = None

    def problem(self, value) -> str | None:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return None  # the type check (from the default) reports it
        ok_low = value > self.low if self.low_open else value >= self.low
        ok_high = value < self.high if self.high_open else value <= self.high
        if ok_low and ok_high:
            return None
        if self.message:
            return self.message
        if self.high == math.inf:
            return f"must be {'>' if self.low_open else '>='} {_num(self.low)}"
        if self.low == -math.inf:
            return f"must be {'<' if self.high_open else '<='} {_num(self.high)}"
        return (f"must lie in {'(' if self.low_open else '['}{_num(self.low)}, {_num(self.high)}"
                f"{')' if self.high_open else ']'}")


@dataclass(frozen=True)
class OneOf(Rule):
    """One of a fixed set of values."""
    choices: tuple
    numeric = False

    def problem(self, value) -> str | None:
        if value in self.choices:
            return None
        return f"unknown value; allowed: {', '.join(map(str, self.choices))}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


#: the usual rules
RATE = Range(0.0, 1.0, high_open=True)  #: a rate or probability that must stay below 1: [0, 1)
POSITIVE = Range(0.0, low_open=True)
NON_NEGATIVE = Range(0.0)
NON_POSITIVE = Range(high=0.0)


def as_rules(rule) -> tuple[Rule, ...]:
    """A class's ``constraints`` value: one :class:`Rule` or a tuple of them."""
    if isinstance(rule, Rule):
        return (rule,)
    return tuple(rule)


def merged(cls) -> dict[str, tuple[Rule, ...]]:
    """Every rule of ``cls`` and its bases (the most derived class wins per key)."""
    out: dict[str, tuple[Rule, ...]] = {}
    for klass in reversed(cls.__mro__):
        for key, rule in vars(klass).get("constraints", {}).items():
            out[key] = as_rules(rule)
    return out


def problems(rules: tuple[Rule, ...], value, bound: bool = False) -> list[str]:
    """What ``rules`` find wrong with ``value`` (``bound``: a range bound: choices skipped)."""
    return [p for r in rules if (r.numeric or not bound) and (p := r.problem(value)) is not None]


def warmup_inside(hp, why: str, low: int = 0, **shown) -> list[tuple[str, object]]:
    """The relation a method's ``warmup`` has with its run (a ``check_config`` problem list):
    ``low <= warmup < epochs``, so that the phase after the warm-up runs; ``why`` is said in the
    problem, ``shown`` adds values to the offending ones."""
    if low <= hp.warmup < hp.epochs:
        return []
    return [(f"needs {low} <= warmup < epochs ({why})", {"warmup": hp.warmup, "epochs": hp.epochs, **shown})]
