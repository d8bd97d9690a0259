"""One table and one figure pooled from several committed experiments of the same setup (issue 30: every
method on real FashionMNIST, searched on a CPU), from their ``docs/results/<experiment>/finals.csv``.

    python docs/pooled_comparison.py docs/results/robust_fashionmnist_cpu-peer docs/results/robust_fashionmnist_cpu \\
        docs/results/baselines_fashionmnist_cpu docs/results/semi_fashionmnist_cpu \\
        --figure docs/figures/fashionmnist_all_methods.png

Where two folders hold the same method, the first one named wins (a rerun named before its original). The
experiments must share their setup: the script refuses folders whose ``experiment.yaml`` differ in dataset,
settings (noise), proxy, validation share, noise seed, backbone, epochs, batch size or augmentation.

Prints a Markdown table: per method and setting the test accuracy (%) at the epoch the proxy picks ("best")
and the mean of the last epochs ("last"), mean ± std over the final seeds, and the rank of "best" per setting
(1 = highest), the methods sorted by their summed rank. The figure: one panel per setting, "best" with the seeds'
standard deviation, sorted, coloured by experiment. Test accuracy never selects anything here: each number is of
the configuration the proxy chose.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reproduction_tables import experiment_space, finals  # noqa: E402  (this folder)

from tune_lnl.results.runs import mean_std  # noqa: E402

#: what the pooled experiments must agree on (experiment.yaml keys; ``fixed`` entries by name)
SAME = ("dataset", "proxy", "val_fraction", "noise_seed", "settings")
SAME_FIXED = ("model", "epochs", "batch_size", "augment")


def setup_of(folder: Path) -> dict:
    space = experiment_space(folder)
    fixed = space.get("fixed") or {}
    settings = {k: (v or {}).get("noise") for k, v in (space.get("settings") or {}).items()}
    return {**{k: space.get(k) for k in SAME if k != "settings"}, "settings": settings,
            **{f"fixed.{k}": fixed.get(k) for k in SAME_FIXED}}


def pool(folders: list[Path]) -> tuple[dict[tuple[str, str], list[dict]], dict[str, Path], list[str]]:
    """``{(method, setting): final rows}``, the folder each method came from, the settings in order."""
    first = setup_of(folders[0])
    rows: dict[tuple[str, str], list[dict]] = {}
    source: dict[str, Path] = {}
    for folder in folders:
        setup = setup_of(folder)
        diff = {k: (first[k], setup[k]) for k in first if first[k] != setup[k]}
        if diff:
            raise SystemExit(f"{folder}: not the setup of {folders[0]}: {diff}")
        for (method, setting), r in finals(folder).items():
            if source.setdefault(method, folder) == folder:
                rows[(method, setting)] = r
    return rows, source, list(first["settings"])


def ranks(rows, methods: list[str], setting: str) -> dict[str, int]:
    means = {m: mean_std([float(r["best"]) for r in rows[(m, setting)]])[0] for m in methods if (m, setting) in rows}
    order = sorted(means, key=lambda m: -means[m])
    return {m: order.index(m) + 1 for m in order}


def table(rows, source, settings: list[str]) -> tuple[str, list[str]]:
    methods = sorted(source)
    rank = {s: ranks(rows, methods, s) for s in settings}
    methods.sort(key=lambda m: sum(rank[s].get(m, len(methods)) for s in settings))
    head = ["method", *[f"{s} {k}" for s in settings for k in ("best", "last", "rank")], "experiment"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in methods:
        cells = [f"`{m}`"]
        for s in settings:
            r = rows.get((m, s), [])
            for key in ("best", "last"):
                mu, sd = mean_std([100 * float(x[key]) for x in r]) if r else (float("nan"), 0.0)
                cells.append(f"{mu:.2f} ± {sd:.2f}" if r else "-")
            cells.append(str(rank[s].get(m, "-")))
        cells.append(source[m].name)
        out.append("| " + " | ".join(cells) + " |")
    seeds = sorted({len(r) for r in rows.values()})
    out.append("")
    out.append(f"{len(methods)} methods; {'/'.join(map(str, seeds))} final seeds per cell; test accuracy (%) of "
               "the configuration and epoch the proxy selected.")
    return "\n".join(out), methods


def figure(rows, source: dict[str, Path], settings: list[str], path: Path) -> None:
    """One panel per setting: each method's "best" (mean, and the seeds' standard deviation as an error
    bar) as a horizontal bar, sorted within the panel, coloured by the experiment it came from."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folders = list(dict.fromkeys(p.name for p in source.values()))
    colours = {name: f"C{i}" for i, name in enumerate(folders)}
    methods = sorted(source)
    fig, axes = plt.subplots(1, len(settings), figsize=(5.2 * len(settings), 0.26 * len(methods) + 1.6))
    for ax, s in zip(list(axes) if len(settings) > 1 else [axes], settings):
        stats = {m: mean_std([100 * float(x["best"]) for x in rows[(m, s)]]) for m in methods if (m, s) in rows}
        order = sorted(stats, key=lambda m: stats[m][0])
        ax.barh(range(len(order)), [stats[m][0] for m in order], xerr=[stats[m][1] for m in order],
                color=[colours[source[m].name] for m in order], capsize=2)
        ax.set_yticks(range(len(order)), order)
        lows = [stats[m][0] - stats[m][1] for m in order]
        ax.set_xlim(max(0.0, min(lows) - 2.0), min(100.0, max(mu + sd for mu, sd in stats.values()) + 1.0))
        ax.set_title(f"{s}: test accuracy (%) at the proxy's epoch")
        ax.grid(axis="x", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[f]) for f in folders]
    fig.legend(handles, folders, loc="lower center", ncol=len(folders), title="experiment")
    fig.suptitle("Every method, searched and retrained; selected by the noisy validation split (mean ± std of seeds)")
    fig.tight_layout(rect=(0, 0.07, 1, 0.96))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", type=Path, nargs="+", help="docs/results/<experiment> folders, a rerun first")
    p.add_argument("--figure", type=Path, help="write the bar chart here (PNG)")
    args = p.parse_args(argv)
    rows, source, settings = pool(args.folders)
    text, methods = table(rows, source, settings)
    print(text)
    if args.figure:
        figure(rows, source, settings, args.figure)


if __name__ == "__main__":
    main()
