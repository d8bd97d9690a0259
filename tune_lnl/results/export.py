"""Experiment outputs: ``best_configs.yaml`` (runnable with ``tune_lnl.train``), ``finals.csv``
(one row per method, setting and seed), ``finals.md`` (methods x settings, best/last mean ± std)."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import yaml

from ..config import BEST_KIND
from .runs import atomic_write, last_epochs_words, mean_std, portable_path  # noqa: I001

#: how the configs of an experiment were chosen (best_configs.yaml's ``selected_by``)
SELECTED_BY_PROXY = "proxy_best (max of the proxy over epochs; test accuracy never used)"
SELECTED_BY_PAPER = "none: the space file's paper values (--paper-only); the proxy chose only the epoch"


def write_best_configs(path: Path, exp, best: dict[str, dict[str, dict]], paper_only: bool = False) -> None:
    """``best``: method -> setting -> {"config": full run config, "proxy_best": float, ...}. The
    experiment is named by its folder (``--name``), the space file's own name kept where it differs;
    the space file's path is relative to its repository (:func:`~tune_lnl.results.runs.portable_path`)."""
    doc = {"kind": BEST_KIND, "experiment": path.parent.name,
           **({"space_name": exp.name} if exp.name != path.parent.name else {}), "dataset": exp.dataset,
           "dataset_options": exp.dataset_options, "proxy": exp.proxy,
           "space_file": portable_path(exp.path), "selected_by": SELECTED_BY_PAPER if paper_only else SELECTED_BY_PROXY,
           "methods": best}
    atomic_write(path, yaml.safe_dump(doc, sort_keys=False))


FIELDS = ["method", "setting", "seed", "best", "best_epoch", "proxy", "last", "oracle_max", "epochs"]


def write_finals(exp_dir: Path, exp, runs: dict[str, dict[str, dict[int, dict]]], paper_only: bool = False) -> str:
    """``runs``: method -> setting -> seed -> summary (see :func:`tune_lnl.results.runs.summarize_run`).
    Writes ``finals.csv`` (one row per method, setting and seed) and ``finals.md``: rows are
    methods, columns settings with "best" and "last" per cell (the MLC paper's Tables II/III),
    then the test-selected oracle figure in a table of its own."""
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=FIELDS)
    w.writeheader()
    for method, per_setting in runs.items():
        for setting, per_seed in per_setting.items():
            for seed, summary in sorted(per_seed.items()):
                w.writerow({"method": method, "setting": setting, "seed": seed,
                            **{k: summary[k] for k in FIELDS[3:]}})
    atomic_write(exp_dir / "finals.csv", buf.getvalue())
    text = finals_markdown(exp, runs, paper_only, exp_dir.name)
    atomic_write(exp_dir / "finals.md", text)
    return text


def _cell(per_seed: dict[int, dict], key: str) -> str:
    m, sd = mean_std([100 * v[key] for v in per_seed.values()])
    return f"{m:.2f} ± {sd:.2f}"


def finals_markdown(exp, runs: dict[str, dict[str, dict[int, dict]]], paper_only: bool = False,
                    name: str | None = None) -> str:
    settings = list(dict.fromkeys(s for per in runs.values() for s in per))
    n_seeds = sorted({len(per_seed) for per in runs.values() for per_seed in per.values()})
    epochs = [v["epochs"] for per in runs.values() for per_seed in per.values() for v in per_seed.values()]
    last = last_epochs_words(exp.finals.last_k, epochs)
    head = "| method | " + " | ".join(f"{s} best | {s} last" for s in settings) + " |"
    rule = "| --- |" + " --- | --- |" * len(settings)
    lines = [f"# Finals: {name or exp.name} ({exp.dataset}, proxy `{exp.proxy}`)", "",
             f"Test accuracy (%), mean ± std over {'/'.join(map(str, n_seeds))} seeds, each method with "
             + ("the space file's paper hyperparameters (--paper-only, no search)" if paper_only else
                "its proxy-selected hyperparameters")
             + f". **best**: at the epoch with the highest proxy (`{exp.proxy}`), "
             f"never the test set; **last**: {last}.", "", head, rule]
    for method, per in runs.items():
        cells = " | ".join(f"{_cell(per[s], 'best')} | {_cell(per[s], 'last')}" if s in per else "- | -"
                           for s in settings)
        lines.append(f"| {method} | {cells} |")
    lines += ["", "Oracle max (test-selected: the highest test accuracy of any epoch; NOT an honest estimate, "
              "shown only for comparison with papers that report it), and the proxy at the selected epoch:", "",
              "| method | " + " | ".join(f"{s} oracle | {s} proxy" for s in settings) + " |", rule]
    for method, per in runs.items():
        cells = " | ".join(f"{_cell(per[s], 'oracle_max')} | {_cell(per[s], 'proxy')}" if s in per else "- | -"
                           for s in settings)
        lines.append(f"| {method} | {cells} |")
    return "\n".join(lines) + "\n"
