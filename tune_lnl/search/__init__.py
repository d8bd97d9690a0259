"""Search: one experiment's flow (:mod:`.experiment`), the backend-independent study code
(:mod:`.studies`), and the two backends with one interface (``search_setting``, ``load_study``,
``finals_many``): :mod:`.ray_backend` (Ray Tune + Optuna + ASHA) and :mod:`.optuna_backend`
(Optuna alone, worker processes).

Layer: imports config, methods, data and results (below it). ``python -m tune_lnl.search`` runs
:func:`tune_lnl.cli.search_main` (``__main__.py``).
"""
from .experiment import check_device, lock_experiment, resolve_backend, run_experiment

__all__ = ["check_device", "lock_experiment", "resolve_backend", "run_experiment"]
