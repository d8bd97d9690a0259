"""What both search backends share, without Ray: study names and seeds, the search space as
Optuna distributions, the paper's point, the pruner's rungs, trial slots from the resources,
run-folder paths, the selected config, failure records and throughput statistics."""
from __future__ import annotations

import json
import time
import zlib
from pathlib import Path

from ..results.runs import study_name

__all__ = ["METRIC", "FAILURES", "MAX_WORKER_RETRIES", "setting_seed", "study_name", "distributions", "rungs",
           "slots", "run_dirs", "best_config", "log_failure", "search_stats"]

#: what trials report, what the pruner compares and what Optuna records: the running maximum of
#: the configured proxy (test accuracy never enters)
METRIC = "proxy_best"
#: one JSON line per failed trial or final run, in the experiment folder
FAILURES = "failures.jsonl"
#: how often a trial whose worker process died is restarted from its last checkpoint
MAX_WORKER_RETRIES = 2


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
    ``1 / gpus_per_trial`` per GPU (0.125: eight trials packed on one GPU)."""
    cpt = min(float(cpus_per_trial), float(cpus))
    n = max(1, int(cpus // max(cpt, 1e-9)))
    if gpus > 0 and gpus_per_trial > 0:
        n = min(n, max(1, int(gpus // gpus_per_trial)))
    return cpt, n


def run_dirs(exp_dir: Path, part: str, method: str, setting: str) -> tuple[Path, Path]:
    """``(runs folder, TensorBoard folder)`` of one method's setting; ``part``: search or finals."""
    exp_dir = Path(exp_dir)
    return exp_dir / part / method / setting, exp_dir / "tensorboard" / part / method / setting


def best_config(space, setting: str, study, data_root) -> dict:
    """The full run config of the study's best COMPLETE trial (by the proxy only)."""
    return {**space.base_config(setting, str(data_root)), **study.best_trial.params}


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
    run = sum(sum(1 for line in f.read_text().splitlines() if line.strip())
              for f in Path(run_root).glob("*/result.json"))
    full = num_samples * epochs
    states: dict[str, int] = {}
    for t in study.trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    return {"backend": backend, "trials": len(study.trials), "trial_states": states, "epochs_per_trial": epochs,
            "trial_epochs": run, "trial_epochs_without_pruning": full,
            "pruning_saved": round(1 - run / full, 4) if full else 0.0,
            "wall_s": round(wall_s, 2), "trial_epochs_per_s": round(run / wall_s, 4) if wall_s > 0 else None}
