"""What both search backends share, without Ray: study names and seeds, the selected config,
failure records, and the per-run summary (best / last / oracle) the finals table is made of."""
from __future__ import annotations

import json
import math
import time
import zlib
from pathlib import Path

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


def study_name(method: str, setting: str) -> str:
    return f"{method}/{setting}"


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


def first_best(history: list[dict], key: str = "proxy") -> int:
    """Index of the epoch with the highest ``key`` (ties: the earliest): the proxy's choice."""
    return max(range(len(history)), key=lambda i: (history[i][key], -i))


def summarize_run(history: list[dict], last_k: int) -> dict:
    """best = test acc at the proxy-best epoch (first maximum); last = mean test acc of the last
    ``last_k`` epochs; oracle = max test acc over epochs (test-selected: comparison only)."""
    i_best = first_best(history)
    tests = [h["test_acc"] for h in history]
    tail = tests[-last_k:]
    return {"best": tests[i_best], "best_epoch": int(history[i_best]["epoch"]), "proxy": history[i_best]["proxy"],
            "last": sum(tail) / len(tail), "oracle_max": max(tests), "epochs": len(history)}


def mean_std(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return m, sd


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


def open_study(exp_dir, key: str):
    """The Optuna study ``key`` of an experiment folder, whichever backend wrote it
    (``optuna.journal``: --backend optuna; ``optuna.db``: --backend ray)."""
    import optuna
    exp_dir = Path(exp_dir)
    if (exp_dir / "optuna.journal").exists():
        from .optuna_backend import storage
        return optuna.load_study(study_name=key, storage=storage(exp_dir))
    if (exp_dir / "optuna.db").exists():
        return optuna.load_study(study_name=key, storage=f"sqlite:///{exp_dir / 'optuna.db'}")
    raise FileNotFoundError(f"{exp_dir}: no Optuna storage (optuna.journal or optuna.db)")
