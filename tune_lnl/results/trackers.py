"""Experiment trackers users already have (opt-in): every run's hyperparameters and per-epoch
metrics sent to a tracking server as well as written into the run folder.

:class:`Tracker` is the interface (``on_start(config)``, ``on_epoch(metrics)``, ``on_end(outcome)``);
:class:`~tune_lnl.results.recorder.RunRecorder` calls it, the one place every backend records a run
through (the Optuna backend's workers, the Ray backend's driver callback), so a tracker sees the same
runs whichever backend trains them. ``tune_lnl.run(tracker="mlflow")`` / ``--tracker mlflow`` turns one
on for a search by setting ``$TUNE_LNL_TRACKER`` for its duration (worker processes inherit it).

:class:`MLflowTracker` (``pip install -e ".[mlflow]"``): one MLflow experiment per tune_lnl experiment
(the folder's name), one MLflow run per trial or final seed named ``<method>/<setting>/<run folder>``
(``ce/sym-0.4/trial_0003``, ``ce/sym-0.4/seed_1``), its run config as parameters and its numeric
metrics per epoch (``step`` = the epoch). The store: ``$MLFLOW_TRACKING_URI`` if set, else
``sqlite:///<experiment>/mlflow.db`` (MLflow 3 refuses new file stores such as ``./mlruns``).
:class:`WandbTracker` (``--tracker wandb``, ``pip install -e ".[wandb]"``): the same runs in Weights &
Biases, offline into ``<experiment>/wandb/`` unless ``$WANDB_MODE`` is ``online``.
A tracker that fails (server down, store locked) warns once and stops tracking in that process:
it never fails a run; the run folder stays the record.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import time
from abc import ABC, abstractmethod
from pathlib import Path

from ..errors import ConfigError

log = logging.getLogger("tune_lnl")

#: the environment variable naming the active tracker (set by ``tune_lnl.run(tracker=...)``)
ENV = "TUNE_LNL_TRACKER"
#: per-epoch keys that are bookkeeping, not metrics (Ray's and ours)
NOT_METRICS = frozenset({"epoch", "pid", "end_time", "timestamp", "training_iteration", "iterations_since_restore",
                         "time_since_restore", "time_this_iter_s", "time_total_s", "done", "seed"})


class Tracker(ABC):
    """Receives one run's life (a trial or a final seed of an experiment), given its run folder
    ``<experiment>/<search|finals>/<method>/<setting>/<run>``."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)

    @property
    def exp_dir(self) -> Path:
        return self.run_dir.parents[3]

    @property
    def run_name(self) -> str:
        """``<method>/<setting>/<run folder>``."""
        return "/".join(self.run_dir.parts[-3:])

    @property
    def stage(self) -> str:
        """``search`` or ``finals``."""
        return self.run_dir.parts[-4]

    @abstractmethod
    def on_start(self, config: dict) -> None:
        """The run starts (or continues after a resume) with this full run config."""

    @abstractmethod
    def on_epoch(self, metrics: dict) -> None:
        """One epoch's metrics (``metrics["epoch"]`` the step)."""

    @abstractmethod
    def on_end(self, outcome: dict) -> None:
        """How the run ended: ``{"state": complete | pruned | failed, "error", "epoch"}``."""


def numeric_metrics(metrics: dict) -> dict[str, float]:
    """The finite numbers of an epoch's metrics that are not bookkeeping (:data:`NOT_METRICS`)."""
    return {k: float(v) for k, v in metrics.items() if k not in NOT_METRICS and isinstance(v, (int, float))
            and not isinstance(v, bool) and math.isfinite(v)}


class MLflowTracker(Tracker):
    """One MLflow run per tune_lnl run (see the module docstring). Runs are found again by name
    after a resume (the epochs redone after a checkpoint are logged again at the same step)."""

    _runs: dict[str, str] = {}  # run folder -> MLflow run id, in this process

    def __init__(self, run_dir: Path):
        super().__init__(run_dir)
        import mlflow
        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.exp_dir / 'mlflow.db'}"
        with _exp_lock(self.exp_dir):  # (the first process creates the store's tables: one at a time)
            self.client = mlflow.MlflowClient(tracking_uri=uri)
            exp = self.client.get_experiment_by_name(self.exp_dir.name)
            self.experiment_id = exp.experiment_id if exp else self.client.create_experiment(self.exp_dir.name)

    def _run_id(self) -> str:
        key = str(self.run_dir)
        if key not in self._runs:
            found = self.client.search_runs([self.experiment_id], f"tags.tune_lnl_run = '{self.run_name}'",
                                            max_results=1)
            self._runs[key] = found[0].info.run_id if found else self.client.create_run(
                self.experiment_id, run_name=self.run_name,
                tags={"tune_lnl_run": self.run_name, "stage": self.stage, "run_dir": key}).info.run_id
        return self._runs[key]

    def on_start(self, config: dict) -> None:
        from mlflow.entities import Param
        run_id = self._run_id()
        logged = self.client.get_run(run_id).data.params
        params = [Param(k, str(v) if not isinstance(v, (dict, list)) else json.dumps(v, default=str))
                  for k, v in sorted(config.items()) if k not in logged]
        for i in range(0, len(params), 100):  # MLflow's batch limit
            self.client.log_batch(run_id, params=params[i:i + 100])

    def on_epoch(self, metrics: dict) -> None:
        from mlflow.entities import Metric
        step, now = int(metrics.get("epoch", 0)), int(time.time() * 1000)
        self.client.log_batch(self._run_id(), metrics=[Metric(k, v, now, step)
                                                       for k, v in numeric_metrics(metrics).items()])

    def on_end(self, outcome: dict) -> None:
        run_id = self._run_id()
        self.client.set_tag(run_id, "state", outcome.get("state"))
        if outcome.get("error"):
            self.client.set_tag(run_id, "error", str(outcome["error"])[:5000])
        self.client.set_terminated(run_id, "FAILED" if outcome.get("state") == "failed" else "FINISHED")


class WandbTracker(Tracker):
    """One W&B run per tune_lnl run (``pip install wandb``): project = the experiment folder's name,
    run name ``<method>/<setting>/<run folder>``, group ``<method>/<setting>``, job type the stage,
    the run config as its config, the numeric metrics per epoch (``step`` = the epoch; W&B drops
    steps it has seen, i.e. epochs redone after a resume). Offline unless ``$WANDB_MODE`` says
    otherwise (a search never waits for a login): the runs are written to ``<experiment>/wandb/``,
    uploaded later with ``wandb sync <experiment>/wandb/offline-run-*``."""

    _runs: dict[str, object] = {}  # run folder -> the W&B run, in this process

    def _run(self, config: dict | None = None):
        key = str(self.run_dir)
        if key not in self._runs:
            import wandb
            method_setting = "/".join(self.run_dir.parts[-3:-1])
            self._runs[key] = wandb.init(
                project=self.exp_dir.name, name=self.run_name, group=method_setting, job_type=self.stage,
                config=config, dir=str(self.exp_dir), mode=os.environ.get("WANDB_MODE", "offline"),
                reinit="create_new", id=_stable_id(f"{self.exp_dir.name}/{self.stage}/{self.run_name}"),
                resume="allow")
        return self._runs[key]

    def on_start(self, config: dict) -> None:
        self._run(config).config.update(config, allow_val_change=True)

    def on_epoch(self, metrics: dict) -> None:
        self._run().log(numeric_metrics(metrics), step=int(metrics.get("epoch", 0)))

    def on_end(self, outcome: dict) -> None:
        run = self._run()
        run.summary["state"] = outcome.get("state")
        run.finish(exit_code=1 if outcome.get("state") == "failed" else 0)
        self._runs.pop(str(self.run_dir), None)


def _stable_id(text: str) -> str:
    """A W&B run id that is the same for the same run in every process (a resume continues it)."""
    import hashlib
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextlib.contextmanager
def _exp_lock(exp_dir: Path):
    exp_dir.mkdir(parents=True, exist_ok=True)
    with open(exp_dir / ".tracker.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


#: tracker name -> (class, the module it needs, how to install it)
TRACKERS: dict[str, tuple[type[Tracker], str, str]] = {
    "mlflow": (MLflowTracker, "mlflow", 'pip install -e ".[mlflow]"  (or: pip install mlflow-skinny)'),
    "wandb": (WandbTracker, "wandb", 'pip install -e ".[wandb]"  (or: pip install wandb)'),
}


def check_tracker(name: str | None) -> str | None:
    """``name`` if it is a known tracker whose package is installed (None: no tracker), else a
    :class:`~tune_lnl.errors.ConfigError` naming the known ones or how to install it."""
    if name is None:
        return None
    if not isinstance(name, str) or name not in TRACKERS:
        raise ConfigError(f"tracker: unknown tracker {name!r}; known: {', '.join(TRACKERS)}")
    _, module, install = TRACKERS[name]
    import importlib.util
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"tracker: {name!r} needs the {module} package, which is not installed: {install}")
    return name


@contextlib.contextmanager
def tracking(name: str | None):
    """Within the block, runs recorded by this process and its children go to tracker ``name``
    (checked by :func:`check_tracker`; None: nothing changes)."""
    if name is None:
        yield
        return
    before = os.environ.get(ENV)
    os.environ[ENV] = name
    SafeTracker.failed = False  # (a new search: an earlier search's broken store is tried again)
    MLflowTracker._runs.clear()
    WandbTracker._runs.clear()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before


class SafeTracker:
    """A run's tracker, if one is active (``$TUNE_LNL_TRACKER``), whose failures warn once per
    process and switch tracking off there: a tracker never fails a run."""

    failed = False  # (class-wide: once broken in this process, not retried for every run)

    def __init__(self, run_dir: Path):
        self.run_dir, self.tracker = Path(run_dir), None
        self.name = os.environ.get(ENV)

    def __call__(self, hook: str, arg: dict) -> None:
        if not self.name or SafeTracker.failed:
            return
        try:
            if self.tracker is None:
                self.tracker = TRACKERS[self.name][0](self.run_dir)
            getattr(self.tracker, hook)(arg)
        except Exception as exc:  # noqa: BLE001 -- tracking is a copy; the run folder is the record
            SafeTracker.failed = True
            log.warning("tracker %s failed (%s: %s); tracking stops in this process, the run goes on",
                        self.name, type(exc).__name__, exc)
