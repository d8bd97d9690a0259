"""Ray-free backend (``--backend optuna``): the same searches and finals with Optuna alone.

* One Optuna study per method and setting (``<method>/<setting>``) in ``<experiment>/optuna.journal``
  (a :class:`~optuna.storages.JournalStorage` file that several processes share safely).
* The driver starts ONE pool of ``workers`` processes (:class:`WorkerPool`; each ``python -m
  tune_lnl.search.optuna_worker``, never importing the caller's ``__main__``) for the whole
  experiment and hands each free worker a task (:func:`run_jobs`): a waiting final run first, else a trial of
  the open study with the fewest trials running (below its cap), so every study runs at once and
  a setting's finals start when its search ends (or, one study at a time, the old order). For a
  trial the worker claims one of that study (TPE with ``constant_liar``, the paper's values
  enqueued as the first trial), trains it epoch by epoch and reports ``proxy_best`` to the pruner
  (``search.pruner``: ``successive_halving``, the asynchronous SH that ASHA is, or
  ``hyperband``) with the same grace period and reduction factor as Ray's ASHA.
* A trial is claimed under a file lock, and its owner (the worker's pid) is a user attribute of
  the trial. A worker that dies (killed, out of memory) has its trial released by the driver and
  a new worker continues it from its last checkpoint (at most
  :data:`~tune_lnl.search.studies.MAX_WORKER_RETRIES` times, then FAIL). A search that was interrupted
  as a whole releases every RUNNING trial on ``--resume`` the same way (without counting a retry).
* Each run (trial or final seed) lives in its own folder, written by
  :class:`~tune_lnl.results.recorder.RunRecorder` as every backend writes it: ``params.json``,
  ``result.json`` (one JSON line per epoch, like Ray's), ``checkpoint.pt`` (written atomically
  after every epoch), and for finals ``outcome.json``; its TensorBoard run goes to
  ``tensorboard/{search,finals}/<method>/<setting>/``.
* A method failure (divergence, an exception) is deterministic: the trial is told FAIL and
  recorded in ``failures.jsonl``; it is not retried.
* A worker whose driver is gone (killed alone, not with its process group) exits after its
  current epoch's checkpoint instead of training on; a run is trained under its folder's lock,
  so a later ``--resume`` that continues the run waits until that worker has exited.

No Ray import anywhere here: this is how machines without Ray run searches.
"""
from __future__ import annotations

import fcntl
import multiprocessing as mp
import multiprocessing.connection
import os
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import optuna
from optuna.trial import TrialState

from ..config import PRUNERS, SpaceConfig
from ..errors import CheckpointError, SearchError, disk_full, disk_full_message
from ..results.recorder import CHECKPOINT, WORKER, RunRecorder  # noqa: F401 -- (CHECKPOINT: the tests')
from ..results.runs import JOURNAL, OUTCOME, journal_storage, read_history  # noqa: F401 -- (OUTCOME: likewise)
from .backend import Finals, OnSearchDone, Plan, SearchBackend
from .interrupt import sigint_blocked
from .studies import (
    FAILURES,
    MAX_WORKER_RETRIES,
    METRIC,
    Job,
    distributions,
    local_slots,
    log_failure,
    run_dirs,
    rungs,
    setting_seed,
    study_cap,
    study_name,
)

STORAGE_FILE = JOURNAL
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
RELEASED = 0  # owner of a RUNNING trial that no live worker holds (to be continued)
#: workers that die in a row before they are ready stop the search (with the last one's error)
MAX_STARTUP_DEATHS = 3
#: what a worker process runs (``python -m``; see :class:`_WorkerProcess`)
WORKER_MODULE = "tune_lnl.search.optuna_worker"


# -- storage, study, pruner -------------------------------------------------------------------

_STORAGES: dict[str, object] = {}


def storage(exp_dir: Path):
    """The experiment's journal storage, one object per process (each replays the journal, which
    holds every study of the experiment: one replay per process, not per study)."""
    key = str(Path(exp_dir).resolve())
    if key not in _STORAGES:
        _STORAGES[key] = journal_storage(exp_dir)
    return _STORAGES[key]


def load_study(exp_dir: Path, key: str):
    return optuna.load_study(study_name=key, storage=storage(exp_dir))


def make_pruner(space: SpaceConfig, epochs: int):
    kind = space.search.pruner
    grace, rf = rungs(space, epochs)
    if kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=grace, reduction_factor=rf,
                                                      min_early_stopping_rate=0)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=grace, max_resource=epochs, reduction_factor=rf)
    raise ValueError(f"search.pruner: unknown value {kind!r}; allowed: {', '.join(PRUNERS)}")


def workers_for(space: SpaceConfig, requested: int | None = None) -> tuple[int, int]:
    """``(worker processes, torch threads each)``: one worker per ``cpus_per_trial`` CPUs; on a
    GPU also at most ``1 / gpus_per_trial`` per GPU (0.125: eight trials packed on one GPU)."""
    return local_slots(space, requested)


@contextmanager
def _locked(path: Path):
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# -- one run (a trial or a final seed), resumable ---------------------------------------------

#: in a worker process: the pid of the driver that started it (None in any other process)
_DRIVER_PID: int | None = None


def _exit_if_orphaned() -> None:
    """In a worker: exit at once if the driver died. The driver's pid is given on the worker's
    command line, so a driver that died even before this worker finished starting is seen (the
    worker's parent is then another process)."""
    if _DRIVER_PID is not None and os.getppid() != _DRIVER_PID:
        print(f"worker {os.getpid()}: the driver {_DRIVER_PID} is gone; exiting (--resume continues this run from "
              f"its last checkpoint)", flush=True)
        os._exit(3)


def train_run(cfg: dict, run_dir: Path, tb_dir: Path, on_epoch=None) -> tuple[str, str | None, int | None]:
    """Train ``cfg`` in ``run_dir`` to its last epoch, continuing from ``checkpoint.pt`` when
    one is there; ``on_epoch(metrics)`` returning False stops it (pruned). Returns
    ``(state, error, epoch)`` with state ``complete``, ``pruned`` or ``failed``. One process at
    a time trains a run: a successor (after ``--resume`` released the run) waits on the run's
    lock until an orphaned predecessor has exited after its epoch."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with _locked(run_dir / ".run.lock"):  # released by the kernel however its holder ends
        _exit_if_orphaned()
        return _train_run(cfg, run_dir, tb_dir, on_epoch)


def _failed(run_dir: Path, error: str, epoch: int) -> tuple[str, str, int]:
    """A run that cannot go on (deterministic: reported with its real message, not retried)."""
    (run_dir / "error.txt").write_text(traceback.format_exc())
    return "failed", error, epoch


def _build(cfg: dict, run: RunRecorder):
    """``(method, None)`` continued from ``checkpoint.pt`` when there is one, or ``(None,
    failure)``: the method's own build raised (a plugin's ``build()``, an impossible model
    size), or the checkpoint cannot be loaded (:class:`~tune_lnl.errors.CheckpointError`: not
    written by tune_lnl, corrupt, another run's; it is never unpickled)."""
    from ..methods import method_class
    try:
        method = method_class(cfg["method"])(cfg)
    except Exception as exc:  # noqa: BLE001 -- the run's failure, with its message
        return None, _failed(run.dir, f"{type(exc).__name__}: {exc}", 1)
    try:
        if run.checkpoint.exists():
            method.load(run.checkpoint)
    except CheckpointError as exc:
        method.close()
        return None, _failed(run.dir, str(exc), 1)
    return method, None


def _train_run(cfg: dict, run_dir: Path, tb_dir: Path, on_epoch) -> tuple[str, str | None, int | None]:
    from ..results.tensorboard import RunWriter
    run = RunRecorder(run_dir)
    method, failure = _build(cfg, run)
    if failure is not None:
        return failure
    writer = None
    try:
        run.start(method.history)  # drops epochs after the checkpoint (redone now)
        run.params(cfg)
        writer = RunWriter(tb_dir, cfg)
        if method.history and on_epoch is not None and not on_epoch(method.history[-1]):
            return "pruned", None, method.epoch  # killed between the pruner's verdict and the tell
        while not method.done:
            metrics, failure = method.try_step()
            if failure is not None:  # deterministic: reported, not retried
                _exit_if_orphaned()  # (by the driver's successor, then)
                (run_dir / "error.txt").write_text(failure["traceback"])
                return "failed", failure["error"], failure["epoch"]
            # like Ray's result lines: the worker, when the epoch ended, the run config (how to rerun it)
            metrics.update(pid=os.getpid(), end_time=time.time(), config=cfg)
            method.save(run.checkpoint)
            run.epoch(metrics)
            writer.add(metrics)
            _exit_if_orphaned()
            if on_epoch is not None and not on_epoch(metrics):
                return "pruned", None, method.epoch
        return "complete", None, method.epoch
    finally:
        if writer is not None:
            writer.close()
        method.close()


# -- search -----------------------------------------------------------------------------------

def _owner(t) -> int | None:
    return t.user_attrs.get("owner")


def _claim(study, dists: dict, num_samples: int):
    """Under the claim lock: a released RUNNING trial (to continue), else a new one (the
    enqueued paper point first), else None when the study has all its trials."""
    trials = study.get_trials(deepcopy=False)
    for t in trials:
        if t.state == TrialState.RUNNING and _owner(t) == RELEASED:
            trial = optuna.trial.Trial(study, t._trial_id)
            trial.set_user_attr("owner", os.getpid())
            return trial
    if any(t.state == TrialState.WAITING for t in trials) or len(trials) < num_samples:
        trial = study.ask(fixed_distributions=dists)
        trial.set_user_attr("owner", os.getpid())
        return trial
    return None


def _release(study, pids: set[int] | None, exp_dir: Path, key: str, run_root: Path, count_retry: bool) -> None:
    """RUNNING trials owned by ``pids`` (all when None) become RELEASED for a new worker to
    continue; one that already used its retries is told FAIL and recorded."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if (pids is not None and _owner(t) not in pids) or _owner(t) == RELEASED:
            continue
        retries = int(t.user_attrs.get("retries", 0)) + int(count_retry)
        trial = optuna.trial.Trial(study, t._trial_id)
        if retries > MAX_WORKER_RETRIES:
            run_dir = run_root / f"trial_{t.number:04d}"
            study.tell(t.number, state=TrialState.FAIL)
            log_failure(exp_dir / FAILURES, key, t.number, "worker (retries exhausted)",
                        f"its worker process died {retries} times", len(read_history(run_dir)), t.params, run_dir)
            continue
        trial.set_user_attr("retries", retries)
        trial.set_user_attr("owner", RELEASED)
        print(f"[{key} search] trial {t.number} released: a new worker continues it from its checkpoint",
              flush=True)


def _claimable(study, num_samples: int) -> int:
    """How many claims (:func:`_claim`) the study can serve now: its released RUNNING trials,
    then ``ask``s (the enqueued WAITING trials first) until it holds ``num_samples`` trials."""
    trials = study.get_trials(deepcopy=False)
    released = sum(t.state == TrialState.RUNNING and _owner(t) == RELEASED for t in trials)
    waiting = sum(t.state == TrialState.WAITING for t in trials)
    return released + max(waiting, num_samples - (len(trials) - waiting))


# -- worker processes: one task at a time (a trial of any study, or a final run) --------------

def _open_study(space: SpaceConfig, setting: str, exp_dir: Path, slot: int):
    """In a worker: the study with this worker's TPE sampler and the pruner. The sampler's seed:
    the study's, the worker's slot, and how many trials the study has started already (0 in a
    fresh search): a worker started after a kill or a dying worker must not replay the random
    start-up draws its predecessor made (the same points twice)."""
    key = study_name(space.method, setting)
    started = sum(t.state != TrialState.WAITING
                  for t in optuna.load_study(study_name=key, storage=storage(exp_dir)).get_trials(deepcopy=False))
    seed = (setting_seed(space.search.seed, key) + slot + 7919 * started) % 2**31
    epochs = space.epochs(setting)
    return optuna.load_study(study_name=key, storage=storage(exp_dir),
                             sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True),
                             pruner=make_pruner(space, epochs))


def _run_trial(task: dict, slot: int, conn, studies: dict) -> None:
    """Claim a trial of the task's study (or none: ``("claimed", None)``), train it, tell it."""
    space, setting, exp_dir = task["space"], task["setting"], Path(task["exp_dir"])
    key = study_name(space.method, setting)
    if key not in studies:
        studies[key] = _open_study(space, setting, exp_dir, slot)
    study = studies[key]
    base = space.base_config(setting, task["data_root"])
    run_root, tb_root = run_dirs(exp_dir, "search", space.method, setting)
    with _locked(run_root / ".claim.lock"):
        trial = _claim(study, distributions(space, setting), task["num_samples"])
    conn.send(("claimed", None if trial is None else trial.number))
    if trial is None:
        return
    cfg = {**base, **trial.params}
    name = f"trial_{trial.number:04d}"

    def on_epoch(m):
        trial.report(float(m[METRIC]), int(m["epoch"]))
        return not trial.should_prune()

    state, error, epoch = train_run(cfg, run_root / name, tb_root / name, on_epoch)
    value = read_history(run_root / name)
    last = float(value[-1][METRIC]) if value else None
    RunRecorder(run_root / name).finish(state, error, epoch)  # as Ray's trials: progress sees it ended
    if state == "failed":
        study.tell(trial.number, state=TrialState.FAIL)
        log_failure(exp_dir / FAILURES, key, trial.number, "method", error, epoch, cfg, run_root / name)
    elif state == "pruned":
        study.tell(trial.number, state=TrialState.PRUNED)
    else:
        study.tell(trial.number, last)
    print(f"[{key} search] trial {trial.number} {state.upper()} at epoch {epoch}"
          + (f", {METRIC} {last:.4f}" if last is not None else ""), flush=True)
    conn.send(("done", state))


def _run_final(task: dict, slot: int, conn, studies: dict) -> None:
    """One final seed to its last epoch (no pruning); its ``outcome.json`` marks it done."""
    cfg, run_dir, label = task["config"], Path(task["run_dir"]), task["label"]
    state, error, epoch = train_run(cfg, run_dir, Path(task["tb_dir"]))
    RunRecorder(run_dir).finish(state, error, epoch)
    if state == "failed":
        log_failure(Path(task["failures"]), label, f"seed {cfg['seed']}", "method", error, epoch, cfg, run_dir)
    print(f"[{label}] seed {cfg['seed']}: {state} after {epoch} epochs", flush=True)
    conn.send(("done", state))


def worker_main(fd: int, slot: int, threads: int, driver: int) -> None:
    """A worker process (``python -m tune_lnl.search.optuna_worker``, see :class:`_WorkerProcess`):
    says it is ready, then takes tasks from the driver's socket until told to stop (``None``) or
    the driver is gone (the socket closes). A write that fails for lack of disk space is told to
    the driver (``("fatal", message)``), which stops the search with that message."""
    global _DRIVER_PID
    _DRIVER_PID = driver
    conn = mp.connection.Connection(fd)
    _exit_if_orphaned()
    try:
        sys.path.extend(p for p in conn.recv() if p not in sys.path)  # the driver's (plugin folders, ...)
    except (EOFError, OSError):  # the driver had nothing to do and is done
        return
    import warnings

    import torch
    # a trial continued from its checkpoint reports its last epoch again: expected, ignored
    warnings.filterwarnings("ignore", message="The reported value is ignored because this `step")
    torch.set_num_threads(threads)
    if torch.cuda.is_available() and torch.cuda.device_count() > 1:
        torch.cuda.set_device(slot % torch.cuda.device_count())
    try:
        conn.send(("ready", os.getpid()))
    except OSError:  # (likewise: the driver ended before this worker was ready)
        return
    studies: dict = {}
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            _exit_if_orphaned()
            return
        if task is None:
            return
        try:
            (_run_trial if task["kind"] == "trial" else _run_final)(task, slot, conn, studies)
        except (BrokenPipeError, ConnectionResetError, EOFError):
            # the driver is gone mid-task (Ctrl-C, a kill): nobody to report to; what the task saved stays
            # for --resume. Ending quietly keeps the one-line interruption message the only output
            return
        except Exception as exc:  # noqa: BLE001 -- a full disk (also as a library's own error)
            if not disk_full(exc):
                raise
            conn.send(("fatal", disk_full_message(exc, task["exp_dir"])))
            return


class _WorkerProcess:
    """A worker process started as ``python -m tune_lnl.search.optuna_worker``: a fresh
    interpreter that never imports the caller's ``__main__`` (``multiprocessing``'s ``spawn``
    does, so a plain script without an ``if __name__ == "__main__":`` guard re-ran the search in
    every worker, and a script read from stdin could not start one). It talks to the driver over
    a socket pair; its stderr is passed through to ours, the last lines kept to say why it died.
    ``ready``: it has started (imports done, told the driver)."""

    def __init__(self, slot: int, threads: int):
        here, there = mp.Pipe()
        root = str(Path(__file__).resolve().parents[2])  # the folder holding tune_lnl/ and trainables/
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([root] + [p for p in os.environ.get(
            "PYTHONPATH", "").split(os.pathsep) if p])}
        with sigint_blocked():  # Ctrl-C is the driver's to handle (it stops its workers)
            self.popen = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE, str(there.fileno()), str(slot), str(threads),
                 str(os.getpid())], pass_fds=(there.fileno(),), stderr=subprocess.PIPE, env=env)
        there.close()
        here.send(list(sys.path))
        self.conn, self.pid, self.ready = here, self.popen.pid, False
        self.tail: deque[str] = deque(maxlen=60)
        self.sentinel = os.pidfd_open(self.pid) if hasattr(os, "pidfd_open") else None
        self._reader = threading.Thread(target=self._pass_stderr, daemon=True)
        self._reader.start()

    def _pass_stderr(self) -> None:
        for raw in self.popen.stderr:
            line = raw.decode(errors="replace")
            self.tail.append(line.rstrip("\n"))
            try:
                sys.stderr.write(line)
                sys.stderr.flush()
            except (OSError, ValueError):  # our stderr is gone: keep draining the pipe
                pass

    @property
    def exitcode(self) -> int | None:
        return self.popen.poll()

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    def join(self, timeout: float | None = None) -> None:
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return
        self._reader.join(timeout=5)  # its last lines (a traceback) are read before the pipe closes
        if self.sentinel is not None:
            os.close(self.sentinel)
            self.sentinel = None

    def terminate(self) -> None:
        self.popen.terminate()

    def error(self) -> str:
        """The first lines of the traceback it printed last (or its exit code)."""
        lines = list(self.tail)
        starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
        if starts:
            tb = lines[starts[-1]:]
            lines = tb if len(tb) <= 14 else tb[:12] + ["  ..."] + tb[-2:]
        text = "\n".join(lines[-20:]).strip()
        return text or f"exit code {self.exitcode} and nothing on stderr"


def _stop_on_startup_deaths(exp_dir: Path, deaths: int, error: str) -> None:
    """Workers die before they are ready, again and again (a broken install, an import that
    fails): nothing would ever run. Recorded in ``failures.jsonl``, then the search stops with
    the worker's own error."""
    log_failure(exp_dir / FAILURES, "worker start-up", None, "worker start-up", error, None, {}, exp_dir)
    raise SearchError(f"{deaths} worker processes in a row died while starting; the last one's error:\n{error}")


# -- the driver: every study at once, each setting's finals as soon as its search ends ---------

@dataclass
class _Search:
    """The driver's view of one search: its study, its place in the file's order, which workers
    run (or are about to claim) one of its trials (slot -> claimed yet), when it started and
    whether it has ended."""
    job: Job
    study: object
    order: int
    assigned: dict = field(default_factory=dict)
    t0: float | None = None
    ended: bool = False

    def pending(self) -> int:
        return sum(not claimed for claimed in self.assigned.values())


@dataclass
class _Worker:
    proc: object
    conn: object
    slot: int
    task: dict | None = None
    search: _Search | None = None


def _ended(run: dict, resume: bool = False) -> bool:
    """Has this final run ended (``outcome.json``)? With ``resume``, a run whose worker kept
    dying is given another chance from its checkpoint (:meth:`RunRecorder.ended`)."""
    return RunRecorder(run["run_dir"]).ended(resume)


def _final_runs(job: Job, exp_dir: Path, seeds: list[int]) -> list[dict]:
    key = job.key
    run_root, tb_root = run_dirs(exp_dir, "finals", job.method, job.setting)
    return [{"kind": "final", "job": (job.method, job.setting), "label": f"{key} finals",
             "config": {**job.best["config"], "seed": seed}, "run_dir": str(run_root / f"seed_{seed}"),
             "tb_dir": str(tb_root / f"seed_{seed}"), "failures": str(exp_dir / FAILURES), "exp_dir": str(exp_dir)}
            for seed in seeds]


def _start_search(job: Job, exp_dir: Path) -> object:
    """Create (or reopen) the study: the paper's point enqueued first; after an interruption its
    RUNNING trials are released, to continue from their checkpoints."""
    run_root, _ = run_dirs(exp_dir, "search", job.method, job.setting)
    run_root.mkdir(parents=True, exist_ok=True)
    with _locked(run_root / ".claim.lock"):
        study = optuna.create_study(study_name=job.key, storage=storage(exp_dir), direction="maximize",
                                    load_if_exists=True)
        if not study.trials:
            study.enqueue_trial(job.space.paper_point(job.setting))
        else:
            _release(study, None, exp_dir, job.key, run_root, count_retry=False)
    return study


class WorkerPool:
    """ONE pool of worker processes for a whole experiment, and what it runs (see
    :func:`run_jobs`): it spawns the workers, hands each free one a task (a waiting final run
    first, else a trial of the open study with the fewest trials running, below its cap),
    collects their messages, and handles their deaths (a trial released for another worker, a
    final run restarted from its checkpoint, at most :data:`MAX_WORKER_RETRIES` times; workers
    dying before they are ready, :data:`MAX_STARTUP_DEATHS` in a row, stop the search)."""

    def __init__(self, jobs: list[Job], exp_dir: Path, plan: Plan, on_search_done, workers: int | None = None):
        self.jobs, self.exp_dir, self.plan, self.on_search_done = jobs, Path(exp_dir), plan, on_search_done
        self.n, self.threads = workers_for(jobs[0].space, workers)
        self.searches = [_Search(j, _start_search(j, self.exp_dir), i)
                         for i, j in enumerate(j for j in jobs if j.best is None)]
        known = [r for j in jobs if j.best is not None for r in self._final_runs(j)]
        self.todo = [r for r in known if not _ended(r, plan.resume)]  # (each read once: _ended may remove it)
        self.already = len(known) - len(self.todo)
        self.finals = self.todo if plan.at_once else []  # one at a time: the finals wait for every search
        self.finals_released = plan.at_once
        self.errors: list[str] = []  # a study that cannot produce a result does not stop the others
        self.pool: dict[int, _Worker] = {}
        self.deaths: dict[str, int] = {}  # final run folder -> how often its worker died
        self.restarts, self.budget = 0, self.n * (MAX_WORKER_RETRIES + 1) * max(1, len(jobs))
        self.startup_deaths = 0  # in a row: workers that died before they were ready

    def _final_runs(self, job: Job) -> list[dict]:
        return _final_runs(job, self.exp_dir, self.plan.seeds)

    # -- the whole run ---------------------------------------------------------------------------
    def run(self) -> dict[tuple[str, str], dict[int, list[dict]]]:
        """Every search and final run to its end; returns what :func:`run_jobs` returns."""
        num_samples, seeds = self.plan.num_samples, self.plan.seeds
        print(f"{len(self.searches)} searches" + (f" ({num_samples} trials each)" if self.searches else "")
              + f", {len(self.jobs)} x {len(seeds)} final runs ({self.already} already done); {self.n} worker "
              f"processes ({self.threads} thread(s) each); "
              + ("every study at once" if self.plan.at_once else "one study at a time, then the finals"), flush=True)
        for slot in range(self.n if self.searches or self.todo else 0):  # (none when everything had ended)
            self._spawn(slot)
        try:
            while True:
                self._end_searches()
                self._hand_out()
                if not any(w.task is not None for w in self.pool.values()):
                    if all(x.ended for x in self.searches) and not self.finals:
                        break
                    if not self.pool:
                        raise SearchError(f"{self.exp_dir}: stopped with work left: worker processes kept dying; "
                                          f"see {self.exp_dir / FAILURES} and the run folders")
                self._collect()  # (the status line with the ETA: tune_lnl.search.progress, for every backend)
        finally:
            self._stop()
        out = self._finals_done()
        if self.errors:
            raise SearchError("; ".join(self.errors))
        return out

    # -- spawn -----------------------------------------------------------------------------------
    def _spawn(self, slot: int) -> None:
        p = _WorkerProcess(slot, self.threads)
        self.pool[slot] = _Worker(p, p.conn, slot)

    def _stop(self) -> None:
        """Idle workers stop at once (their pipe closes); busy ones are stopped."""
        for w in self.pool.values():
            w.conn.close()
        for w in self.pool.values():
            w.proc.join(timeout=10 if w.task is None else 0)
            if w.proc.is_alive():
                w.proc.terminate()
            w.proc.join()

    # -- hand out --------------------------------------------------------------------------------
    def _open_searches(self) -> list[_Search]:
        left = [x for x in self.searches if not x.ended]
        return left if self.plan.at_once else left[:1]

    def _hand_out(self) -> None:
        """Each free worker gets a task, until there is none."""
        for w in list(self.pool.values()):
            if w.task is None:
                w.task, w.search = self._next_task(w)
                if w.task is None:
                    break
                try:
                    w.conn.send(w.task)
                except OSError:  # it died meanwhile: its sentinel says so, and _died requeues
                    pass

    def _next_task(self, w: _Worker) -> tuple[dict | None, _Search | None]:
        if self.finals:
            return self.finals.pop(0), None
        num_samples, open_ = self.plan.num_samples, self._open_searches()
        # the per-study cap, from the searches open now (a study left alone may fill the machine)
        cap = study_cap(open_[0].job.space.search.max_concurrent_per_study, num_samples, self.n, len(open_)) \
            if self.plan.at_once and open_ else self.n
        cands = [x for x in open_ if len(x.assigned) < cap and _claimable(x.study, num_samples) > x.pending()]
        if not cands:
            return None, None
        x = min(cands, key=lambda x: (len(x.assigned), x.order))
        if x.t0 is None:
            x.t0 = time.monotonic()
            print(f"[{x.job.key}] search starts: {num_samples} trials, at most {cap} at a time now, pruner "
                  f"{x.job.space.search.pruner}", flush=True)
        x.assigned[w.slot] = False
        return {"kind": "trial", "space": x.job.space, "setting": x.job.setting, "exp_dir": str(self.exp_dir),
                "data_root": str(self.plan.data_root), "num_samples": num_samples}, x

    def _end_searches(self) -> None:
        """Searches with no trial running and none left to claim end (their finals are queued)."""
        for x in self._open_searches():
            if not x.assigned and _claimable(x.study, self.plan.num_samples) == 0:
                x.ended = True
                try:
                    self.on_search_done(x.job, x.study, time.monotonic() - (x.t0 or time.monotonic()))
                except SearchError as exc:  # e.g. no trial completed: no finals for it
                    self.errors.append(str(exc))
                    continue
                if self.plan.at_once:
                    self.finals.extend(r for r in self._final_runs(x.job) if not _ended(r, self.plan.resume))
        if not self.finals_released and all(x.ended for x in self.searches):
            self.finals_released = True
            self.finals.extend(r for j in self.jobs if j.best is not None for r in self._final_runs(j)
                               if not _ended(r, self.plan.resume))

    # -- collect ---------------------------------------------------------------------------------
    def _collect(self) -> None:
        """Wait (at most 5 s) for messages and deaths, and handle them."""
        ready = set(mp.connection.wait([w.conn for w in self.pool.values()] + [
            w.proc.sentinel for w in self.pool.values() if w.proc.sentinel is not None], timeout=5.0))
        for w in list(self.pool.values()):
            while w.conn in ready and w.conn.poll():
                try:
                    self._handle(w, w.conn.recv())
                except (EOFError, OSError):
                    break
            if w.proc.sentinel in ready or not w.proc.is_alive():
                self._died(w)

    def _handle(self, w: _Worker, msg) -> None:
        if msg[0] == "ready":
            w.proc.ready, self.startup_deaths = True, 0
        elif msg[0] == "fatal":  # e.g. the disk is full: going on would fail the same way
            raise SearchError(msg[1])
        elif msg[0] == "claimed":
            if msg[1] is None:  # nothing left to claim after all
                w.search.assigned.pop(w.slot, None)
                w.task = w.search = None
            else:
                w.search.assigned[w.slot] = True
        else:  # done
            if w.search is not None:
                w.search.assigned.pop(w.slot, None)
            w.task = w.search = None

    # -- deaths ----------------------------------------------------------------------------------
    def _died(self, w: _Worker) -> None:
        """A worker ended: its trial is released, its final run requeued (or failed past its
        retries), and a new worker takes its slot (within the restart budget)."""
        w.proc.join()
        del self.pool[w.slot]
        if w.task is None and w.proc.exitcode == 0:
            return
        print(f"worker {w.proc.pid} died (exit code {w.proc.exitcode})"
              + (f" during {w.task['label'] if w.task['kind'] == 'final' else w.search.job.key + ' search'}"
                 if w.task else "") + ("" if w.proc.ready else " while starting"), flush=True)
        if not w.proc.ready:
            self.startup_deaths += 1
            if self.startup_deaths >= MAX_STARTUP_DEATHS:
                _stop_on_startup_deaths(self.exp_dir, self.startup_deaths, w.proc.error())
        if w.search is not None:
            run_root, _ = run_dirs(self.exp_dir, "search", w.search.job.method, w.search.job.setting)
            with _locked(run_root / ".claim.lock"):
                # None: a trial asked for but not yet marked (the worker died inside the claim)
                _release(w.search.study, {w.proc.pid, None}, self.exp_dir, w.search.job.key, run_root,
                         count_retry=True)
            w.search.assigned.pop(w.slot, None)
        elif w.task is not None:
            self._final_died(w.task)
        if self.restarts < self.budget:
            self.restarts += 1
            self._spawn(w.slot)

    def _final_died(self, run: dict) -> None:
        """A final run's worker died: it runs again from its checkpoint, or past its retries it
        is recorded as failed (``kind: worker``: ``--resume`` gives it another chance)."""
        rec = RunRecorder(run["run_dir"])
        self.deaths[run["run_dir"]] = self.deaths.get(run["run_dir"], 0) + 1
        if rec.ended():
            return
        if self.deaths[run["run_dir"]] <= MAX_WORKER_RETRIES:
            self.finals.insert(0, run)  # continues from its checkpoint
            return
        err = f"its worker process died {self.deaths[run['run_dir']]} times"
        rec.finish("failed", err, kind=WORKER)
        log_failure(Path(run["failures"]), run["label"], f"seed {run['config']['seed']}",
                    "worker (retries exhausted)", err, len(rec.history()), run["config"], rec.dir)

    def _finals_done(self) -> dict[tuple[str, str], dict[int, list[dict]]]:
        """(method, setting) -> seed -> history of the final runs that completed (a job whose every
        final run failed: in :attr:`errors`)."""
        out: dict[tuple[str, str], dict[int, list[dict]]] = {}
        for job in self.jobs:
            if job.best is None:  # its search ended without a result (in errors)
                continue
            out[(job.method, job.setting)] = {}
            for run in self._final_runs(job):
                rec = RunRecorder(run["run_dir"])
                if (rec.outcome() or {}).get("state") != "complete":
                    print(f"[{run['label']}] final run with seed {run['config']['seed']} FAILED; left out of the "
                          f"finals table", flush=True)
                    continue
                out[(job.method, job.setting)][run["config"]["seed"]] = rec.history()
            if not out[(job.method, job.setting)]:
                self.errors.append(f"[{job.key}] every final run failed: see {self.exp_dir / FAILURES}")
        return out


def run_jobs(jobs: list[Job], exp_dir: Path, data_root: Path, num_samples: int, seeds: list[int],
             resume: bool, on_search_done, at_once: bool = True,
             workers: int | None = None) -> dict[tuple[str, str], dict[int, list[dict]]]:
    """Run every job's search (those whose ``best`` is not known yet) and then its final seeds,
    on ONE pool of ``workers`` processes (:class:`WorkerPool`); ``on_search_done(job, study,
    wall_s)`` sets the job's ``best`` when its search ends. ``at_once``: a free worker takes a
    final run if one is waiting (the longest work first), else a trial of the open study with the
    fewest trials running, below its cap (:func:`~tune_lnl.search.studies.study_cap`); a
    setting's finals are queued the moment its search ends. Otherwise the old order: one study at
    a time, then all finals. A trial whose worker dies is released and continued from its
    checkpoint by another worker; a final run is restarted from its checkpoint (at most
    :data:`~tune_lnl.search.studies.MAX_WORKER_RETRIES` times each). Returns (method, setting) ->
    seed -> metric history of the final runs that completed."""
    plan = Plan(Path(data_root), num_samples, list(seeds), resume, at_once)
    return WorkerPool(jobs, exp_dir, plan, on_search_done, workers).run()


class OptunaBackend(SearchBackend):
    """Optuna alone (no Ray): worker processes on this machine sharing ``optuna.journal``."""

    summary: ClassVar[str] = "Optuna alone with worker processes sharing a journal storage (no Ray needed)"
    storage_file: ClassVar[str] = JOURNAL
    options: ClassVar[dict[str, str]] = {
        "workers": "sets the worker processes of --backend optuna; with Ray use search.cpus_per_trial / gpus_per_trial"}

    def run_jobs(self, jobs: list[Job], plan: Plan, on_search_done: OnSearchDone) -> Finals:
        return WorkerPool(jobs, self.exp_dir, plan, on_search_done, self.config["workers"]).run()

    def load_study(self, key: str):
        return load_study(self.exp_dir, key)

    @classmethod
    def trial_slots(cls, space, options: dict) -> tuple[int, int]:
        return workers_for(space, options.get("workers"))
