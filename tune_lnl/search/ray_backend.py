"""Ray backend (``--backend ray``): one Optuna (TPE) + ASHA search per method and noise setting
on Ray Tune, and the finals. The Ray-free alternative is :mod:`tune_lnl.search.optuna_backend`.

* Trials report ``proxy_best`` (the running maximum of the configured proxy); ASHA compares it
  at its rungs and Optuna records it as the trial's value. Test accuracy never enters either.
* Ray tells Optuna COMPLETE for a trial ASHA stopped early; :class:`PruningOptunaSearch` tells
  PRUNED instead (the trial ids come from :class:`RecordingASHA`), so TPE and importance
  analyses see which trials really finished.
* The study lives in ``<experiment>/optuna.db`` (SQLite; one study per method and setting,
  named ``<method>/<setting>``); Ray's trials in ``search/<method>/<setting>/``.
* Every study at once (:func:`run_jobs`): a pool of driver processes (at most one per trial
  slot), each running a study's search (at most its cap of trials at a time) or a setting's
  finals on the same cluster; Ray places all their trials. Every result line names the Ray node
  that ran it (``node_id``).
"""
from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
import re
import signal
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from optuna.trial import TrialState
from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from ..config import SpaceConfig
from ..errors import Interrupted, SearchError
from ..methods.ray_adapter import MethodTrainable
from ..methods.registry import BUILTIN
from ..plugins import load_object
from ..results.recorder import WORKER, RunRecorder
from ..results.runs import sqlite_url
from ..results.storage import join, pull, remote_exists
from ..results.tensorboard import RunWriter
from .interrupt import hurry, sigint_blocked
from .studies import (
    FAILURES,
    MAX_WORKER_RETRIES,
    METRIC,
    Job,
    distributions,
    log_failure,
    run_dirs,
    rungs,
    setting_seed,
    slots,
    study_cap,
    study_name,
)

log = logging.getLogger("tune_lnl")


class RecordingASHA(ASHAScheduler):
    """ASHA that remembers which trials it stopped before ``max_t`` (= pruned)."""

    def __init__(self, *args, early_stopped: set | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.early_stopped = early_stopped if early_stopped is not None else set()

    def on_trial_result(self, tune_controller, trial, result):
        decision = super().on_trial_result(tune_controller, trial, result)
        if decision == self.STOP and result.get(self._time_attr, self._max_t) < self._max_t:
            self.early_stopped.add(trial.trial_id)
        return decision


class PruningOptunaSearch(OptunaSearch):
    """OptunaSearch that tells Optuna PRUNED (not COMPLETE) for trials ASHA stopped early, names
    each Optuna trial's Ray trial (user attribute ``ray_trial_id``: the report matches run folders
    by it), and on a resume tells FAIL for the trials an interruption lost (see :meth:`restore`)."""

    def __init__(self, *args, early_stopped: set | None = None, failures: Path | None = None, label: str = "",
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.early_stopped = early_stopped if early_stopped is not None else set()
        self.failures, self.label = failures, label

    def suggest(self, trial_id):
        out = super().suggest(trial_id)
        if isinstance(out, dict) and trial_id in self._ot_trials:
            self._ot_trials[trial_id].set_user_attr("ray_trial_id", trial_id)
        return out

    def _told(self, trial_id) -> bool:
        """Has the study already told this trial's end? Tune's saved run state lags the study:
        after a kill, a trial that had ended (e.g. PRUNED at a rung) may still be running in the
        restored Tune run, which continues it from its checkpoint. Its results then go nowhere:
        the study keeps its first verdict (reporting to it would raise and stop the search)."""
        ot_trial = self._ot_trials.get(trial_id)
        return ot_trial is not None and self._ot_study._storage.get_trial(ot_trial._trial_id).state.is_finished()

    def on_trial_result(self, trial_id, result):
        if not self._told(trial_id):
            super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id, result=None, error=False):
        if trial_id in self._completed_trials or self._told(trial_id):
            self._completed_trials.add(trial_id)
            return None
        if error or (result or {}).get("failed"):
            # a crashed (retries exhausted) or diverged trial: FAIL, whatever it reported before
            # (Ray's OptunaSearch would tell COMPLETE when an errored trial had earlier results)
            try:
                self._ot_study.tell(self._ot_trials[trial_id], None, state=TrialState.FAIL)
            except Exception as exc:  # e.g. already told before a resume
                log.warning("could not mark trial %s failed: %s", trial_id, exc)
            self._completed_trials.add(trial_id)
            return None
        if not result or trial_id not in self.early_stopped:
            return super().on_trial_complete(trial_id, result=result, error=error)
        ot_trial = self._ot_trials[trial_id]
        value, step = result.get(self.metric), result.get("training_iteration")
        try:
            if value is not None and step is not None:
                ot_trial.report(value, step)  # Ray does not forward the result that led to STOP
            self._ot_study.tell(ot_trial, None, state=TrialState.PRUNED)  # value = last report
        except Exception as exc:  # e.g. already told before a resume
            log.warning("could not mark trial %s pruned: %s", trial_id, exc)
        self._completed_trials.add(trial_id)

    def restore(self, checkpoint_path):
        shared = self.early_stopped
        super().restore(checkpoint_path)  # replaces __dict__; keep sharing the scheduler's set
        shared.update(self.early_stopped)
        self.early_stopped = shared
        self._tell_lost_trials()

    def _tell_lost_trials(self) -> None:
        """A trial Optuna handed out after Tune's last saved state was lost with the interruption:
        the restored Tune run does not know it (so it never ends) and asks another in its place.
        It is told FAIL and recorded, so the study holds ``num_samples`` finished trials besides
        it and no trial stays RUNNING. (Its run folder, if it started, keeps its epochs.)"""
        known = {t.number for t in self._ot_trials.values()}
        for t in self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.number in known:
                continue
            self._ot_study.tell(t.number, state=TrialState.FAIL)
            if self.failures is not None:
                log_failure(self.failures, self.label, t.number, "lost to the interruption",
                            f"Ray trial {t.user_attrs.get('ray_trial_id')} started after the run's last saved "
                            "state; another trial is asked in its place", None, t.params, None)


class FailureLog(tune.Callback):
    """Appends one JSON line per failed trial to ``<experiment>/failures.jsonl``: diverged or
    raising trials (reported by the trainable, not retried) and trials whose worker kept dying
    after Ray's retries."""

    def __init__(self, path: Path, label: str):
        self.path, self.label = path, label

    def _write(self, trial, kind: str, error: str, epoch) -> None:
        log_failure(self.path, self.label, trial.trial_id, kind, error, epoch, trial.config, trial.path)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get("failed"):
            self._write(trial, "method", result.get("error", "?"), result.get("epoch"))

    def on_trial_error(self, iteration, trials, trial, **info):
        path = os.path.join(trial.path or "", "error.txt")
        lines = Path(path).read_text().strip().splitlines() if os.path.exists(path) else []
        self._write(trial, "worker (retries exhausted)", lines[-1] if lines else "see error.txt",
                    (trial.last_result or {}).get("epoch"))


class RecorderCallback(tune.Callback):
    """Each Ray trial's folder written as every backend writes a run folder
    (:class:`~tune_lnl.results.recorder.RunRecorder`): ``params.json`` the full run config (over
    Ray's, which holds only the trial's own values), ``outcome.json`` how it ended (``pruned``: ASHA
    stopped it before its last epoch). Its ``result.json`` lines are Ray's (:class:`JsonLoggerCallback`,
    before this one in the list); its checkpoints are Ray's folders."""

    def __init__(self, base_config: dict):
        self.base, self.epochs = base_config, int(base_config["epochs"])
        self.seen: set[str] = set()

    def _params(self, trial) -> None:
        self.seen.add(trial.trial_id)
        _recorder(trial).params({**self.base, **trial.config})

    def on_trial_start(self, iteration, trials, trial, **info):
        self._params(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if trial.trial_id not in self.seen:  # (a restored run's trial: Ray's logger rewrote the file)
            self._params(trial)
        _recorder(trial).tracked_epoch(result)  # (Ray's logger wrote the line; a tracker gets it)

    def on_trial_complete(self, iteration, trials, trial, **info):
        r = trial.last_result or {}
        if r.get("failed"):
            state = "failed"
        else:
            state = "complete" if int(r.get("training_iteration", self.epochs)) >= self.epochs else "pruned"
        _recorder(trial).finish(state, r.get("error"), r.get("epoch"))

    def on_trial_error(self, iteration, trials, trial, **info):
        _recorder(trial).finish("failed", f"its worker process died ({MAX_WORKER_RETRIES} retries)",
                                (trial.last_result or {}).get("epoch"), kind=WORKER)


def _recorder(trial) -> RunRecorder:
    """The recorder of a Ray trial's folder: Ray's local (staging) folder, synced by Ray to
    ``trial.path``, the run's folder in the experiment (what a tracker names the run by)."""
    return RunRecorder(trial.local_path, tracked_as=getattr(trial, "path", None))


def run_name(trial) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", str(trial))


class TensorBoardCallback(tune.Callback):
    """Writes ``<logdir>/<trial name>`` runs from the Ray driver (trials need no TensorBoard)."""

    def __init__(self, logdir: str | Path, base_config: dict):
        self.logdir = Path(logdir)
        self.base = base_config
        self.writers: dict[str, RunWriter] = {}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if trial.trial_id not in self.writers:
            self.writers[trial.trial_id] = RunWriter(self.logdir / run_name(trial), {**self.base, **trial.config})
        self.writers[trial.trial_id].add(result)

    def _close(self, trial):
        writer = self.writers.pop(trial.trial_id, None)
        if writer is not None:
            writer.close()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._close(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._close(trial)


class ProgressCallback(tune.Callback):
    """Concise progress: one line per finished trial (the status line with the ETA, over every
    study: :mod:`tune_lnl.search.progress`, for every backend)."""

    def __init__(self, label: str, total: int):
        self.label, self.total, self.done = label, total, 0

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.done += 1
        r = trial.last_result or {}
        print(f"[{self.label}] trial {self.done}/{self.total} {trial.trial_id}: epochs {r.get('epoch')}, "
              f"{METRIC} {r.get(METRIC, float('nan')):.4f}", flush=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.done += 1



storage_url = sqlite_url


def rdb_storage(exp_dir: Path):
    """The experiment's ``optuna.db``, waiting up to a minute for a lock: with every study at
    once, several driver processes write their studies into it."""
    import optuna
    return optuna.storages.RDBStorage(storage_url(exp_dir), engine_kwargs={"connect_args": {"timeout": 60}})


def load_study(exp_dir: Path, key: str):
    import optuna
    return optuna.load_study(study_name=key, storage=rdb_storage(exp_dir))


def trial_resources(cpus_per_trial: float, gpus_per_trial: float) -> tuple[dict, int]:
    """Per-trial request and concurrency from what Ray sees: a GPU share only if a GPU exists."""
    import ray
    avail = ray.cluster_resources()
    cpus, gpus = avail.get("CPU", 1), avail.get("GPU", 0)
    cpt, concurrency = slots(cpus, gpus, cpus_per_trial, gpus_per_trial)  # never more than the cluster has
    request = {"cpu": cpt}
    if gpus > 0 and gpus_per_trial > 0:
        request["gpu"] = gpus_per_trial
    return request, concurrency


def trainable_class(method: str):
    """A built-in method's own Trainable (``trainables/<name>.py``); for a user's method the
    generic :class:`~tune_lnl.methods.ray_adapter.MethodTrainable`, which finds the class from
    the run config's ``method`` inside the worker (through the Python path)."""
    if method in BUILTIN:
        return load_object(f"{BUILTIN[method]}Trainable", "trainable", f"method {method}")
    return MethodTrainable


def _trainable(space: SpaceConfig, base: dict, request: dict):
    return tune.with_resources(tune.with_parameters(trainable_class(space.method), base=base), request)


def _run_config(storage: Path, name: str, label: str, total: int, base: dict, tb_dir: Path, failures: Path):
    return tune.RunConfig(
        storage_path=str(storage), name=name, verbose=0,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2, checkpoint_frequency=1, checkpoint_at_end=True),
        failure_config=tune.FailureConfig(max_failures=MAX_WORKER_RETRIES),
        callbacks=[CSVLoggerCallback(), JsonLoggerCallback(), RecorderCallback(base), TensorBoardCallback(tb_dir, base),
                   ProgressCallback(label, total), FailureLog(failures, label)])


def _where(exp_dir: Path, part: str, method: str, setting: str, remote: str | None) -> tuple[str, str]:
    """``(storage path, run path)`` of one Tune run: ``<experiment>/<part>/<method>`` and its
    ``<setting>`` folder, in the remote folder when the storage is a URI."""
    base = join(remote, part, method) if remote else str(Path(exp_dir) / part / method)
    return base, (join(remote, part, method, setting) if remote else str(Path(base) / setting))


def _restore_or_new(run_path: str, remote: str | None, trainable, resume: bool, label: str, new_tuner):
    """``Tuner.restore`` of an interrupted run (finished trials kept, running ones continue from
    their last checkpoint), else a new Tuner from ``new_tuner()``."""
    pkl = join(run_path, "tuner.pkl") if remote else str(Path(run_path) / "tuner.pkl")
    if resume and (remote_exists(pkl) if remote else Path(pkl).exists()):
        print(f"[{label}] resuming from {run_path}", flush=True)
        return tune.Tuner.restore(run_path, trainable=trainable, resume_unfinished=True, resume_errored=True)
    return new_tuner()


def _fetch(run_path: str, remote: str | None, run_root: Path) -> None:
    """With a URI: the run's result lines (not its checkpoints) into the working copy."""
    if remote:
        pull(run_path, run_root)



def _fit(tuner):
    """``tuner.fit()``; in a driver process asked to stop (:func:`_stop_when_asked`), the Tune
    run it ended (its state saved one last time) raises :class:`Interrupted` instead of
    returning: its trials did not finish."""
    results = tuner.fit()
    if _STOP is not None and _STOP.is_set():
        raise Interrupted(started=True)
    return results


def search_setting(space: SpaceConfig, setting: str, exp_dir: Path, data_root: Path, num_samples: int,
                   resume: bool = False, cap: int | None = None, remote: str | None = None):
    """Run (or resume) the search of one method's setting, at most ``cap`` trials at a time
    (default: as many as the cluster has slots); returns the Optuna study."""
    base = space.base_config(setting, str(data_root))
    key = study_name(space.method, setting)
    run_root, tb_root = run_dirs(exp_dir, "search", space.method, setting)
    request, concurrency = trial_resources(space.search.cpus_per_trial, space.search.gpus_per_trial)
    concurrency = min(concurrency, cap or concurrency)
    trainable = _trainable(space, base, request)

    def new_tuner():
        early = set()
        epochs = space.epochs(setting)
        searcher = PruningOptunaSearch(
            space=distributions(space, setting),
            metric=METRIC, mode="max", points_to_evaluate=[space.paper_point(setting)],
            storage=rdb_storage(exp_dir), study_name=key,
            seed=setting_seed(space.search.seed, key), early_stopped=early,
            failures=exp_dir / FAILURES, label=key)
        grace, rf = rungs(space, epochs)
        scheduler = RecordingASHA(time_attr="training_iteration", max_t=epochs, grace_period=grace,
                                  reduction_factor=rf, early_stopped=early)
        return tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(metric=METRIC, mode="max", search_alg=searcher, scheduler=scheduler,
                                        num_samples=num_samples, max_concurrent_trials=concurrency,
                                        reuse_actors=True),
            run_config=_run_config(storage, setting, key, num_samples, base, tb_root, exp_dir / FAILURES))

    storage, run_path = _where(exp_dir, "search", space.method, setting, remote)
    tuner = _restore_or_new(run_path, remote, trainable, resume, f"{key} search", new_tuner)
    print(f"[{key}] search: {num_samples} trials, {concurrency} at a time, resources {request} each",
          flush=True)
    _fit(tuner)
    _fetch(run_path, remote, run_root)
    return load_study(exp_dir, key)




def finals_setting(space: SpaceConfig, setting: str, config: dict, exp_dir: Path, seeds: list[int],
                   resume: bool = False, remote: str | None = None) -> dict[int, list[dict]]:
    """Retrain ``config`` with each seed (all epochs, no pruning); returns seed -> metric history."""
    base = {k: v for k, v in config.items() if k != "seed"}
    key = study_name(space.method, setting)
    run_root, tb_root = run_dirs(exp_dir, "finals", space.method, setting)
    request, concurrency = trial_resources(space.search.cpus_per_trial, space.search.gpus_per_trial)
    trainable = _trainable(space, base, request)

    def new_tuner():
        return tune.Tuner(
            trainable, param_space={"seed": tune.grid_search(seeds)},
            tune_config=tune.TuneConfig(max_concurrent_trials=concurrency, reuse_actors=True),
            run_config=_run_config(storage, setting, f"{key} finals", len(seeds), base, tb_root,
                                   exp_dir / FAILURES))

    storage, run_path = _where(exp_dir, "finals", space.method, setting, remote)
    tuner = _restore_or_new(run_path, remote, trainable, resume, f"{key} finals", new_tuner)
    print(f"[{key}] finals: {len(seeds)} seeds x {config['epochs']} epochs", flush=True)
    results = _fit(tuner)
    _fetch(run_path, remote, run_root)
    histories = {}
    for r in results:
        if r.error or (r.metrics or {}).get("failed"):  # listed in failures.jsonl; left out of the table
            print(f"[{key}] final run with seed {r.config.get('seed')} FAILED; left out of the finals table",
                  flush=True)
            continue
        df = r.metrics_dataframe.sort_values("epoch").drop_duplicates("epoch", keep="last")
        histories[int(r.config["seed"])] = df.to_dict("records")
    if not histories:
        raise SearchError(f"[{key}] every final run failed: see {exp_dir / FAILURES}")
    return histories


def finals_many(jobs: list[tuple], exp_dir: Path, resume: bool = False,
                remote: str | None = None) -> dict[tuple[str, str], dict[int, list[dict]]]:
    """The finals of several methods and settings (``jobs``: ``(space, setting, config, seeds)``
    each), one Tune run after another; returns (method, setting) -> seed -> metric history."""
    return {(space.method, setting): finals_setting(space, setting, config, exp_dir, seeds, resume=resume,
                                                    remote=remote)
            for space, setting, config, seeds in jobs}


# -- every study at once: one Ray driver process per running study -----------------------------
# Ray Tune is not thread-safe (two Tuner.fit in threads of one process break each other), so
# each running study has a driver process of its own, connected to the same cluster; Ray
# schedules all their trials on the cluster's slots.

def _unique_staging_folders() -> None:
    """Tune stages a run's driver-side files (trial results, experiment state) in
    ``<Ray session>/artifacts/<start second>/<run name>/`` and uploads that whole folder into
    the run's storage folder. Our runs are named after their setting, so two drivers starting
    ``ce`` and ``coteaching`` on ``sym-0.4`` in the same second would share one staging folder and
    upload each other's trials (seen here). The start stamp gets this process's id, in this
    process only: it is kept in the run's state (trials, ``--resume``), so it stays unique."""
    from ray.train._internal.storage import StorageContext
    init = StorageContext.__init__
    if getattr(init, "tune_lnl_unique", False):
        return

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self._timestamp = f"{self._timestamp}-{os.getpid()}"

    __init__.tune_lnl_unique = True
    StorageContext.__init__ = __init__


def _exit_with_parent() -> None:
    """A driver process's watchdog: exit when the experiment's main process is gone (killed
    alone), idle or inside a Tune run; Ray stops this driver's trials with it, and ``--resume``
    continues them from their checkpoints."""
    parent = mp.parent_process()
    while parent is not None:
        time.sleep(2.0)
        if not parent.is_alive():
            print(f"driver {os.getpid()}: the main process {parent.pid} is gone; exiting (--resume continues)",
                  flush=True)
            os._exit(3)


def _missing_checkpoint(record: logging.LogRecord) -> bool:
    """Tune's ``ERROR ... Error handling checkpoint ... FileNotFoundError: Path not found:
    .../checkpoint_000025`` (with its traceback) on ``--resume``: the restored run remembers a
    checkpoint older than its last two, which the trial had deleted itself after Tune's last
    saved state (``num_to_keep``), and fails to delete it again; the new checkpoint is kept.
    Harmless, so that record (that one only) is dropped."""
    exc = record.exc_info[1] if record.exc_info else None
    return not (isinstance(exc, FileNotFoundError) and "Path not found" in str(exc)
                and "Error handling checkpoint" in record.getMessage())


def quiet_missing_checkpoints() -> None:
    """Installs :func:`_missing_checkpoint` on Tune's controller logger in this process (once)."""
    controller_log = logging.getLogger("ray.tune.execution.tune_controller")
    if _missing_checkpoint not in controller_log.filters:
        controller_log.addFilter(_missing_checkpoint)


#: (a driver process) set by the main process when the experiment is interrupted
_STOP = None


def _stop_when_asked(stop) -> None:
    """A driver process's thread: once the main process sets ``stop`` (Ctrl-C), SIGUSR1 to this
    process every second, which Tune's own handler (installed while ``fit`` runs) takes as "end
    the run, save its state one last time"; outside ``fit`` it is ignored, so a run that starts
    after the request still gets one. Tune's messages about it (the stop signal, "resume with
    Tuner.restore", the trials that did not complete) are dropped: the main process prints the
    one line that says how to resume."""
    stop.wait()
    for name in ("ray", "ray.tune", "ray.tune.tune", "ray.train"):  # (a level of its own is not inherited)
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    while True:
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(1.0)


def _connect(address: str, runtime_env: dict | None, stop=None) -> None:
    """A driver process's start: SIGINT stays blocked (it was when the process started: the
    terminal's Ctrl-C is the main process's to handle), SIGUSR1 asks Tune to stop (above)."""
    global _STOP
    import ray
    _STOP = stop
    quiet_missing_checkpoints()
    signal.signal(signal.SIGUSR1, lambda signum, frame: None)
    if stop is not None:
        threading.Thread(target=_stop_when_asked, args=(stop,), daemon=True).start()
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    _unique_staging_folders()


def _search_task(job: Job, exp_dir: Path, data_root: Path, num_samples: int, resume: bool, cap: int,
                 remote: str | None) -> float:
    t0 = time.monotonic()
    search_setting(job.space, job.setting, exp_dir, data_root, num_samples, resume=resume, cap=cap, remote=remote)
    return time.monotonic() - t0


def _finals_task(job: Job, exp_dir: Path, seeds: list[int], resume: bool, remote: str | None) -> dict[int, list[dict]]:
    return finals_setting(job.space, job.setting, job.best["config"], exp_dir, seeds, resume=resume, remote=remote)



def _stop_drivers(ex: ProcessPoolExecutor, running: dict, stop, patience: float = 120.0) -> None:
    """Every driver process's Tune run ends (:func:`_stop_when_asked`: Tune saves its state one
    last time and stops its trials); after ``patience`` seconds, or at once after a second
    Ctrl-C (:func:`~tune_lnl.search.interrupt.hurry`), the drivers left are killed (SIGKILL:
    SIGTERM made each print Ray's C++ stack dump; ``--resume`` continues from the last saved
    state either way)."""
    stop.set()
    deadline = time.monotonic() + patience
    while not all(f.done() for f in running) and not hurry() and time.monotonic() < deadline:
        wait(running, timeout=0.2)
    if not all(f.done() for f in running):
        for proc in list(getattr(ex, "_processes", {}).values()):
            proc.kill()

def run_jobs(jobs: list[Job], exp_dir: Path, data_root: Path, num_samples: int, seeds: list[int], resume: bool,
             on_search_done, at_once: bool = True, runtime_env: dict | None = None,
             remote: str | None = None) -> dict[tuple[str, str], dict[int, list[dict]]]:
    """Every job's search (those whose ``best`` is not known yet; ``on_search_done(job, study,
    wall_s)`` sets it), then its final seeds. ``at_once``: up to one driver process per slot of
    the cluster (never more than there are jobs) each runs a study's search, at most
    :func:`~tune_lnl.search.studies.study_cap` trials at a time and at most an even share of the
    slots among the drivers (``ceil(slots / drivers)``), or a setting's finals, which are
    taken first as soon as its search has ended. Otherwise one study after another in this
    process, then the finals. Returns (method, setting) -> seed -> metric history."""
    import ray
    quiet_missing_checkpoints()  # (the runs in this process; each driver process installs it too)
    if not at_once:
        for job in jobs:
            if job.best is None:
                t0 = time.monotonic()
                study = search_setting(job.space, job.setting, exp_dir, data_root, num_samples, resume=resume,
                                       remote=remote)
                on_search_done(job, study, time.monotonic() - t0)
        return finals_many([(j.space, j.setting, j.best["config"], seeds) for j in jobs], exp_dir, resume=resume,
                           remote=remote)
    space = jobs[0].space
    _, n_slots = trial_resources(space.search.cpus_per_trial, space.search.gpus_per_trial)
    searches = deque(j for j in jobs if j.best is None)
    finals = deque(j for j in jobs if j.best is not None)
    n_drivers = max(1, min(len(jobs), n_slots))
    rdb_storage(exp_dir)  # creates the tables once, before several drivers open the file
    print(f"{len(searches)} searches ({num_samples} trials each) and {len(jobs)} x {len(seeds)} final runs on "
          f"{n_slots} trial slots; {n_drivers} driver processes; every study at once", flush=True)
    out: dict[tuple[str, str], dict[int, list[dict]]] = {}
    errors: list[str] = []  # a study that cannot produce a result does not stop the others
    gcs = ray.get_runtime_context().gcs_address
    stop = mp.get_context("spawn").Event()
    ex = ProcessPoolExecutor(n_drivers, mp_context=mp.get_context("spawn"), initializer=_connect,
                             initargs=(gcs, runtime_env, stop))
    running: dict = {}
    try:
        while searches or finals or running:
            with sigint_blocked():  # a driver process that a submit starts inherits it (see .interrupt)
                while len(running) < n_drivers and (searches or finals):
                    if finals:  # the longest work first
                        job = finals.popleft()
                        running[ex.submit(_finals_task, job, exp_dir, seeds, resume, remote)] = ("finals", job)
                    else:  # its cap from the searches still open now (a Tune run keeps it to its end)
                        job = searches.popleft()
                        still_open = len(searches) + 1 + sum(kind == "search" for kind, _ in running.values())
                        cap = study_cap(job.space.search.max_concurrent_per_study, num_samples, n_slots, still_open)
                        # and at most an even share among the drivers: a Tune run keeps the actors it
                        # got until it ends (reuse_actors), so a larger cap lets the first driver to
                        # start hold every slot while the other studies wait for it
                        cap = min(cap, math.ceil(n_slots / n_drivers))
                        running[ex.submit(_search_task, job, exp_dir, data_root, num_samples, resume,
                                          cap, remote)] = ("search", job)
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in done:
                kind, job = running.pop(f)
                try:
                    result = f.result()
                    if kind == "search":
                        on_search_done(job, load_study(exp_dir, job.key), result)
                        finals.append(job)
                    else:
                        out[(job.method, job.setting)] = result
                except BrokenProcessPool:
                    raise SearchError("a driver process of the experiment died; --resume continues every study "
                                      "from its last checkpoints") from None
                except SearchError as exc:
                    errors.append(str(exc))
    finally:
        if running:  # interrupted or failed: stop the other drivers (Ray stops their trials)
            _stop_drivers(ex, running, stop)
        ex.shutdown(wait=True, cancel_futures=True)
    if errors:
        raise SearchError("; ".join(errors))
    return out
