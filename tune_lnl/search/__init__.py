"""Search: one experiment's flow (:mod:`.experiment`), the backend-independent study code
(:mod:`.studies`: the jobs, the per-study limit, what a finished search records), the
search-backend interface and registry (:mod:`.backend`: :class:`SearchBackend`, found by name
like methods, plugins under the entry-point group ``tune_lnl.backends``) and the two built-in
backends: ``ray`` (:mod:`.ray_cluster`, its Tune runs in :mod:`.ray_backend`: Ray Tune + Optuna +
ASHA) and ``optuna`` (:mod:`.optuna_backend`: Optuna alone, a pool of worker processes).

Layer: imports config, methods, data and results (below it). ``python -m tune_lnl.search`` runs
:func:`tune_lnl.cli.search_main` (``__main__.py``).
"""
from .backend import Plan, SearchBackend, backend_names
from .experiment import check_device, lock_experiment, resolve_backend, run_experiment

__all__ = ["Plan", "SearchBackend", "backend_names", "check_device", "lock_experiment", "resolve_backend",
           "run_experiment"]
