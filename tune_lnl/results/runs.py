"""The experiment folder: atomic writes, the runs' ``result.json`` lines, the Optuna studies,
and the per-run summary (best / last / oracle) every table is made of. Read by the report and
fidelity, written by the search backends; nothing here imports Ray.

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

import json
import math
import os
from pathlib import Path

#: one JSON line per epoch of a run (a trial or a final seed)
RESULTS = "result.json"
#: the Optuna storage of --backend optuna (a JournalStorage file) and of --backend ray (SQLite)
JOURNAL = "optuna.journal"
SQLITE = "optuna.db"


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a crash never leaves a half-written file there."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def study_name(method: str, setting: str) -> str:
    return f"{method}/{setting}"


def read_lines(path: Path) -> list[dict]:
    """The JSON lines of a ``result.json`` (a torn last line of a killed run is skipped)."""
    out = []
    try:
        text = Path(path).read_text()
    except OSError:
        return out
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return [h for h in out if "epoch" in h and "proxy" in h]


def read_history(run_dir: Path) -> list[dict]:
    """The epoch lines of one run folder, as written."""
    return read_lines(Path(run_dir) / RESULTS)


def runs_under(folder: Path) -> dict[str, list[dict]]:
    """Run folder name -> epoch history (sorted, the last line of a redone epoch kept)."""
    runs = {}
    for f in sorted(Path(folder).glob(f"*/{RESULTS}")):
        by_epoch = {int(h["epoch"]): h for h in read_lines(f)}
        if by_epoch:
            runs[f.parent.name] = [by_epoch[e] for e in sorted(by_epoch)]
    return runs


def journal_storage(exp_dir: Path):
    """The experiment's Optuna ``JournalStorage`` (safe for several processes)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    return JournalStorage(JournalFileBackend(str(Path(exp_dir) / JOURNAL)))


def sqlite_url(exp_dir: Path) -> str:
    return f"sqlite:///{Path(exp_dir) / SQLITE}"


def open_study(exp_dir, key: str):
    """The Optuna study ``key`` of an experiment folder, whichever backend wrote it
    (``optuna.journal``: --backend optuna; ``optuna.db``: --backend ray)."""
    import optuna
    exp_dir = Path(exp_dir)
    if (exp_dir / JOURNAL).exists():
        return optuna.load_study(study_name=key, storage=journal_storage(exp_dir))
    if (exp_dir / SQLITE).exists():
        return optuna.load_study(study_name=key, storage=sqlite_url(exp_dir))
    raise FileNotFoundError(f"{exp_dir}: no Optuna storage ({JOURNAL} or {SQLITE})")


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
