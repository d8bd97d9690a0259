"""Find a user's class from a spec: a built-in name, an import path ``"package.module:ClassName"``
or a name registered by an installed package under an entry-point group.

The user's module is found through the normal Python path. :func:`module_roots` tells which
``sys.path`` folders the resolved plugin modules came from, so that worker processes (Ray's
and the Optuna backend's) can be given the same path.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import os
import sys
from pathlib import Path

from .errors import ConfigError

#: sys.path entries the plugin modules resolved in this process were found under
_roots: set[str] = set()


def is_import_path(spec: str) -> bool:
    return isinstance(spec, str) and ":" in spec


def entry_points(group: str) -> dict:
    """``name -> EntryPoint`` registered by installed packages under ``group``."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=group)}


def load_object(spec: str, what: str, where: str):
    """The object an import path ``"package.module:Name"`` names. ``what`` (e.g. "method") and
    ``where`` (e.g. "spaces/x.yaml: method") go into the error message."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"{where}: an import path must read 'package.module:ClassName' (got {spec!r})")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"{where}: {what} {spec!r}: no module named {exc.name!r} on the Python path "
                          f"(run from the folder that holds it, set PYTHONPATH, or install it)") from None
    except Exception as exc:  # noqa: BLE001 -- the user's module failed to import: say so, with why
        raise ConfigError(f"{where}: {what} {spec!r}: importing {module_name!r} failed: "
                          f"{type(exc).__name__}: {exc}") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{where}: {what} {spec!r}: module {module_name!r} has no {attr!r}")
        obj = getattr(obj, part)
    _remember_root(module)
    return obj


def known_names(builtin: dict, group: str) -> list[str]:
    """Built-in names and the entry-point names installed packages register under ``group``."""
    return list(builtin) + sorted(n for n in entry_points(group) if n not in builtin)


def resolve(spec, builtin: dict, group: str, what: str, where: str):
    """The object a spec names: a built-in name (``builtin``: name -> import path), an import
    path ``"package.module:Name"``, or a name registered under the entry-point ``group``. A
    clear :class:`~tune_lnl.errors.ConfigError` naming ``where`` and ``spec`` otherwise."""
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"{where}: a {what} is a built-in name or an import path 'package.module:ClassName' "
                          f"(got {spec!r})")
    if spec in builtin:
        return load_object(builtin[spec], what, where)
    if is_import_path(spec):
        return load_object(spec, what, where)
    eps = entry_points(group)
    if spec not in eps:
        raise ConfigError(f"{where}: unknown {what} {spec!r}; allowed: {', '.join(known_names(builtin, group))}, "
                          f"or an import path 'package.module:ClassName' (got {spec!r})")
    try:
        return eps[spec].load()
    except Exception as exc:  # noqa: BLE001 -- the user's package failed to load: say so, with why
        raise ConfigError(f"{where}: {what} {spec!r} (entry point {eps[spec].value}): loading it failed: "
                          f"{type(exc).__name__}: {exc}") from None


def _remember_root(module) -> None:
    """Record the ``sys.path`` entry ``module`` was imported from (a user's folder, not the
    standard library or site-packages, which every process has anyway)."""
    file = getattr(module, "__file__", None)
    if not file:
        return
    depth = module.__name__.count(".") + (1 if Path(file).name == "__init__.py" else 0)
    root = Path(file).resolve().parents[depth]
    _roots.add(str(root))


def module_roots() -> list[str]:
    return sorted(_roots)


@contextlib.contextmanager
def worker_python_path():
    """While inside: the folders plugin modules came from (and the current folder, which
    ``python -m`` searches first) are on ``PYTHONPATH``, for the processes started meanwhile
    (Ray's workers, the Optuna backend's spawned workers). Yields the value; restores the
    previous one on the way out."""
    before = os.environ.get("PYTHONPATH")
    parts = [p for p in (before or "").split(os.pathsep) if p]
    for root in [os.getcwd(), *module_roots()]:
        if root not in parts:
            parts.append(root)
    os.environ["PYTHONPATH"] = os.pathsep.join(parts)
    try:
        yield os.environ["PYTHONPATH"]
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


def lazy_exports(package: str, exports: dict[str, str]):
    """``(__getattr__, __dir__)`` of a package whose public names (``exports``: name -> the module
    that defines it) are imported on first use, so that importing the package (``tune-lnl --help``,
    a worker importing one module, the torch-free proxy registry) does not import them all."""
    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(exports))
    return __getattr__, __dir__
