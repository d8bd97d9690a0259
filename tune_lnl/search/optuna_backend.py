"""Ray-free backend (``--backend optuna``): the same searches and finals with Optuna alone.

* One Optuna study per method and setting (``<method>/<setting>``) in ``<experiment>/optuna.journal``
  (a :class:`~optuna.storages.JournalStorage` file that several processes share safely).
* The driver starts ``workers`` processes (``spawn``); each takes trials one after another
  (TPE with ``constant_liar``, the paper's values enqueued as the first trial) until the study
  holds the requested number, trains them epoch by epoch and reports ``proxy_best`` to the pruner
  (``search.pruner``: ``successive_halving``, the asynchronous SH that ASHA is, or
  ``hyperband``) with the same grace period and reduction factor as Ray's ASHA.
* A trial is claimed under a file lock, and its owner (the worker's pid) is a user attribute of
  the trial. A worker that dies (killed, out of memory) has its trial released by the driver and
  a new worker continues it from its last checkpoint (at most
  :data:`~tune_lnl.search.studies.MAX_WORKER_RETRIES` times, then FAIL). A search that was interrupted
  as a whole releases every RUNNING trial on ``--resume`` the same way (without counting a retry).
* Each run (trial or final seed) lives in its own folder: ``result.json`` (one JSON line per
  epoch, like Ray's), ``checkpoint.pt`` (written atomically after every epoch), and for finals
  ``outcome.json``; its TensorBoard run goes to ``tensorboard/{search,finals}/<method>/<setting>/``.
* A method failure (divergence, an exception) is deterministic: the trial is told FAIL and
  recorded in ``failures.jsonl``; it is not retried.
* A worker whose driver is gone (killed alone, not with its process group) exits after its
  current epoch's checkpoint instead of training on; a run is trained under its folder's lock,
  so a later ``--resume`` that continues the run waits until that worker has exited.

No Ray import anywhere here: this is how machines without Ray run searches.
"""
from __future__ import annotations

import fcntl
import json
import multiprocessing as mp
import multiprocessing.connection
import os
import time
from contextlib import contextmanager
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..config import PRUNERS, SpaceConfig
from ..errors import SearchError
from ..results.runs import JOURNAL, RESULTS, atomic_write, journal_storage, read_history
from .studies import (FAILURES, MAX_WORKER_RETRIES, METRIC, distributions, log_failure, rungs, run_dirs,
                      setting_seed, slots, study_name)

STORAGE_FILE = JOURNAL
CHECKPOINT = "checkpoint.pt"
OUTCOME = "outcome.json"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
RELEASED = 0  # owner of a RUNNING trial that no live worker holds (to be continued)


# -- storage, study, pruner -------------------------------------------------------------------

storage = journal_storage


def load_study(exp_dir: Path, key: str):
    return optuna.load_study(study_name=key, storage=storage(exp_dir))


def make_pruner(space: SpaceConfig, epochs: int):
    kind = space.search.get("pruner", "successive_halving")
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
    import torch
    gpus = torch.cuda.device_count() if space.device != "cpu" and torch.cuda.is_available() else 0
    cpt, n = slots(os.cpu_count() or 1, gpus, space.search["cpus_per_trial"], space.search["gpus_per_trial"])
    if requested:
        n = int(requested)
    return n, max(1, int(cpt))


@contextmanager
def _locked(path: Path):
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# -- one run (a trial or a final seed), resumable ---------------------------------------------

def _write_history(run_dir: Path, history: list[dict]) -> None:
    atomic_write(run_dir / RESULTS, "".join(json.dumps(h, default=float) + "\n" for h in history))


def _exit_if_orphaned() -> None:
    """In a worker: exit at once if the driver died. ``multiprocessing.parent_process()`` watches
    the pipe the driver holds open for each child, so a driver that died even before this
    worker finished starting is seen (a pid comparison would not be)."""
    parent = mp.parent_process()
    if parent is not None and not parent.is_alive():
        print(f"worker {os.getpid()}: the driver {parent.pid} is gone; exiting (--resume continues this run from "
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


def _train_run(cfg: dict, run_dir: Path, tb_dir: Path, on_epoch) -> tuple[str, str | None, int | None]:
    from ..methods import method_class
    from ..results.tensorboard import RunWriter
    method = method_class(cfg["method"])(cfg)
    writer = None
    try:
        ckpt = run_dir / CHECKPOINT
        if ckpt.exists():
            method.load(ckpt)
        _write_history(run_dir, method.history)  # drops epochs after the checkpoint (redone now)
        writer = RunWriter(tb_dir, cfg)
        if method.history and on_epoch is not None and not on_epoch(method.history[-1]):
            return "pruned", None, method.epoch  # killed between the pruner's verdict and the tell
        while not method.done:
            metrics, failure = method.try_step()
            if failure is not None:  # deterministic: reported, not retried
                _exit_if_orphaned()  # (by the driver's successor, then)
                (run_dir / "error.txt").write_text(failure["traceback"])
                return "failed", failure["error"], failure["epoch"]
            # like Ray's result lines: the worker and the run config (how to rerun it)
            metrics.update(pid=os.getpid(), config=cfg)
            method.save(ckpt)
            with open(run_dir / RESULTS, "a") as f:
                f.write(json.dumps(metrics, default=float) + "\n")
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


def _search_worker(space: SpaceConfig, setting: str, exp_dir: str, data_root: str, num_samples: int,
                   slot: int, threads: int) -> None:
    import warnings

    import torch
    # a trial continued from its checkpoint reports its last epoch again: expected, ignored
    warnings.filterwarnings("ignore", message="The reported value is ignored because this `step")
    torch.set_num_threads(threads)
    if torch.cuda.is_available() and torch.cuda.device_count() > 1:
        torch.cuda.set_device(slot % torch.cuda.device_count())
    exp_dir = Path(exp_dir)
    key = study_name(space.method, setting)
    base = space.base_config(setting, data_root)
    epochs = int(base["epochs"])
    # the sampler's seed: the study's, this worker's slot, and how many trials the study has
    # started already (0 in a fresh search): a worker started after a kill or a dying worker
    # must not replay the random start-up draws its predecessor made (the same points twice)
    started = sum(t.state != TrialState.WAITING
                  for t in optuna.load_study(study_name=key, storage=storage(exp_dir)).get_trials(deepcopy=False))
    seed = (setting_seed(space.search["seed"], key) + slot + 7919 * started) % 2**31
    study = optuna.load_study(study_name=key, storage=storage(exp_dir),
                              sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True),
                              pruner=make_pruner(space, epochs))
    dists = distributions(space, setting)
    run_root, tb_root = run_dirs(exp_dir, "search", space.method, setting)
    while True:
        _exit_if_orphaned()
        with _locked(run_root / ".claim.lock"):
            trial = _claim(study, dists, num_samples)
        if trial is None:
            return
        cfg = {**base, **trial.params}
        name = f"trial_{trial.number:04d}"

        def on_epoch(m, trial=trial):
            trial.report(float(m[METRIC]), int(m["epoch"]))
            return not trial.should_prune()

        state, error, epoch = train_run(cfg, run_root / name, tb_root / name, on_epoch)
        value = read_history(run_root / name)
        last = float(value[-1][METRIC]) if value else None
        if state == "failed":
            study.tell(trial.number, state=TrialState.FAIL)
            log_failure(exp_dir / FAILURES, key, trial.number, "method", error, epoch, cfg, run_root / name)
        elif state == "pruned":
            study.tell(trial.number, state=TrialState.PRUNED)
        else:
            study.tell(trial.number, last)
        print(f"[{key} search] trial {trial.number} {state.upper()} at epoch {epoch}"
              + (f", {METRIC} {last:.4f}" if last is not None else ""), flush=True)


def _release(study, pids: set[int] | None, exp_dir: Path, key: str, run_root: Path, count_retry: bool) -> None:
    """RUNNING trials owned by ``pids`` (all when None) become RELEASED for a new worker to
    continue; one that already used its retries is told FAIL and recorded."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if (pids is not None and _owner(t) not in pids) or _owner(t) == RELEASED:
            continue
        retries = int(t.user_attrs.get("retries", 0)) + int(count_retry)
        trial = optuna.trial.Trial(study, t._trial_id)
        if retries > MAX_WORKER_RETRIES:
            study.tell(t.number, state=TrialState.FAIL)
            log_failure(exp_dir / FAILURES, key, t.number, "worker (retries exhausted)",
                        f"its worker process died {retries} times", len(read_history(run_root / f"trial_{t.number:04d}")),
                        t.params, run_root / f"trial_{t.number:04d}")
            continue
        trial.set_user_attr("retries", retries)
        trial.set_user_attr("owner", RELEASED)
        print(f"[{key} search] trial {t.number} released: a new worker continues it from its checkpoint",
              flush=True)


def _work_left(study, num_samples: int) -> bool:
    trials = study.get_trials(deepcopy=False)
    return len(trials) < num_samples or any(
        t.state == TrialState.WAITING or (t.state == TrialState.RUNNING and _owner(t) == RELEASED) for t in trials)


def _drive(label: str, start, slots: int, work_left, on_death, status, every: float = 30.0) -> None:
    """Keep ``slots`` worker processes running: ``start(slot)`` makes one; a worker that dies is
    reported to ``on_death(pid)`` and replaced while ``work_left()`` (bounded restarts)."""
    procs: dict = {}
    restarts, budget, last = 0, slots * (MAX_WORKER_RETRIES + 1), time.monotonic()

    def launch(slot):
        p = start(slot)
        procs[p.sentinel] = (p, slot)

    for slot in range(slots):
        launch(slot)
    try:
        while procs or (work_left() and restarts < budget):
            if not procs:  # all exited, yet a trial was released after they looked
                restarts += 1
                launch(0)
            for sentinel in mp.connection.wait(list(procs), timeout=5.0):
                p, slot = procs.pop(sentinel)
                p.join()
                if p.exitcode != 0:
                    print(f"[{label}] worker {p.pid} died (exit code {p.exitcode})", flush=True)
                    on_death(p.pid)
                    if work_left() and restarts < budget:
                        restarts += 1
                        launch(slot)
            if time.monotonic() - last >= every:
                last = time.monotonic()
                print(f"[{label}] {status()}", flush=True)
    finally:
        for p, _ in procs.values():  # interrupted (Ctrl-C): no orphaned workers
            if p.is_alive():
                p.terminate()
            p.join()


def search_setting(space: SpaceConfig, setting: str, exp_dir: Path, data_root: Path, num_samples: int,
                   resume: bool = False, workers: int | None = None):
    """Run (or resume) the search of one method's setting with worker processes; returns the study."""
    exp_dir = Path(exp_dir)
    key = study_name(space.method, setting)
    run_root, _ = run_dirs(exp_dir, "search", space.method, setting)
    run_root.mkdir(parents=True, exist_ok=True)
    n, threads = workers_for(space, workers)
    with _locked(run_root / ".claim.lock"):
        study = optuna.create_study(study_name=key, storage=storage(exp_dir), direction="maximize",
                                    load_if_exists=True)
        if not study.trials:
            study.enqueue_trial(space.paper_point(setting))
        else:  # an interrupted search: its RUNNING trials continue from their checkpoints
            _release(study, None, exp_dir, key, run_root, count_retry=False)
    print(f"[{key}] search: {num_samples} trials, {n} worker processes ({threads} thread(s) each), "
          f"pruner {space.search.get('pruner', 'successive_halving')}", flush=True)

    def on_death(pid):
        with _locked(run_root / ".claim.lock"):
            # None: a trial asked for but not yet marked (the worker died inside the claim)
            _release(study, {pid, None}, exp_dir, key, run_root, count_retry=True)

    def status():
        trials = study.get_trials(deepcopy=False)
        done = [t for t in trials if t.state in FINISHED]
        best = max((t.value for t in done if t.state == TrialState.COMPLETE), default=float("nan"))
        return (f"{len(done)}/{num_samples} finished, "
                f"{sum(t.state == TrialState.RUNNING for t in trials)} running; best {METRIC} {best:.4f}")

    ctx = mp.get_context("spawn")

    def start(slot):
        p = ctx.Process(target=_search_worker,
                        args=(space, setting, str(exp_dir), str(data_root), num_samples, slot, threads))
        p.start()
        return p

    _drive(f"{key} search", start, min(n, num_samples), lambda: _work_left(study, num_samples), on_death, status)
    if _work_left(study, num_samples):
        raise SearchError(f"[{key}] search stopped with trials left: its workers kept dying; "
                           f"see {run_root} and {exp_dir / FAILURES}")
    return study


# -- finals -----------------------------------------------------------------------------------

def _write_outcome(run_dir: Path, outcome: dict) -> None:
    atomic_write(run_dir / OUTCOME, json.dumps(outcome))


def _final_worker(cfg: dict, run_dir: str, tb_dir: str, label: str, failures: str, threads: int) -> None:
    import torch
    torch.set_num_threads(threads)
    run_dir = Path(run_dir)
    state, error, epoch = train_run(cfg, run_dir, Path(tb_dir))
    _write_outcome(run_dir, {"state": state, "error": error, "epoch": epoch})
    if state == "failed":
        log_failure(Path(failures), label, f"seed {cfg['seed']}", "method", error, epoch, cfg, run_dir)
    print(f"[{label}] seed {cfg['seed']}: {state} after {epoch} epochs", flush=True)


def finals_many(jobs: list[tuple], exp_dir: Path, resume: bool = False,
                workers: int | None = None) -> dict[tuple[str, str], dict[int, list[dict]]]:
    """The finals of several methods and settings from ONE pool of ``workers`` processes (a
    final run per (method, setting, seed), all epochs, no pruning), so that few seeds still fill
    every worker. ``jobs``: ``(space, setting, config, seeds)`` each. A run continues from its
    checkpoint after an interruption; one whose worker dies is restarted (at most
    :data:`~tune_lnl.search.studies.MAX_WORKER_RETRIES` times). Returns (method, setting) -> seed ->
    metric history of the runs that completed."""
    exp_dir = Path(exp_dir)
    runs = []  # (job key, label, seed, config, run dir, TensorBoard dir)
    for space, setting, config, seeds in jobs:
        key = study_name(space.method, setting)
        run_root, tb_root = run_dirs(exp_dir, "finals", space.method, setting)
        for seed in seeds:
            runs.append(((space.method, setting), f"{key} finals", seed, {**config, "seed": seed},
                         run_root / f"seed_{seed}", tb_root / f"seed_{seed}"))
    n, threads = workers_for(jobs[0][0], workers)
    todo = [r for r in runs if not (r[4] / OUTCOME).exists()]  # not yet run to its end
    print(f"finals: {len(runs)} runs ({len(jobs)} method/setting pairs; {len(runs) - len(todo)} already done), "
          f"{n} at a time", flush=True)
    ctx = mp.get_context("spawn")
    procs: dict = {}
    deaths: dict[Path, int] = {}

    def start(run):
        _, label, seed, cfg, run_dir, tb_dir = run
        p = ctx.Process(target=_final_worker, args=(cfg, str(run_dir), str(tb_dir), label,
                                                    str(exp_dir / FAILURES), threads))
        p.start()
        procs[p.sentinel] = (p, run)

    try:
        while todo or procs:
            while todo and len(procs) < n:
                start(todo.pop(0))
            for sentinel in mp.connection.wait(list(procs)):
                p, run = procs.pop(sentinel)
                p.join()
                _, label, seed, cfg, d, _ = run
                if p.exitcode == 0 or (d / OUTCOME).exists():
                    continue
                deaths[d] = deaths.get(d, 0) + 1
                print(f"[{label}] worker of seed {seed} died (exit code {p.exitcode})", flush=True)
                if deaths[d] <= MAX_WORKER_RETRIES:
                    todo.insert(0, run)  # continues from its checkpoint
                    continue
                d.mkdir(parents=True, exist_ok=True)
                err = f"its worker process died {deaths[d]} times"
                _write_outcome(d, {"state": "failed", "error": err})
                log_failure(exp_dir / FAILURES, label, f"seed {seed}", "worker (retries exhausted)", err,
                            len(read_history(d)), cfg, d)
    finally:
        for p, _ in procs.values():  # interrupted (Ctrl-C): no orphaned workers
            if p.is_alive():
                p.terminate()
            p.join()
    out: dict[tuple[str, str], dict[int, list[dict]]] = {}
    for job, label, seed, _, d, _ in runs:
        out.setdefault(job, {})
        outcome = json.loads((d / OUTCOME).read_text())
        if outcome["state"] != "complete":
            print(f"[{label}] final run with seed {seed} FAILED; left out of the finals table", flush=True)
            continue
        out[job][seed] = read_history(d)
    for (method, setting), histories in out.items():
        if not histories:
            raise SearchError(f"[{study_name(method, setting)}] every final run failed: see {exp_dir / FAILURES}")
    return out
