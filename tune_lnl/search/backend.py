"""The search-backend interface: :class:`SearchBackend` (what runs an experiment's searches and
final seeds) and the registry that finds one by name, like methods are found.

A backend is named on the command line (``--backend NAME``) or in ``tune_lnl.run(backend=...)``:

* a built-in name (:data:`BUILTIN`: ``ray``, ``optuna``), or ``auto``: the first built-in that can
  run here (Ray Tune when it is installed, else Optuna alone);
* a name an installed package registers under the entry-point group ``tune_lnl.backends``
  (``[tune_lnl.backends]`` / ``mine = my_package.module:MyBackend``);
* an import path ``"package.module:ClassName"``.

:mod:`tune_lnl.search.experiment` drives any of them through this interface only (it never tests a
backend's name): ``cls.check_options(...)`` before anything is written, then ``backend =
cls(name, exp_dir, remote=..., **options)``, ``backend.open(python_path)``, ``backend.load_study(key)``
for the searches that had ended, ``backend.run_jobs(jobs, plan, on_search_done)``, and
``backend.close()``. Every run folder a backend writes goes through
:class:`tune_lnl.results.recorder.RunRecorder`, so what ``results/`` reads back is the same whichever
backend wrote it.
"""
from __future__ import annotations

import abc
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..errors import ConfigError, shown
from ..plugins import entry_points, is_import_path, known_names, resolve
from ..results.runs import STORAGE_FILES, open_storage

#: the built-in backends: name -> import path of their class (``auto`` takes the first that can run)
BUILTIN = {
    "ray": "tune_lnl.search.ray_cluster:RayBackend",
    "optuna": "tune_lnl.search.optuna_backend:OptunaBackend",
}
#: entry-point group under which installed packages register backends (name -> class)
GROUP = "tune_lnl.backends"
#: the name that picks the first built-in backend able to run here
AUTO = "auto"


@dataclass(frozen=True)
class Plan:
    """What :meth:`SearchBackend.run_jobs` runs besides the jobs: where the data is, trials per
    study, the final seeds, whether it continues an interrupted experiment, and whether every
    study runs at once (else one study after another, then the finals)."""
    data_root: Path
    num_samples: int
    seeds: list[int]
    resume: bool = False
    at_once: bool = True


#: ``on_search_done(job, study, wall_s)``: a search ended; sets ``job.best`` (raises
#: :class:`~tune_lnl.errors.SearchError` when the study has no result: no finals for it)
OnSearchDone = Callable[[object, object, float], None]
#: what :meth:`SearchBackend.run_jobs` returns: (method, setting) -> seed -> epoch history of the
#: final runs that completed
Finals = dict[tuple[str, str], dict[int, list[dict]]]


class SearchBackend(abc.ABC):
    """Runs an experiment's searches (one Optuna study per method and noise setting, named
    ``<method>/<setting>``, in the experiment folder's :attr:`storage_file`) and each setting's
    final seeds, writing every run folder through
    :class:`~tune_lnl.results.recorder.RunRecorder`.

    A subclass sets :attr:`storage_file` and implements :meth:`run_jobs`; it may declare the run
    options it accepts (:attr:`options`), say why it cannot run here (:meth:`unavailable`), keep
    the experiment at a URI (:attr:`remote_storage`) and start or stop what it needs
    (:meth:`open`, :meth:`close`)."""

    #: one line for ``--backend``'s help
    summary: ClassVar[str] = ""
    #: the Optuna storage file of its studies in the experiment folder (one of
    #: :data:`tune_lnl.results.runs.STORAGE_FILES`: what the report and ``--resume`` read)
    storage_file: ClassVar[str]
    #: the run options it accepts (``tune_lnl.run``'s keyword, the CLI's ``--flag``) -> what the
    #: option does (said when another backend is given it)
    options: ClassVar[dict[str, str]] = {}
    #: whether ``--storage-path`` may be a URI (the experiment kept there, a working copy here)
    remote_storage: ClassVar[bool] = False

    def __init__(self, name: str, exp_dir: Path, *, remote: str | None = None, **options):
        self.name, self.exp_dir, self.remote = name, Path(exp_dir), remote
        self.config = {key: options.get(key) for key in self.options}

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this backend cannot run here (e.g. a package is not installed), or None."""
        return None

    @classmethod
    def check_options(cls, name: str, **given) -> dict:
        """The options of ``given`` this backend accepts (those given as None are not given); an
        option it does not accept: :class:`ConfigError` saying what the option is for."""
        for key, value in given.items():
            if value is not None and key not in cls.options:
                owners = [n for n in BUILTIN if key in backend_class(n).options]
                meaning = next((backend_class(n).options[key] for n in owners), "is not an option here")
                raise ConfigError(f"--{key.replace('_', '-')} {meaning} (--backend {name} has no such option)")
        return {key: value for key, value in given.items() if key in cls.options}

    @classmethod
    def trial_slots(cls, space, options: dict) -> tuple[int, int]:
        """``(trials at a time, CPU threads each)`` a run with ``options`` would get (what ``--plan``
        divides the work by): by default this machine's (its CPUs over ``search.cpus_per_trial``,
        on a GPU at most ``1 / search.gpus_per_trial`` per GPU)."""
        from .studies import local_slots
        return local_slots(space)

    def open(self, python_path: str) -> None:
        """Start what the search needs (a cluster, ...) before any study is opened; worker
        processes it starts get ``python_path`` as their ``PYTHONPATH`` (the user's plugins)."""

    @abc.abstractmethod
    def run_jobs(self, jobs: list, plan: Plan, on_search_done: OnSearchDone) -> Finals:
        """Run every job's search (those whose ``best`` is not known yet; ``on_search_done``
        sets it), then its final seeds (``plan.seeds``). Returns (method, setting) -> seed ->
        epoch history of the final runs that completed; a job whose search or every final run
        failed is left out and said in a :class:`~tune_lnl.errors.SearchError` at the end."""

    def load_study(self, key: str):
        """The Optuna study ``key`` (``<method>/<setting>``) of this experiment, from its storage."""
        import optuna
        return optuna.load_study(study_name=key, storage=self.storage())

    def storage(self):
        """This experiment's Optuna storage (:attr:`storage_file`, opened as the report opens it)."""
        return open_storage(self.exp_dir, self.storage_file)

    def close(self) -> None:
        """Stop what :meth:`open` started (also after a failure or an interruption)."""


# -- the registry ---------------------------------------------------------------------------------

_resolved: dict[str, type[SearchBackend]] = {}


def backend_names() -> list[str]:
    """Every name ``--backend`` takes here: ``auto``, the built-ins, the installed plugins."""
    return [AUTO, *known_names(BUILTIN, GROUP)]


def backend_class(spec: str, where: str = "--backend") -> type[SearchBackend]:
    """The :class:`SearchBackend` subclass ``spec`` names (a built-in name, an entry-point name,
    an import path); :class:`ConfigError` naming the available ones otherwise."""
    if isinstance(spec, str) and spec in _resolved:
        return _resolved[spec]
    if not isinstance(spec, str) or not (spec in BUILTIN or is_import_path(spec) or spec in entry_points(GROUP)):
        raise ConfigError(f"{where}: unknown value {shown(spec)}; allowed: {', '.join(backend_names())}, or an "
                          f"import path 'package.module:ClassName'")
    cls = resolve(spec, BUILTIN, GROUP, "backend", where)
    if not (inspect.isclass(cls) and issubclass(cls, SearchBackend)) or inspect.isabstract(cls):
        raise ConfigError(f"{where}: {spec!r} is not a search backend: it must be a class that subclasses "
                          f"tune_lnl.search.backend.SearchBackend and implements run_jobs (got {cls!r})")
    if getattr(cls, "storage_file", None) not in STORAGE_FILES:
        raise ConfigError(f"{where}: {spec!r}: its storage_file must be one of {', '.join(STORAGE_FILES)} (got "
                          f"{getattr(cls, 'storage_file', None)!r})")
    _resolved[spec] = cls
    return cls


def backends_help() -> str:
    """``--backend``'s help: each built-in's :attr:`~SearchBackend.summary`, ``auto``, the plugins."""
    plugins = [n for n in known_names(BUILTIN, GROUP) if n not in BUILTIN]
    return ("; ".join(f"{n}: {backend_class(n).summary}" for n in BUILTIN)
            + f"; {AUTO} (default): the first of {', '.join(BUILTIN)} that can run here"
            + (f"; installed plugins: {', '.join(plugins)}" if plugins else "")
            + f"; or a backend an installed package registers (entry-point group {GROUP})")


def option_backends(key: str) -> str:
    """``--backend NAME`` for each built-in backend that accepts the run option ``key``."""
    return " or ".join(f"--backend {n}" for n in BUILTIN if key in backend_class(n).options)


def choose_backend(spec: str, **options) -> tuple[str, type[SearchBackend], dict]:
    """``(name, class, accepted options)`` of the backend ``spec`` names, checked to run here
    and to accept the ``options`` given (those not None): ``auto`` is the first built-in that can
    run here. :class:`ConfigError` otherwise (an unknown name lists the available ones)."""
    if spec == AUTO:
        spec = next((n for n in BUILTIN if backend_class(n).unavailable() is None), list(BUILTIN)[-1])
    cls = backend_class(spec)
    why = cls.unavailable()
    if why:
        raise ConfigError(f"--backend {spec}: {why}")
    return spec, cls, cls.check_options(spec, **options)


def resolve_backend(spec: str, address=None) -> str:
    """The name of the backend ``spec`` names (``auto``: Ray when it is installed, else the
    Optuna backend), checked as :func:`choose_backend` checks it."""
    return choose_backend(spec, address=address)[0]
