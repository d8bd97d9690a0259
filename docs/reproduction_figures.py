"""The figures of docs/reproduction.md's full-budget sections (issue 16), drawn by the report's own
plotting functions from the final runs of several experiments, so that the variants of a method
share one figure per noise setting:

    python docs/reproduction_figures.py --out docs/figures/reproduction \\
        results/reproduce_mnist_mlc_320 \\
        results/reproduce_mnist_mlc_320_official results/reproduce_mnist_mlc_320_official-mild

Each run is labelled by its method and what tells its space file apart (``variant``, first-trial
``lambda``: ``reproduction_tables.describe``); folders of one space file are pooled. The runs are
those of each folder's ``finals.csv`` (finished, on either backend). Per setting it writes
``full_box_<method>_<setting>.png`` (test accuracy of the last ``last_k`` epochs of every seed),
``full_curves_<method>_<setting>.png`` (proxy and test accuracy, mean over seeds) and
``full_analytics_<method>_<setting>.png`` (label correction, selection precision, divergence).
The runs' ``result.json`` files are read from the experiment folders (not committed: too large).

``--compare-methods`` puts every method of the folders in one figure per setting instead
(``<prefix>_<kind>_<setting>.png``); ``--landscape docs/results/<name>`` draws every search trial of
one method (``--landscape-of imae T``: T against the proxy, from the committed ``trials.csv``):

    python docs/reproduction_figures.py --compare-methods --prefix imae_searched \
        --landscape docs/results/imae_compare_mnist results/imae_compare_mnist"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reproduction_tables import by_rate, describe, experiment_space, finals, trials  # noqa: E402  (this folder)

from tune_lnl.results.report import fig_analytics, fig_box, fig_final_curves  # noqa: E402
from tune_lnl.results.result import Result  # noqa: E402
from tune_lnl.results.runs import read_history  # noqa: E402


def collect(folders: list[Path], by_setting: bool = False) -> dict[tuple[str, ...], dict[str, list[list[dict]]]]:
    """(method, setting) -> label -> the histories of the seeds in ``finals.csv``, by seed; with
    ``by_setting``, (setting,) -> method -> histories (the methods of one experiment side by side)."""
    out: dict = defaultdict(lambda: defaultdict(list))
    for folder in folders:
        space, chosen = experiment_space(folder), Result.read(folder).best_configs
        for (method, setting), rows in finals(folder).items():
            trial = chosen[method][setting].get("optuna_trial")  # absent with --paper-only
            what = describe(space, setting) if trial is None else \
                f"searched: {space.get('proxy', 'proxy')} pick, trial {trial}, lambda {chosen[method][setting]['config']['lambda']:.4g}" \
                if "lambda" in chosen[method][setting]["config"] else f"searched: {space.get('proxy', 'proxy')} pick, trial {trial}"
            for r in sorted(rows, key=lambda x: int(x["seed"])):
                history = read_history(folder / "finals" / method / setting / f"seed_{r['seed']}")
                key, label = ((setting,), method) if by_setting else ((method, setting), f"{method} {what}")
                out[key][label].append(history)
    return out


def fig_landscape(docs_folder: Path, method: str, param: str, path: Path, colour: str = "lr") -> Path:
    """One panel per setting: every search trial of ``method`` (``trials.csv``), its ``param``
    against its proxy_best, coloured by ``colour`` (another parameter); the paper's point (trial 0) and the trial the study
    chose (``best_configs.yaml``) marked. Proxy only: what the search saw."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    tr = trials(docs_folder)
    proxy = experiment_space(docs_folder)["proxy"]
    chosen = Result.read(docs_folder).best_configs[method]
    settings = by_rate(s for m, s in tr if m == method)
    fig, axes = plt.subplots(1, len(settings), figsize=(4.2 * len(settings), 3.6), squeeze=False)
    for ax, s in zip(axes[0], settings):
        ts = [t for t in tr[(method, s)] if t["proxy_best"]]
        x = [t["params"][param] for t in ts]
        y = [100 * float(t["proxy_best"]) for t in ts]
        hue = [t["params"][colour] for t in ts]
        done = [t["state"] == "COMPLETE" for t in ts]
        sc = ax.scatter(x, y, c=hue, cmap="viridis", norm=matplotlib.colors.LogNorm() if min(hue) > 0 else None, s=[36 if d else 14 for d in done],
                        edgecolors=["k" if d else "none" for d in done])
        p0 = next(t for t in ts if t["trial"] == "0")
        ax.scatter([p0["params"][param]], [100 * float(p0["proxy_best"])], marker="x", c="C3", s=60, label="paper (trial 0)")
        c = chosen[s]
        ax.scatter([c["config"][param]], [100 * c["proxy_best"]], marker="*", c="C1", s=140, label="chosen by the proxy")
        spec = {**experiment_space(docs_folder).get("space", {}),
                **experiment_space(docs_folder)["settings"][s].get("space", {})}.get(param, {})
        ax.set(xscale="log" if spec.get("log") else "linear", xlabel=param, ylabel=f"proxy_best % ({proxy})", title=f"{method}, {s}")
        ax.legend(fontsize=7, loc="lower left")
    fig.subplots_adjust(wspace=0.35)
    fig.colorbar(sc, ax=axes[0].tolist(), label=colour)
    fig.suptitle(f"{method}: every search trial (large, outlined: ran all epochs; small: pruned)", fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", type=Path, nargs="+", help="experiment folders (results/<name>)")
    p.add_argument("--out", type=Path, default=Path("docs/figures/reproduction"))
    p.add_argument("--last-k", type=int, default=10)
    p.add_argument("--compare-methods", action="store_true",
                   help="one figure per setting with every method of the folders (files <prefix>_<kind>_<setting>.png)")
    p.add_argument("--prefix", default="full")
    p.add_argument("--landscape", type=Path, metavar="DOCS_RESULTS",
                   help="docs/results/<name> folder with trials.csv: <prefix>_landscape_<method>_<param>.png")
    p.add_argument("--landscape-of", nargs=2, default=["imae", "T"], metavar=("METHOD", "PARAM"))
    p.add_argument("--landscape-colour", default="lr", metavar="PARAM", help="the parameter that colours the points")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    epochs = {experiment_space(f).get("fixed", {}).get("epochs") for f in a.folders}
    for key, per_label in sorted(collect(a.folders, a.compare_methods).items()):
        what = ", ".join(key[:-1] + (f"MNIST {key[-1]}",))
        title = f"{what}, {'/'.join(str(e) for e in sorted(epochs, key=str))} epochs, seeds per box: " \
                f"{' / '.join(str(len(v)) for v in per_label.values())}"
        for kind, fig in (("box", lambda path: fig_box(per_label, a.last_k, title, path)),  # noqa: B023 (called now)
                          ("curves", lambda path: fig_final_curves(per_label, title, path)),  # noqa: B023
                          ("analytics", lambda path: fig_analytics(per_label, title, path))):  # noqa: B023
            made = fig(a.out / f"{a.prefix}_{kind}_{'_'.join(key)}.png")
            if made:
                print(made)
    if a.landscape:
        print(fig_landscape(a.landscape, *a.landscape_of, a.out / f"{a.prefix}_landscape_{'_'.join(a.landscape_of)}.png",
                            a.landscape_colour))


if __name__ == "__main__":
    main()
