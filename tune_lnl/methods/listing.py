"""What ``tune-lnl methods`` shows: every available method (the built-ins and the entry points
installed packages register under ``tune_lnl.methods``) with its declared hyperparameters
(:mod:`tune_lnl.methods.hparams`), as aligned text tables or as one JSON-able dict.

A method is described from its class alone (its ``Hyper`` dataclass and its docstring); nothing
is trained or loaded. An installed plugin that fails to import is listed with its error, so that
one broken package does not hide the others.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

from ..errors import ConfigError
from ..plugins import known_names
from .registry import BUILTIN, GROUP, describe, method_class


@dataclass(frozen=True)
class Listed:
    """One method as listed: its ``name`` (the spec a space file writes), the class it names
    (``module:Class``), a one-line ``title``, its hyperparameters as
    :func:`~tune_lnl.methods.registry.describe` gives them, or the ``error`` that kept it from loading."""
    name: str
    cls: str = ""
    title: str = ""
    hyper: dict | None = None
    error: str | None = None


def available() -> list[str]:
    """The names of every available method: the built-ins, then the installed entry points."""
    return known_names(BUILTIN, GROUP)


def title_of(cls: type) -> str:
    """The first line of the class's own docstring (a base class's is not inherited), else of
    its module's: the method's one-line title."""
    doc = vars(cls).get("__doc__") or getattr(sys.modules.get(cls.__module__), "__doc__", None) or ""
    return doc.strip().split("\n", 1)[0].strip()


def listed(name: str, where: str = "tune-lnl methods") -> Listed:
    """``name`` described; a :class:`~tune_lnl.errors.ConfigError` if it names no usable method."""
    cls = method_class(name, where)
    return Listed(name, f"{cls.__module__}:{cls.__qualname__}", title_of(cls), describe(name, where))


def catalogue(names: list[str] | None = None) -> list[Listed]:
    """``names`` (default: every available method) described, in that order. Every name given
    must name a usable method (else the :class:`~tune_lnl.errors.ConfigError` that says why,
    naming the available ones); of the full listing, a method that fails to load is listed with
    its error instead."""
    if names:
        return [listed(name) for name in dict.fromkeys(names)]
    out = []
    for name in available():
        try:
            out.append(listed(name))
        except ConfigError as exc:
            out.append(Listed(name, error=str(exc)))
    return out


def as_json(entries: list[Listed]) -> dict:
    """``{method: {hyperparameter: {"default", "type", "meaning", "choices" | "low"/"high"...}}}``
    of the entries that loaded."""
    return {e.name: e.hyper for e in entries if e.error is None}


def _value(v) -> str:
    """A value as a space file (YAML) writes it."""
    if isinstance(v, bool) or v is None:
        return {True: "true", False: "false", None: "null"}[v]
    return str(v)


def _bound(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)  # a bound 0, not 0.0


def allowed(described: dict) -> str:
    """The choices (``a, b, c``) or the range (``(0, 1]``, ``>= 0``) of one described
    hyperparameter; empty when it has neither."""
    if "choices" in described:
        return ", ".join(_value(c) for c in described["choices"])
    low = next(((b, described[k]) for k, b in (("low", "["), ("above", "(")) if k in described), None)
    high = next(((b, described[k]) for k, b in (("high", "]"), ("below", ")")) if k in described), None)
    if low and high:
        return f"{low[0]}{_bound(low[1])}, {_bound(high[1])}{high[0]}"
    if low:
        return f"{'>=' if low[0] == '[' else '>'} {_bound(low[1])}"
    if high:
        return f"{'<=' if high[0] == ']' else '<'} {_bound(high[1])}"
    return ""


def table(entry: Listed) -> str:
    """One method as text: ``name: title``, its class, then one aligned row per hyperparameter
    (key, type, default, allowed values, meaning); or its error."""
    head = f"{entry.name}: {entry.title}" if entry.title else entry.name
    if entry.error is not None:
        return f"{head}\n  cannot be loaded: {entry.error}"
    rows = [("key", "type", "default", "allowed", "meaning")]
    rows += [(k, d["type"], _value(d["default"]), allowed(d), d["meaning"]) for k, d in entry.hyper.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[4] for r in rows]
    return "\n".join([head, f"  class {entry.cls}", *(line.rstrip() for line in lines)])
