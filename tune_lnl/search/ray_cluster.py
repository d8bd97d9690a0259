"""``--backend ray`` as a :class:`~tune_lnl.search.backend.SearchBackend`: whether Ray Tune is
installed, starting (or joining, ``--address``) the Ray cluster and shutting it down. The Tune
runs themselves are :mod:`tune_lnl.search.ray_backend`, imported once Ray is started: this module
imports no Ray at import time, so asking whether the backend can run here needs none."""
from __future__ import annotations

import importlib.util
import os
from typing import ClassVar

from ..results.runs import SQLITE
from .backend import Finals, OnSearchDone, Plan, SearchBackend


class RayBackend(SearchBackend):
    """Ray Tune + Optuna (TPE) + ASHA; the studies in ``optuna.db`` (SQLite)."""

    summary: ClassVar[str] = "Ray Tune + Optuna + ASHA"
    storage_file: ClassVar[str] = SQLITE
    options: ClassVar[dict[str, str]] = {"address": "joins a Ray cluster: it needs --backend ray"}
    remote_storage: ClassVar[bool] = True

    @classmethod
    def unavailable(cls) -> str | None:
        try:  # finding ray.tune imports the ray package: a broken install counts as none
            found = importlib.util.find_spec("ray") is not None and importlib.util.find_spec("ray.tune") is not None
        except ImportError:
            found = False
        return None if found else ("Ray Tune is not installed here; use --backend optuna (Optuna alone, same "
                                   "outputs) or pip install 'ray[tune]'")

    def open(self, python_path: str) -> None:
        """A new Ray of our own (``address="local"``: never a cluster some earlier ``ray start`` left
        on this machine), or the cluster at ``--address``, whose workers get the same Python path
        (the folders must exist on every node)."""
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"  # our TensorBoard callback replaces Ray's
        # Ctrl-C is ours (search/interrupt.py): Tune's own handler ended a run as if it had finished
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
        import ray
        address = self.config["address"]
        self.runtime_env = {"env_vars": {"PYTHONPATH": python_path}} if address else None
        if address:
            ray.init(address=address, runtime_env=self.runtime_env)
        else:
            ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)

    def run_jobs(self, jobs: list, plan: Plan, on_search_done: OnSearchDone) -> Finals:
        from . import ray_backend
        return ray_backend.run_jobs(jobs, self.exp_dir, plan.data_root, plan.num_samples, plan.seeds, plan.resume,
                                    on_search_done, at_once=plan.at_once, runtime_env=self.runtime_env,
                                    remote=self.remote)

    def load_study(self, key: str):
        from . import ray_backend  # (its storage waits for the lock other drivers hold)
        return ray_backend.load_study(self.exp_dir, key)

    def close(self) -> None:
        import ray
        ray.shutdown()
