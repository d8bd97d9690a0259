"""``python -m tune_lnl.search --space FILE``: search every method and noise setting of FILE,
retrain the winners, export best configs, the finals table, the Optuna studies and TensorBoard logs.

Experiment folder ``<storage>/<name>/``::

    experiment.yaml             what was asked for (checked on --resume)
    optuna.db | optuna.journal  one Optuna study per method and setting ("<method>/<setting>"):
                                SQLite with --backend ray, a journal file with --backend optuna
    search/<method>/<setting>/  the trials (one folder each: result.json per epoch, checkpoints)
    finals/<method>/<setting>/  the final retrainings, one per seed
    tensorboard/                one run per trial: tensorboard --logdir <storage>/<name>
    best_configs.yaml           each method's and setting's proxy-selected config (tune_lnl.train)
    finals.csv, finals.md       one row per method: best / last per setting (MLC paper Tables II/III)
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import socket
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

from .config import ConfigError, load_experiment
from .data import DataNotFoundError, check_data, resolve_data_root


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m tune_lnl.search", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", required=True, help="search-space YAML file (one method or several)")
    p.add_argument("--data-root", help="dataset folder (default: $TUNE_LNL_DATA, else ./data)")
    p.add_argument("--storage-path", default="results", help="where experiment folders go (default ./results)")
    p.add_argument("--name", help="experiment name (default: the space's name, '-smoke' added with --smoke)")
    p.add_argument("--num-samples", type=int, help="trials per method and setting (overrides the file)")
    p.add_argument("--methods", nargs="+", help="run only these methods of the file")
    p.add_argument("--settings", nargs="+", help="run only these settings")
    p.add_argument("--seeds", type=int, help="number of final seeds (overrides the file)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted experiment")
    p.add_argument("--backend", choices=("auto", "ray", "optuna"), default="auto",
                   help="ray: Ray Tune + Optuna + ASHA; optuna: Optuna alone with worker processes sharing "
                        "a journal storage (no Ray needed); auto (default): ray when it is installed")
    p.add_argument("--workers", type=int,
                   help="--backend optuna: worker processes (default: CPUs / search.cpus_per_trial, "
                        "on a GPU at most 1 / search.gpus_per_trial per GPU)")
    p.add_argument("--address", help="join an existing Ray cluster (storage must be shared; --backend ray)")
    p.add_argument("--paper-only", action="store_true",
                   help="no search: the finals retrain each method's paper values (the file's 'paper' and "
                        "'fixed'); only the epoch is chosen, by the proxy (reproducing a paper's table)")
    p.add_argument("--smoke", action="store_true", help="tiny budget: a few thousand images, epochs, trials")
    return p.parse_args(argv)


def fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    raise SystemExit(2)


def manifest(exp, args, methods, settings, num_samples, seeds) -> dict:
    out = {"space_file": str(exp.path), "space": exp.raw, "smoke": bool(args.smoke), "methods": methods,
           "settings": settings, "num_samples": num_samples, "final_seeds": seeds, "backend": args.backend}
    if args.paper_only:  # absent otherwise: experiments of earlier versions still --resume
        out.update(num_samples=0, paper_only=True)
    return out


def resolve_backend(name: str, address) -> str:
    import importlib.util
    if name == "optuna":
        has_ray = False  # not looked for
    else:
        try:  # finding ray.tune imports the ray package: a broken install counts as none
            has_ray = importlib.util.find_spec("ray") is not None and importlib.util.find_spec("ray.tune") is not None
        except ImportError:
            has_ray = False
    if name == "auto":
        return "ray" if has_ray else "optuna"
    if name == "ray" and not has_ray:
        fail("--backend ray: Ray Tune is not installed here; use --backend optuna (Optuna alone, same outputs) "
             "or pip install 'ray[tune]'")
    if name == "optuna" and address:
        fail("--address joins a Ray cluster: it needs --backend ray")
    return name


def lock_experiment(exp_dir: Path):
    """An exclusive ``flock`` on ``<exp_dir>/.lock``: a second search (or ``--resume``) into the
    same experiment while this one runs is refused. The kernel drops the lock when the process
    ends, however it ends, so a killed search can always be resumed."""
    f = open(exp_dir / ".lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        fail(f"{exp_dir} is in use by another running search ({f.read().strip() or 'unknown process'}); "
             f"wait for it, stop it, or choose another --name")
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    f.flush()
    return f


def check_device(exp) -> None:
    """An explicit CUDA device needs a GPU here (trials would fail one by one otherwise)."""
    import torch
    for space in exp.methods.values():
        if space.device.startswith("cuda") and not torch.cuda.is_available():
            fail(f"{exp.path}: device: {space.device!r} but this machine has no usable CUDA GPU; "
                 f"use 'auto' (GPU when there is one) or 'cpu'")
    if not torch.cuda.is_available() and exp.first.search["gpus_per_trial"] > 0:
        print(f"note: no GPU here: search.gpus_per_trial {exp.first.search['gpus_per_trial']} is not requested; "
              f"trials run on the CPU", flush=True)


def _pick(kind: str, wanted, available) -> list[str]:
    for x in wanted or []:
        if x not in available:
            fail(f"--{kind}: unknown {kind[:-1]} {x!r}; this file has: {', '.join(available)}")
    return list(wanted or available)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        exp = load_experiment(args.space, smoke_mode=args.smoke)
    except ConfigError as exc:
        fail(str(exc))
    methods = _pick("methods", args.methods, list(exp.methods))
    settings = _pick("settings", args.settings, exp.settings)
    num_samples = exp.first.num_samples if args.num_samples is None else args.num_samples  # 0 is refused,
    n_seeds = exp.first.final_seeds if args.seeds is None else args.seeds                 # not "default"
    if num_samples < 1 or num_samples > 10000:
        fail(f"--num-samples must lie in [1, 10000], got {num_samples}")
    if args.paper_only and args.num_samples is not None:
        fail("--paper-only runs no search: --num-samples has no meaning with it")
    if n_seeds < 1 or n_seeds > 100:
        fail(f"--seeds must lie in [1, 100], got {n_seeds}")
    if args.workers is not None and not 1 <= args.workers <= 256:
        fail(f"--workers must lie in [1, 256], got {args.workers}")
    args.backend = resolve_backend(args.backend, args.address)
    if args.workers is not None and args.backend != "optuna":
        fail("--workers sets the worker processes of --backend optuna; with Ray use search.cpus_per_trial / "
             "gpus_per_trial")
    data_root = resolve_data_root(args.data_root)
    try:  # fail before any trial starts, naming the folder to fill
        check_data(exp.dataset, data_root)
    except DataNotFoundError as exc:
        fail(str(exc))
    if not args.address:
        check_device(exp)
    name = args.name or (exp.name + ("-smoke" if args.smoke else ""))
    exp_dir = Path(args.storage_path).expanduser().resolve() / name
    wanted = manifest(exp, args, methods, settings, num_samples, n_seeds)
    man_path = exp_dir / "experiment.yaml"
    if args.resume and not man_path.exists():
        fail(f"--resume: {exp_dir} holds no experiment (no experiment.yaml)")
    try:
        exp_dir.mkdir(parents=True, exist_ok=True)
        probe = exp_dir / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        fail(f"--storage-path: cannot write into {exp_dir} ({exc.strerror or exc})")
    lock = lock_experiment(exp_dir)  # held until this process ends (also by SIGKILL)
    if args.resume:
        if yaml.safe_load(man_path.read_text()) != json.loads(json.dumps(wanted)):
            fail(f"--resume: {exp_dir} holds a different experiment (space, methods, settings, budget or "
                 f"--smoke differ)")
    elif man_path.exists():
        fail(f"{exp_dir} already holds an experiment: use --resume to continue it, or another --name")
    tmp = man_path.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(json.loads(json.dumps(wanted)), sort_keys=False))
    os.replace(tmp, man_path)

    from .export import atomic_write, write_best_configs, write_finals
    from .studies import METRIC, best_config, search_stats, study_name, summarize_run
    if args.backend == "ray":
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"  # our TensorBoard callback replaces Ray's
        os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
        import ray
        from . import ray_backend as backend
        if args.address:
            ray.init(address=args.address)
        else:
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        extra = {}
    else:
        from . import optuna_backend as backend
        extra = {"workers": args.workers}
    print(f"experiment: {exp_dir}\nbackend: {args.backend}; methods: {', '.join(methods)}; settings: "
          f"{', '.join(settings)}; "
          + ("no search (--paper-only: the paper's values)" if args.paper_only else f"{num_samples} trials each")
          + f"; {n_seeds} final seeds; proxy {exp.proxy}; "
          f"data {data_root}", flush=True)

    best: dict[str, dict] = {}
    for method in methods:
        space = exp.methods[method]
        best[method] = {}
        for setting in settings:
            key = study_name(method, setting)
            if args.paper_only:
                best[method][setting] = {"config": space.paper_config(setting, str(data_root)), "proxy_best": None,
                                         "selected_by": "the file's paper values (--paper-only: no search)"}
                continue
            done = exp_dir / "search" / method / setting / ".done"  # a finished search is never rerun
            if done.exists():
                study = backend.load_study(exp_dir, key)
            else:
                t0 = time.monotonic()
                try:
                    study = backend.search_setting(space, setting, exp_dir, data_root, num_samples,
                                                   resume=args.resume, **extra)
                except RuntimeError as exc:
                    fail(str(exc))
                folder = exp_dir / "search" / method / setting
                stats = search_stats(folder, study, num_samples, int(space.base_config(setting, "")["epochs"]),
                                     time.monotonic() - t0, args.backend)
                stats["resumed"] = bool(args.resume)  # then wall_s covers only this part
                atomic_write(folder / "search_stats.json", json.dumps(stats, indent=1) + "\n")
                print(f"[{key}] {stats['trial_epochs']} trial-epochs in {stats['wall_s']:.0f} s "
                      f"({stats['trial_epochs_per_s']} per s); pruning saved {100 * stats['pruning_saved']:.0f}% "
                      f"of {stats['trial_epochs_without_pruning']}", flush=True)
                done.touch()
            try:
                bt = study.best_trial
            except ValueError:
                fail(f"[{key}] no trial completed; see {exp_dir / 'search' / method / setting}")
            best[method][setting] = {
                "config": best_config(space, setting, study, data_root), "proxy_best": float(bt.value),
                "optuna_trial": bt.number, "trial_states": dict(Counter(t.state.name for t in study.trials))}
            print(f"[{key}] best by proxy: trial {bt.number}, {METRIC} {bt.value:.4f}, {bt.params}",
                  flush=True)
    write_best_configs(exp_dir / "best_configs.yaml", exp, best, paper_only=args.paper_only)

    seeds = list(range(1, n_seeds + 1))
    runs: dict[str, dict] = {method: {} for method in methods}
    try:  # --backend optuna: one pool of workers for every method and setting
        done = backend.finals_many([(exp.methods[m], s, best[m][s]["config"], seeds) for m in methods for s in settings],
                                   exp_dir, resume=args.resume, **extra)
    except RuntimeError as exc:
        fail(str(exc))
    for (method, setting), histories in done.items():
        runs[method][setting] = {seed: summarize_run(h, exp.finals["last_k"]) for seed, h in histories.items()}
    table = write_finals(exp_dir, exp, runs, paper_only=args.paper_only)
    print("\n" + table)
    print(f"outputs in {exp_dir}: best_configs.yaml, finals.csv, finals.md"
          + ("" if args.paper_only else f", {'optuna.db' if args.backend == 'ray' else 'optuna.journal'}")
          + f"\nTensorBoard: tensorboard --logdir {exp_dir}", flush=True)
    try:  # fidelity and figures are views of the outputs above: a failure here loses nothing
        from .fidelity import write as write_fidelity
        fidelity = write_fidelity(exp_dir)
        print(f"proxy fidelity (every logged proxy against the test set): {exp_dir / 'fidelity.md'}", flush=True)
        from .report import build as build_report
        build_report(exp_dir, fidelity=fidelity)
    except Exception as exc:  # noqa: BLE001
        print(f"warning: the fidelity table or the report could not be built ({type(exc).__name__}: {exc}); "
              f"retry with: python -m tune_lnl.report {exp_dir}", flush=True)
    if args.backend == "ray":
        ray.shutdown()
    lock.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
