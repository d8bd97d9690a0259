"""What both search backends share, without Ray: the studies of an experiment (:class:`Job`),
their names and seeds, the search space as Optuna distributions, the pruner's rungs, trial slots
from the resources, how many trials one study may run at once while every study runs at once
(:func:`study_cap`), run-folder paths, the selected config, what a finished search records
(:func:`finish_search`), failure records and throughput statistics."""
from __future__ import annotations

import json
import math
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..errors import SearchError
from ..results.runs import atomic_write, study_name

__all__ = ["METRIC", "FAILURES", "MAX_WORKERS", "MAX_WORKER_RETRIES", "Job", "setting_seed", "study_name",
           "distributions", "rungs", "slots", "local_slots", "study_cap",
           "run_dirs", "best_config", "searched_best", "finish_search",
           "log_failure", "search_stats"]

#: what trials report, what the pruner compares and what Optuna records: the running maximum of
#: the configured proxy (test accuracy never enters)
METRIC = "proxy_best"
#: one JSON line per failed trial or final run, in the experiment folder
FAILURES = "failures.jsonl"
#: the most trials (worker processes) at a time on one machine, however small a trial's share
#: of a CPU (``--workers`` of the Optuna backend too)
MAX_WORKERS = 256
#: how often a trial whose worker process died is restarted from its last checkpoint
MAX_WORKER_RETRIES = 2


@dataclass
class Job:
    """One (method, setting) of an experiment: its search (unless ``best`` is known already: a
    finished search, or the paper's values with ``--paper-only``), then its final seeds.
    ``best``: ``{"config": full run config, "proxy_best": ..., ...}``, set when the search ends."""
    space: object  # SpaceConfig
    setting: str
    best: dict | None = None

    @property
    def method(self) -> str:
        return self.space.method

    @property
    def key(self) -> str:
        return study_name(self.space.method, self.setting)


def setting_seed(seed: int, setting: str) -> int:
    """Independent TPE seeds per study (same search seed would replay the same samples)."""
    return (int(seed) * 1_000_003 + zlib.crc32(setting.encode())) % 2**31


def distributions(space, setting: str) -> dict:
    """The searched hyperparameters of one method's setting as Optuna distributions."""
    return {k: d.to_optuna() for k, d in space.space_for(setting).items()}


def rungs(space, epochs: int) -> tuple[int, int]:
    """``(grace period, reduction factor)`` of the pruner (ASHA on Ray, SH/Hyperband on Optuna):
    the grace period never exceeds the run's epochs."""
    return min(space.grace_period, epochs), space.reduction_factor


def slots(cpus: float, gpus: float, cpus_per_trial: float, gpus_per_trial: float) -> tuple[float, int]:
    """``(CPUs each trial asks for, trials at a time)`` from the resources there are: one trial
    per ``cpus_per_trial`` CPUs (never asking more than there are), and with GPUs at most
    ``1 / gpus_per_trial`` per GPU (0.125: eight trials packed on one GPU); never more than
    :data:`MAX_WORKERS`."""
    cpt = min(float(cpus_per_trial), float(cpus))
    n = min(MAX_WORKERS, max(1, int(cpus // max(cpt, 1e-9))))
    if gpus > 0 and gpus_per_trial > 0:
        n = min(n, max(1, int(gpus // gpus_per_trial)))
    return cpt, n


def local_slots(space, requested: int | None = None) -> tuple[int, int]:
    """``(trials at a time, CPU threads each)`` on this machine: :func:`slots` from its CPUs and
    (unless ``space.device`` is the CPU) its GPUs; ``requested`` (``--workers``) replaces the count."""
    import os

    import torch
    gpus = torch.cuda.device_count() if space.device != "cpu" and torch.cuda.is_available() else 0
    cpt, n = slots(os.cpu_count() or 1, gpus, space.search.cpus_per_trial, space.search.gpus_per_trial)
    return (int(requested) if requested else n), max(1, int(cpt))


def study_cap(cap, num_samples: int, n_slots: int, n_studies: int) -> int:
    """Trials one study runs at once when every study of the experiment runs at once.
    ``cap``: ``search.max_concurrent_per_study`` (an int, or ``"auto"``). ``auto`` is
    ``max(ceil(sqrt(num_samples)), ceil(slots / studies))``: TPE learns only from finished
    trials, and sqrt(n) at a time splits a study of n trials into about sqrt(n) rounds of sqrt(n)
    (as many rounds as trials per round); but never fewer than an even share of the slots, so a
    lone study (or one of few) still fills the machine. Never more than the slots."""
    if cap == "auto":
        cap = max(math.ceil(math.sqrt(num_samples)), math.ceil(n_slots / max(1, n_studies)))
    return max(1, min(int(cap), n_slots))


def run_dirs(exp_dir: Path, part: str, method: str, setting: str) -> tuple[Path, Path]:
    """``(runs folder, TensorBoard folder)`` of one method's setting; ``part``: search or finals."""
    exp_dir = Path(exp_dir)
    return exp_dir / part / method / setting, exp_dir / "tensorboard" / part / method / setting


def best_config(space, setting: str, study, data_root) -> dict:
    """The full run config of the study's best COMPLETE trial (by the proxy only)."""
    return {**space.base_config(setting, str(data_root)), **study.best_trial.params}


def searched_best(job: Job, study, data_root) -> dict:
    """``job.best`` from a finished study: its best COMPLETE trial by the proxy."""
    try:
        bt = study.best_trial
    except ValueError:
        raise SearchError(f"[{job.key}] no trial completed; see the trials in search/{job.key}") from None
    print(f"[{job.key}] best by proxy: trial {bt.number}, {METRIC} {bt.value:.4f}, {bt.params}", flush=True)
    return {"config": best_config(job.space, job.setting, study, data_root), "proxy_best": float(bt.value),
            "optuna_trial": bt.number, "trial_states": dict(Counter(t.state.name for t in study.trials))}


def finish_search(job: Job, study, exp_dir: Path, data_root, num_samples: int, wall_s: float, backend: str,
                  resumed: bool) -> dict:
    """A search has ended: write its ``search_stats.json`` and ``.done`` (a finished search is
    never rerun) and return its best (see :func:`searched_best`)."""
    folder, _ = run_dirs(exp_dir, "search", job.method, job.setting)
    stats = search_stats(folder, study, num_samples, job.space.epochs(job.setting),
                         wall_s, backend)
    stats["resumed"] = bool(resumed)  # then wall_s covers only this part
    atomic_write(folder / "search_stats.json", json.dumps(stats, indent=1) + "\n")
    print(f"[{job.key}] {stats['trial_epochs']} trial-epochs in {stats['wall_s']:.0f} s "
          f"({stats['trial_epochs_per_s']} per s); pruning saved {100 * stats['pruning_saved']:.0f}% "
          f"of {stats['trial_epochs_without_pruning']}", flush=True)
    best = searched_best(job, study, data_root)
    (folder / ".done").touch()
    return best


def log_failure(path: Path, label: str, trial, kind: str, error: str, epoch, config: dict, trial_dir) -> None:
    """Append one record to ``failures.jsonl`` and say it on the console."""
    record = {"run": label, "trial": trial, "kind": kind, "epoch": epoch, "error": error,
              "config": dict(config), "trial_dir": str(trial_dir), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    with open(path, "a") as f:  # one short write per line: concurrent appenders do not interleave
        f.write(json.dumps(record, default=str) + "\n")
    print(f"[{label}] trial {trial} FAILED ({kind}) at epoch {epoch}: {error}", flush=True)


def search_stats(run_root: Path, study, num_samples: int, epochs: int, wall_s: float, backend: str) -> dict:
    """Throughput and what the pruner saved, from the trials' ``result.json`` files: trial-epochs
    run (a redone epoch after a restart counts: it was computed), per second of wall time, and the
    share of the ``num_samples x epochs`` a search without pruning would run."""
    run = sum(sum(1 for line in f.read_bytes().splitlines() if line.strip())
              for f in Path(run_root).glob("*/result.json"))
    full = num_samples * epochs
    states: dict[str, int] = {}
    for t in study.trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    return {"backend": backend, "trials": len(study.trials), "trial_states": states, "epochs_per_trial": epochs,
            "trial_epochs": run, "trial_epochs_without_pruning": full,
            "pruning_saved": round(1 - run / full, 4) if full else 0.0,
            "wall_s": round(wall_s, 2), "trial_epochs_per_s": round(run / wall_s, 4) if wall_s > 0 else None}
