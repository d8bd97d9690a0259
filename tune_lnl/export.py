"""Experiment outputs: ``best_configs.yaml`` (runnable with ``tune_lnl.train``), ``finals.csv``
(one row per setting and seed), ``finals.md`` (mean +- std per setting)."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import yaml

from .engine import mean_std

BEST_KIND = "tune_lnl.best_configs"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_best_configs(path: Path, space, best: dict[str, dict]) -> None:
    """``best``: setting -> {"config": full run config, "proxy_best": float, "trial": int}."""
    doc = {"kind": BEST_KIND, "experiment": space.name, "method": space.method, "dataset": space.dataset,
           "proxy": space.proxy, "space_file": str(space.path),
           "selected_by": "proxy_best (max of the proxy over epochs; test accuracy never used)",
           "settings": best}
    _atomic_write(path, yaml.safe_dump(doc, sort_keys=False))


def write_finals(exp_dir: Path, space, runs: dict[str, dict[int, dict]]) -> str:
    """``runs``: setting -> seed -> summary (see :func:`tune_lnl.engine.summarize_run`)."""
    rows = []
    for setting, per_seed in runs.items():
        for seed, s in sorted(per_seed.items()):
            rows.append({"setting": setting, "seed": seed, **s})
    fields = ["setting", "seed", "best", "best_epoch", "proxy", "last", "oracle_max", "epochs"]
    tmp = exp_dir / "finals.csv.tmp"
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in fields})
    os.replace(tmp, exp_dir / "finals.csv")

    last_k = space.finals["last_k"]
    lines = [f"# Finals: {space.name} ({space.method} on {space.dataset}, proxy `{space.proxy}`)", "",
             f"Test accuracy (%), mean +- std over seeds. **best**: at the epoch with the highest proxy "
             f"(`{space.proxy}`); **last**: mean of the last {last_k} epochs. "
             f"*oracle max*: the highest test accuracy of any epoch, i.e. selected ON THE TEST SET, "
             f"shown only for comparison with papers that report it.", "",
             "| setting | best | last | oracle max (test-selected) | proxy at best | seeds |",
             "| --- | --- | --- | --- | --- | --- |"]
    for setting, per_seed in runs.items():
        vals = list(per_seed.values())
        cell = lambda key: "%.2f +- %.2f" % tuple(100 * x for x in mean_std([v[key] for v in vals]))
        lines.append(f"| {setting} | {cell('best')} | {cell('last')} | {cell('oracle_max')} | "
                     f"{cell('proxy')} | {len(vals)} |")
    text = "\n".join(lines) + "\n"
    _atomic_write(exp_dir / "finals.md", text)
    return text
