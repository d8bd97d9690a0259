"""One experiment from start to end, whichever backend runs it: validate the space and options,
lock and record the experiment folder, search every method and noise setting (or take the
paper's values), export the best configs, retrain them with the final seeds, write the finals
table, proxy fidelity and the report. :func:`run_experiment` raises
:class:`~tune_lnl.errors.ConfigError` / :class:`~tune_lnl.errors.DataError` for bad input
(before any trial, leaving no ``experiment.yaml`` behind) and
:class:`~tune_lnl.errors.SearchError` when no result can be produced. The CLI
(``python -m tune_lnl.search``) and the Python API (:func:`tune_lnl.run`) are thin wrappers.

The experiment folder is described in :mod:`tune_lnl.results.runs`.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..config import DICT_LABEL, check_folder_name, load_experiment
from ..data import check_data, resolve_data_root
from ..errors import (
    ConfigError,
    Interrupted,
    SearchError,
    TuneLNLError,
    argument_error,
    disk_full,
    disk_full_message,
    shown,
    whole_number,
)
from ..methods.base import device_problem
from ..plugins import worker_python_path
from ..results.export import write_best_configs, write_finals
from ..results.result import Result
from ..results.runs import (
    atomic_write,
    check_studies,
    open_no_follow,
    portable_manifest,
    read_manifest,
    remove_temporaries,
    resume_identity,
    summarize_run,
)
from ..results.storage import is_uri, join, local_copy, pull, push, remote_exists
from .backend import BUILTIN, Plan, SearchBackend, backend_class, backend_names, choose_backend
from .backend import resolve_backend as resolve_backend  # (re-exported: tune_lnl.search.resolve_backend)
from .estimate import Estimate, plan_for
from .progress import Progress, Reporter, attached
from .studies import MAX_WORKERS, Job, finish_search, searched_best

#: what ``--resume`` reads of ``experiment.yaml`` (and compares with the command)
RESUMED = ("space", "methods", "settings", "num_samples", "final_seeds")


def lock_experiment(exp_dir: Path):
    """An exclusive ``flock`` on ``<exp_dir>/.lock``: a second search (or ``--resume``) into the
    same experiment while this one runs is refused. The kernel drops the lock when the process
    ends, however it ends, so a killed search can always be resumed. A symbolic link planted at
    ``.lock`` is refused (ConfigError naming it), never opened: its target is not truncated."""
    f = open_no_follow(exp_dir / ".lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "unknown process"
        f.close()
        raise ConfigError(f"{exp_dir} is in use by another running search ({holder}); wait for it, stop it, or "
                          f"choose another --name") from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    f.flush()
    return f


def check_device(exp) -> None:
    """An explicit CUDA device needs that GPU here (trials would fail one by one otherwise)."""
    import torch
    for space in exp.methods.values():
        problem = device_problem(space.device)
        if problem:
            raise ConfigError(f"{exp.path or DICT_LABEL}: device: {space.device!r} but {problem}")
    if not torch.cuda.is_available() and exp.first.search.gpus_per_trial > 0:
        print(f"note: no GPU here: search.gpus_per_trial {exp.first.search.gpus_per_trial} is not requested; "
              f"trials run on the CPU", flush=True)


def _pick(kind: str, wanted, available) -> list[str]:
    for x in wanted or []:
        if x not in available:
            raise ConfigError(f"--{kind}: unknown {kind[:-1]} {shown(x)}; this file has: {', '.join(available)}")
    return list(wanted or available)


#: the flags among :func:`run_experiment`'s arguments
FLAGS = ("resume", "paper_only", "smoke", "one_study_at_a_time")


def checked_arguments(args: dict) -> tuple:
    """:func:`run_experiment`'s arguments (``tune_lnl.run``'s) checked by type before anything
    is read or written; :class:`ConfigError` naming the first wrong one (the command line's parser
    gives the right types, a Python caller may not). Returns ``(num_samples, seeds, workers,
    methods, settings)``: whole numbers as ``int``, a single string for ``methods`` or
    ``settings`` as a list naming one. (``space``: :func:`load_experiment`; ``name``:
    :func:`experiment_name`; the values: :func:`run_experiment`.)"""
    out = dict(args)
    for key in FLAGS:
        if not isinstance(args[key], bool):
            raise argument_error(key, "True or False", args[key])
    for key in ("num_samples", "seeds", "workers"):
        if args[key] is not None:
            out[key] = whole_number(key, args[key])
    for key in ("methods", "settings"):
        value = [args[key]] if isinstance(args[key], str) else args[key]
        if value is not None and (not isinstance(value, (list, tuple)) or not all(isinstance(x, str) for x in value)):
            raise argument_error(key, "a list of names (or one name), or None", args[key])
        out[key] = value
    for key, what in (("data_root", "a folder's path or None"), ("address", "a Ray address or None")):
        if args[key] is not None and not isinstance(args[key], (str, os.PathLike)):
            raise argument_error(key, what, args[key])
    if not isinstance(args["storage_path"], (str, os.PathLike)):
        raise argument_error("storage_path", "a folder's path or URI", args["storage_path"])
    if not isinstance(args["backend"], str):
        raise argument_error("backend", f"one of {', '.join(backend_names())}", args["backend"])
    return tuple(out[key] for key in ("num_samples", "seeds", "workers", "methods", "settings"))


def manifest(exp, smoke, backend, paper_only, methods, settings, num_samples, seeds) -> dict:
    """What ``experiment.yaml`` records: what was asked for (``--resume`` must ask the same), its
    paths relative to the space file's repository (:func:`~tune_lnl.results.runs.portable_manifest`)."""
    out = {"space_file": str(exp.path) if exp.path else None, "space": exp.raw, "smoke": bool(smoke),
           "methods": methods, "settings": settings, "num_samples": num_samples, "final_seeds": seeds,
           "backend": backend}
    if paper_only:  # absent otherwise: experiments of earlier versions still --resume
        out.update(num_samples=0, paper_only=True)
    noise_options = {s: v.noise_options for s, v in exp.first.settings.items() if v.noise_options}
    if noise_options:  # (likewise) a matrix file's hash: --resume after editing it is refused
        out["noise_options"] = noise_options
    return portable_manifest(out, exp.path)


def _start_backend(backend: SearchBackend, python_path: str) -> SearchBackend:
    """``backend``, opened (a cluster started or joined...; its workers get ``python_path``)."""
    backend.open(python_path)
    return backend


@dataclass(frozen=True)
class Request:
    """A run request checked by :func:`checked_request` (what a search and ``--plan`` share)."""
    exp: object
    name: str
    methods: list
    settings: list
    trials: int
    seeds: int
    backend: str
    backend_cls: type
    options: dict
    data_root: Path


def checked_request(args: dict) -> Request:
    """:func:`run_experiment`'s arguments (``args``) checked by type, then by value, and the data
    found, before anything is written (:class:`ConfigError` / ``DataError`` otherwise)."""
    num_samples, seeds, workers, methods, settings = checked_arguments(args)
    smoke, paper_only = args["smoke"], args["paper_only"]
    exp = load_experiment(args["space"], smoke_mode=smoke)
    name = experiment_name(exp, args["name"], smoke)  # before anything is written
    methods = _pick("methods", methods, list(exp.methods))
    settings = _pick("settings", settings, exp.settings)
    n_trials = exp.first.num_samples if num_samples is None else num_samples  # 0 is refused,
    n_seeds = exp.first.final_seeds if seeds is None else seeds               # not "default"
    if not isinstance(n_trials, int) or not 1 <= n_trials <= 10000:
        raise ConfigError(f"--num-samples must lie in [1, 10000], got {n_trials}")
    if paper_only and num_samples is not None:
        raise ConfigError("--paper-only runs no search: --num-samples has no meaning with it")
    if not isinstance(n_seeds, int) or not 1 <= n_seeds <= 100:
        raise ConfigError(f"--seeds must lie in [1, 100], got {n_seeds}")
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"--workers must lie in [1, {MAX_WORKERS}], got {workers}")
    backend, backend_cls, options = choose_backend(args["backend"], address=args["address"], workers=workers)
    data_root = resolve_data_root(args["data_root"])
    check_data(exp.dataset, data_root, exp.dataset_options)  # before any trial, naming the folder to fill
    if smoke:
        _note_full_smoke(exp, methods)
    return Request(exp, name, methods, settings, n_trials, n_seeds, backend, backend_cls, options, data_root)


def _note_full_smoke(exp, methods: list[str]) -> None:
    """``--smoke`` shrinks the data and the epochs only as far as the file's ``smoke:`` section
    says (the shipped files all say it): a method whose section sets neither is trained on the
    whole data for its full epochs, with only fewer trials and seeds. Said, not guessed at."""
    for method in methods:
        smoke = exp.methods[method].smoke
        if "train_subset" not in smoke and "epochs" not in smoke.get("fixed", {}):
            where = DICT_LABEL if exp.path is None else exp.path
            print(f"note: {where}: --smoke keeps {method}'s whole training set and its full epochs (its smoke: "
                  f"section sets neither train_subset nor fixed.epochs; only the trials and seeds shrink): add e.g. "
                  f"smoke: {{train_subset: 3000, fixed: {{epochs: 3}}}}", flush=True)


def plan_experiment(space, *, data_root=None, storage_path="results", name=None, num_samples=None, methods=None,
                    settings=None, seeds=None, resume=False, backend="auto", workers=None, address=None,
                    paper_only=False, smoke=False, one_study_at_a_time=False, progress=None) -> Estimate:
    """What :func:`run_experiment` with the same arguments would train and how long that takes
    here (:class:`~tune_lnl.search.estimate.Estimate`); trains nothing, writes nothing."""
    return plan_for(checked_request(locals()), storage_path, paper_only)


#: why a new experiment is refused where one exists (the same words for the CLI and the Python API)
TAKEN = ("already holds an experiment: continue it with --resume (Python: resume=True), or choose another name "
         "with --name (Python: name=...)")


def run_experiment(space, *, data_root=None, storage_path="results", name=None, num_samples=None, methods=None,
                   settings=None, seeds=None, resume=False, backend="auto", workers=None, address=None,
                   paper_only=False, smoke=False, one_study_at_a_time=False, progress=None) -> Result:
    """Search, select by the proxy, retrain with the final seeds, export; see the module docstring.
    ``progress``: see :func:`tune_lnl.run`."""
    request = checked_request(locals())  # first: locals() = the arguments
    exp, name, methods, settings = request.exp, request.name, request.methods, request.settings
    n_trials, n_seeds, data_root = request.trials, request.seeds, request.data_root
    backend, backend_cls, options = request.backend, request.backend_cls, request.options
    if not address:
        check_device(exp)
    remote = _remote(storage_path, name, backend, backend_cls, resume)  # a URI: runs there, a working copy here
    exp_dir = local_copy(storage_path, name) if remote else Path(storage_path).expanduser().resolve() / name
    wanted = manifest(exp, smoke, backend, paper_only, methods, settings, n_trials, n_seeds)
    man_path = exp_dir / "experiment.yaml"
    if resume and not man_path.exists():
        raise ConfigError(f"--resume: {remote or exp_dir} holds no experiment (no experiment.yaml)")
    try:
        exp_dir.mkdir(parents=True, exist_ok=True)
        probe = exp_dir / f".write-test-{os.getpid()}"
        open_no_follow(probe, "w").close()
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"--storage-path: cannot write into {exp_dir} ({exc.strerror or exc})") from None
    lock = lock_experiment(exp_dir)  # held until this function returns or the process ends (also SIGKILL)
    try:
        if resume:
            # the space's content decides, not where its file lies (another checkout, another machine)
            held = resume_identity(read_manifest(exp_dir, RESUMED), exp.path)
            if held != resume_identity(json.loads(json.dumps(wanted)), exp.path):
                raise ConfigError(f"--resume: {exp_dir} holds a different experiment (space, methods, settings, "
                                  f"budget or --smoke differ)")
        elif man_path.exists():
            raise ConfigError(f"{exp_dir} {TAKEN}")
        _remove_temporaries(exp_dir)
        atomic_write(man_path, yaml.safe_dump(json.loads(json.dumps(wanted)), sort_keys=False))
        if remote:
            push(exp_dir, remote, only=["experiment.yaml"])
        # the folders the user's plugin modules came from: on PYTHONPATH for every worker process
        with worker_python_path() as python_path:
            runner = _start_backend(backend_cls(backend, exp_dir, remote=remote, **options), python_path)
            try:
                plan = Plan(data_root, n_trials, list(range(1, n_seeds + 1)), resume,
                            exp.first.search.studies_at_once and not one_study_at_a_time)
                _run(exp, runner, methods, settings, plan, paper_only,
                     _progress(request, storage_path, paper_only, exp_dir, plan, progress))
                if remote:  # the remote folder alone is the whole experiment
                    push(exp_dir, remote, only=_ours(exp_dir))
                    print(f"uploaded to {remote}", flush=True)
            finally:
                runner.close()
    except KeyboardInterrupt as exc:  # Ctrl-C: the backend has stopped what ran (search/interrupt.py)
        raise Interrupted(signum=getattr(exc, "signum", signal.SIGINT), started=man_path.exists()) from None
    except Exception as exc:  # a write failed for lack of space: one message (nothing finished is lost)
        if disk_full(exc):  # (before experiment.yaml exists, the same command without --resume)
            raise SearchError(disk_full_message(exc, exp_dir, resume=man_path.exists())) from None
        raise
    finally:
        lock.close()
    return Result.read(exp_dir)


def _remove_temporaries(exp_dir: Path) -> None:
    """The temporary files of writes a full disk or a kill cut off go (at the start, under the lock)."""
    removed = remove_temporaries(exp_dir)
    if removed:
        print(f"note: removed {len(removed)} temporary file(s) that cut-off writes left in {exp_dir} (e.g. "
              f"{removed[0].relative_to(exp_dir)})", flush=True)


def _progress(request: Request, storage_path, paper_only: bool, exp_dir: Path, plan: Plan, progress):
    """``watch(jobs)`` for :func:`_run`: prints the estimate (:func:`plan_for`) and returns the
    :class:`Reporter` of the jobs' progress, which calls ``progress`` (a callable) at each update;
    None: a tqdm bar when a person watches (a terminal, a notebook); False: no callback, no bar."""
    if progress is not None and not isinstance(progress, bool) and not callable(progress):
        raise argument_error("progress", "a function of one ProgressUpdate, True, False or None", progress)

    def watch(jobs) -> Reporter:
        estimate = plan_for(request, storage_path, paper_only)
        print(estimate.line(), flush=True)
        if estimate.warning():
            print(estimate.warning(), flush=True)
        rate = estimate.trial_epochs / estimate.seconds if estimate.seconds > 0 else None
        tracker = Progress(exp_dir, jobs, 0 if paper_only else plan.num_samples, len(plan.seeds), rate)
        bar = progress is True or (progress is None and attached())
        return Reporter(tracker, progress if callable(progress) else None, bar=bar)
    return watch


def experiment_name(exp, name, smoke: bool) -> str:
    """The experiment folder's name, ``<storage>/<name>``: ``name`` (``--name``), else the space's
    name with ``-smoke`` added under ``--smoke``; refused unless a portable folder name (never
    ``..``, a path or an absolute path: nothing may be written outside ``--storage-path``)."""
    if name is not None:
        return check_folder_name(name, "--name")
    given = "name" if "name" in exp.raw else "name (none given: the file's name)"
    return check_folder_name(exp.name + ("-smoke" if smoke else ""), f"{exp.path or DICT_LABEL}: {given}")


def _remote(storage_path, name: str, backend: str, backend_cls: type[SearchBackend], resume: bool) -> str | None:
    """``<uri>/<name>`` when ``--storage-path`` is a URI (checked here; ``--resume`` first
    downloads it into the working copy), else None."""
    if not is_uri(storage_path):
        return None
    if not backend_cls.remote_storage:
        able = [n for n in BUILTIN if backend_class(n).remote_storage]
        raise ConfigError(f"--storage-path {storage_path}: --backend {backend} keeps the experiment in a folder its "
                          f"workers share (files and locks), not at a URI (that is --backend {', '.join(able)}): give "
                          f"it a path that every worker mounts")
    remote = join(storage_path, name)
    try:
        held = remote_exists(join(remote, "experiment.yaml"))
    except Exception as exc:  # noqa: BLE001 -- pyarrow: unknown scheme, no credentials, unreachable
        raise ConfigError(f"--storage-path {storage_path}: cannot open it ({type(exc).__name__}: {exc})") from None
    if held and not resume:
        raise ConfigError(f"{remote} {TAKEN}")
    if held:
        local = local_copy(storage_path, name)
        print(f"--resume: downloading {remote} into {local} ({pull(remote, local)} files)", flush=True)
    return remote


def _ours(exp_dir: Path) -> list[str]:
    """What the search writes itself (Tune writes the trial folders to the remote folder):
    the top-level files and folders, and each search's statistics and end mark."""
    top = [p.name for p in exp_dir.iterdir() if p.name not in ("search", "finals")]
    return top + [str(p.relative_to(exp_dir)) for pattern in ("search/*/*/search_stats.json", "search/*/*/.done")
                  for p in exp_dir.glob(pattern)]


@contextlib.contextmanager
def _as_search_error():
    """A backend's runtime failure (e.g. Ray's ``TuneError``) surfaces as a :class:`SearchError`."""
    try:
        yield
    except TuneLNLError:
        raise
    except RuntimeError as exc:
        raise SearchError(str(exc)) from exc


def _run(exp, backend: SearchBackend, methods, settings, plan: Plan, paper_only: bool, watch=None) -> None:
    """The searches and finals of ``methods`` x ``settings`` on ``backend``, then the exports,
    the fidelity table and the report. ``watch(jobs)``: a :class:`Reporter` of their progress."""
    exp_dir, data_root, num_samples, n_seeds = backend.exp_dir, plan.data_root, plan.num_samples, len(plan.seeds)
    print(f"experiment: {exp_dir}\nbackend: {backend.name}; methods: {', '.join(methods)}; settings: "
          f"{', '.join(settings)}; "
          + ("no search (--paper-only: the paper's values)" if paper_only else f"{num_samples} trials each")
          + f"; {n_seeds} final seeds; proxy {exp.proxy}; data {data_root}", flush=True)
    jobs = [Job(exp.methods[m], s) for m in methods for s in settings]
    if plan.resume:  # a storage that lost records (cut short, emptied) is named, never "no trial completed"
        check_studies(exp_dir, [job.key for job in jobs])
    for job in jobs:
        if paper_only:
            job.best = {"config": job.space.paper_config(job.setting, str(data_root)), "proxy_best": None,
                        "selected_by": "the file's paper values (--paper-only: no search)"}
        elif (exp_dir / "search" / job.method / job.setting / ".done").exists():  # never rerun
            job.best = searched_best(job, backend.load_study(job.key), data_root)
    reporter = watch(jobs) if watch is not None else None

    def write_best():  # the searches ended so far (all of them at the end)
        best: dict[str, dict] = {}
        for job in jobs:
            if job.best is not None:
                best.setdefault(job.method, {})[job.setting] = job.best
        write_best_configs(exp_dir / "best_configs.yaml", exp, best, paper_only=paper_only)

    def on_search_done(job, study, wall_s):
        job.best = finish_search(job, study, exp_dir, data_root, num_samples, wall_s, backend.name, plan.resume)
        write_best()
        if backend.remote:  # what a search can resume from elsewhere, as soon as it exists
            push(exp_dir, backend.remote, only=_ours(exp_dir))
        if reporter is not None:
            reporter.report()  # the status line at the end of each study

    if any(job.best is not None for job in jobs):
        write_best()
    with _as_search_error(), (reporter or contextlib.nullcontext()):
        done = backend.run_jobs(jobs, plan, on_search_done)
    write_best()
    runs: dict[str, dict] = {method: {} for method in methods}
    for job in jobs:
        runs[job.method][job.setting] = {seed: summarize_run(h, exp.finals.last_k)
                                         for seed, h in done[(job.method, job.setting)].items()}
    table = write_finals(exp_dir, exp, runs, paper_only=paper_only)
    print("\n" + table)
    print(f"outputs in {exp_dir}: best_configs.yaml, finals.csv, finals.md"
          + ("" if paper_only else f", {backend.storage_file}")
          + f"\nTensorBoard: tensorboard --logdir {exp_dir}", flush=True)
    try:  # fidelity and figures are views of the outputs above: a failure here loses nothing
        from ..results.fidelity import write as write_fidelity
        from ..results.report import build as build_report
        fidelity = write_fidelity(exp_dir)
        print(f"proxy fidelity (every logged proxy against the test set): {exp_dir / 'fidelity.md'}", flush=True)
        build_report(exp_dir, fidelity=fidelity)
    except Exception as exc:  # noqa: BLE001
        print(f"warning: the fidelity table or the report could not be built ({type(exc).__name__}: {exc}); "
              f"retry with: python -m tune_lnl.report {exp_dir}", flush=True)
    _check_finals(exp_dir, jobs, n_seeds, done)


def _check_finals(exp_dir: Path, jobs, n_seeds: int, done: dict) -> None:
    """A final seed that could not run (it failed, its worker kept dying) fails the command once
    every output is written: never exit 0 with a seed silently missing from the table."""
    missing = [f"{job.key} seed {seed}" for job in jobs for seed in range(1, n_seeds + 1)
               if seed not in done.get((job.method, job.setting), {})]
    if missing:
        raise SearchError(f"{len(missing)} of {len(jobs) * n_seeds} final runs failed ({', '.join(missing[:8])}"
                          f"{', ...' if len(missing) > 8 else ''}): the tables hold the seeds that completed; the "
                          f"errors are in {exp_dir / 'failures.jsonl'}")
