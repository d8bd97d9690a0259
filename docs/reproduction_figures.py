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
The runs' ``result.json`` files are read from the experiment folders (not committed: too large)."""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reproduction_tables import describe, experiment_space, finals  # noqa: E402  (this folder)
from tune_lnl.results.report import fig_analytics, fig_box, fig_final_curves  # noqa: E402
from tune_lnl.results.runs import read_history  # noqa: E402


def collect(folders: list[Path]) -> dict[tuple[str, str], dict[str, list[list[dict]]]]:
    """(method, setting) -> label -> the histories of the seeds in ``finals.csv``, by seed."""
    out: dict = defaultdict(lambda: defaultdict(list))
    for folder in folders:
        space = experiment_space(folder)
        for (method, setting), rows in finals(folder).items():
            for r in sorted(rows, key=lambda x: int(x["seed"])):
                history = read_history(folder / "finals" / method / setting / f"seed_{r['seed']}")
                out[(method, setting)][f"{method} {describe(space, setting)}"].append(history)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", type=Path, nargs="+", help="experiment folders (results/<name>)")
    p.add_argument("--out", type=Path, default=Path("docs/figures/reproduction"))
    p.add_argument("--last-k", type=int, default=10)
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    for (method, setting), per_label in sorted(collect(a.folders).items()):
        title = f"{method}, MNIST {setting}, 320 epochs, seeds per box: {' / '.join(str(len(v)) for v in per_label.values())}"
        for kind, fig in (("box", lambda path: fig_box(per_label, a.last_k, title, path)),
                          ("curves", lambda path: fig_final_curves(per_label, title, path)),
                          ("analytics", lambda path: fig_analytics(per_label, title, path))):
            made = fig(a.out / f"full_{kind}_{method}_{setting}.png")
            if made:
                print(made)


if __name__ == "__main__":
    main()
