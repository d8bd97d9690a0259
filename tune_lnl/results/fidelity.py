"""Proxy fidelity: how well each logged selection proxy picks what the test set would have.

Every run logs every proxy the data offers each epoch (``noisy_val_acc``, ``clean_val_acc``,
``clean_intact_acc``; one of them selects). For each method, setting and logged proxy ``p``:

* **search** (over the trials of the setting's study, whatever their state): each trial ``t`` is
  read at its ``p``-best epoch ``e_t`` (the first epoch of maximal ``p``): ``P_t = p(e_t)``,
  ``T_t = test_acc(e_t)``.
  - ``search_tau``, ``search_rho``: Kendall's tau-b and Spearman's rho between ``P`` and ``T``;
  - ``search_regret``: the highest ``T_t`` over the trials (the config the test set would have
    picked, measured the same way) minus ``T`` of the trial ``p`` selects (the highest ``P_t``;
    ties: the first trial), in percentage points: >= 0 by definition (the oracle's pick is a
    maximum over the same trials); 0: the proxy picked the oracle's config.
* **finals** (over the epochs of each final seed; mean over seeds):
  - ``finals_tau``, ``finals_rho``: the same correlations between ``p`` and ``test_acc`` over epochs;
  - ``finals_regret``: the highest ``test_acc`` of any epoch (the oracle epoch) minus ``test_acc``
    at the ``p``-best epoch, in percentage points (>= 0; 0: the proxy picked the oracle's epoch).

Correlations of fewer than two points, or of a constant series, are NaN. Nothing here selects:
it measures, after the fact, what the selection cost.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from ..data.proxies import PROXIES
from ..errors import TuneLNLError
from .runs import atomic_write, experiment_title, first_best, read_manifest, runs_under

#: the proxies a run can log, as ``<proxy>_acc`` per epoch (the registry's, in its order)
PROXY_KEYS = tuple(PROXIES)


def _nan_if_bad(v) -> float:
    v = float(v)
    return v if math.isfinite(v) else float("nan")


def correlations(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """(Kendall's tau-b, Spearman's rho) of two equally long series; NaN where undefined."""
    if len(xs) < 2 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return float("nan"), float("nan")
    from scipy.stats import kendalltau, spearmanr
    return _nan_if_bad(kendalltau(xs, ys).statistic), _nan_if_bad(spearmanr(xs, ys).statistic)


def proxy_best_point(history: list[dict], proxy: str) -> tuple[float, float, int] | None:
    """``(proxy value, test accuracy, epoch)`` at the first epoch of maximal ``<proxy>_acc``;
    None if the run never logged it."""
    key = f"{proxy}_acc"
    logged = [h for h in history if isinstance(h.get(key), (int, float)) and math.isfinite(h[key])]
    if not logged:
        return None
    h = logged[first_best(logged, key)]
    return h[key], h["test_acc"], h["epoch"]


def search_fidelity(trials: list[list[dict]], proxy: str) -> dict:
    """Fidelity of ``proxy`` over the trials of one study (each a per-epoch history, in trial
    order): tau, rho and the regret (percentage points) of the config it selects."""
    points = [p for p in (proxy_best_point(h, proxy) for h in trials) if p is not None]
    if not points:
        return {}
    P, T = [p[0] for p in points], [p[1] for p in points]
    tau, rho = correlations(P, T)
    chosen = max(range(len(P)), key=lambda i: (P[i], -i))
    return {"trials": len(points), "search_tau": tau, "search_rho": rho,
            "search_regret": 100.0 * (max(T) - T[chosen]), "search_selected_test": 100.0 * T[chosen],
            "search_oracle_test": 100.0 * max(T)}


def finals_fidelity(runs: list[list[dict]], proxy: str) -> dict:
    """Fidelity of ``proxy`` over the epochs of the final seeds: mean over seeds of tau, rho and
    the regret (percentage points) of its epoch choice against the test-selected epoch."""
    key = f"{proxy}_acc"
    taus, rhos, regrets = [], [], []
    for h in runs:
        pts = [(x[key], x["test_acc"]) for x in h if isinstance(x.get(key), (int, float)) and math.isfinite(x[key])]
        if not pts:
            continue
        tau, rho = correlations([p[0] for p in pts], [p[1] for p in pts])
        taus.append(tau)
        rhos.append(rho)
        best = proxy_best_point(h, proxy)
        regrets.append(100.0 * (max(x["test_acc"] for x in h) - best[1]))
    if not regrets:
        return {}
    mean = lambda v: sum(v) / len(v)  # noqa: E731 -- NaN propagates: an undefined seed is not hidden
    return {"seeds": len(regrets), "finals_tau": mean(taus), "finals_rho": mean(rhos), "finals_regret": mean(regrets)}


def _histories(folder: Path) -> list[list[dict]]:
    return list(runs_under(folder).values())


def experiment_fidelity(exp_dir: Path, methods: list[str], settings: list[str], selecting: str) -> list[dict]:
    """One row per method, setting and logged proxy (the configured one marked ``selects``)."""
    exp_dir = Path(exp_dir)
    rows = []
    for m in methods:
        for s in settings:
            trials = _histories(exp_dir / "search" / m / s)
            finals = _histories(exp_dir / "finals" / m / s)
            logged = [p for p in PROXY_KEYS if any(f"{p}_acc" in h for run in trials + finals for h in run)]
            for p in logged:
                row = {"method": m, "setting": s, "proxy": p, "selects": p == selecting,
                       **search_fidelity(trials, p), **finals_fidelity(finals, p)}
                rows.append(row)
    return rows


def fmt(v, digits=2) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def markdown(rows: list[dict], title: str) -> str:
    lines = [f"# Proxy fidelity: {title}", "",
             "For each logged proxy: Kendall's tau / Spearman's rho between the proxy and the test accuracy "
             "over the search's trials (each at its proxy-best epoch) and over the epochs of the final seeds "
             "(mean over seeds); regret = test accuracy of what the test set would have selected minus that of "
             "what the proxy selects, in percentage points (>= 0; 0 is perfect). `*`: the proxy that selected in "
             "this experiment (the others are measured on the same runs; the pruner followed the selecting one).",
             "", "| method | setting | proxy | trials | search tau | search rho | search regret (pp) | seeds | "
             "finals tau | finals rho | finals epoch regret (pp) |", "|" + " --- |" * 11]
    for r in rows:
        lines.append(f"| {r['method']} | {r['setting']} | {r['proxy']}{' *' if r['selects'] else ''} | "
                     f"{r.get('trials', 0)} | {fmt(r.get('search_tau'))} | {fmt(r.get('search_rho'))} | "
                     f"{fmt(r.get('search_regret'))} | {r.get('seeds', 0)} | {fmt(r.get('finals_tau'))} | "
                     f"{fmt(r.get('finals_rho'))} | {fmt(r.get('finals_regret'))} |")
    return "\n".join(lines) + "\n"


def pivot_markdown(rows: list[dict], stage: str = "search") -> str:
    """One table per method: rows = proxies, columns = settings, cells ``tau / regret`` of the
    ``stage`` (``search``: over trials; ``finals``: over the finals' epochs)."""
    out = []
    methods = list(dict.fromkeys(r["method"] for r in rows))
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    proxies = [p for p in PROXY_KEYS if any(r["proxy"] == p for r in rows)]
    for m in methods:
        out += [f"**{m}**, {stage}: Kendall tau / regret (pp)", "",
                "| proxy | " + " | ".join(settings) + " |", "| --- |" + " --- |" * len(settings)]
        for p in proxies:
            cells = []
            for s in settings:
                r = next((r for r in rows if (r["method"], r["setting"], r["proxy"]) == (m, s, p)), None)
                cells.append("-" if r is None else f"{fmt(r.get(f'{stage}_tau'))} / {fmt(r.get(f'{stage}_regret'))}")
            star = " *" if any(r["selects"] for r in rows if r["proxy"] == p) else ""
            out.append(f"| {p}{star} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def write(exp_dir: Path) -> list[dict]:
    """Compute and write ``fidelity.json`` and ``fidelity.md`` of an experiment folder."""
    exp_dir = Path(exp_dir)
    man = read_manifest(exp_dir)
    space = man.get("space") or {}
    selecting = space.get("proxy", "noisy_val")
    rows = experiment_fidelity(exp_dir, man.get("methods") or [], man.get("settings") or [], selecting)
    atomic_write(exp_dir / "fidelity.json", json.dumps(rows, indent=1, default=float) + "\n")
    atomic_write(exp_dir / "fidelity.md", markdown(rows, experiment_title(exp_dir, man)))
    return rows


def main(argv=None, prog: str = "python -m tune_lnl.fidelity") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("experiment", help="experiment folder (<storage>/<name>)")
    p.add_argument("--pivot", action="store_true", help="also print proxy x setting tables per method")
    args = p.parse_args(argv)
    exp = Path(args.experiment)
    if not (exp / "experiment.yaml").exists():
        print(f"error: {exp.resolve()}: not an experiment folder (no experiment.yaml)", file=sys.stderr)
        return 2
    try:
        rows = write(exp)
    except TuneLNLError as exc:  # e.g. a damaged experiment.yaml or result.json (CorruptFileError)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print((exp / "fidelity.md").read_text())
    if args.pivot:
        print(pivot_markdown(rows, "search") + "\n" + pivot_markdown(rows, "finals"))
    return 0
