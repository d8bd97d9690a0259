"""Search: one experiment's flow (:mod:`.experiment`), the backend-independent study code
(:mod:`.studies`: the jobs, the per-study limit, what a finished search records), and the two
backends with one interface (``run_jobs``: every search and its finals, at once or one study at
a time; ``load_study``): :mod:`.ray_backend` (Ray Tune + Optuna + ASHA) and
:mod:`.optuna_backend` (Optuna alone, worker processes).

Layer: imports config, methods, data and results (below it). ``python -m tune_lnl.search`` runs
:func:`tune_lnl.cli.search_main` (``__main__.py``).
"""
from .experiment import check_device, lock_experiment, resolve_backend, run_experiment

__all__ = ["check_device", "lock_experiment", "resolve_backend", "run_experiment"]
