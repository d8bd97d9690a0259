"""Realised noise rates of every noise setting of the given space files, on the data under
``--data-root`` (what each run of those settings trains on, drawn exactly as the runs draw it),
or of noise settings given on the command line for one dataset.

    python benchmarks/noise_rates.py --data-root DIR search_spaces/compare_fashionmnist.yaml ...
    python benchmarks/noise_rates.py --data-root DIR --dataset mnist --noise asymmetric=0.4 instance=0.4

Prints one markdown table: file, dataset, setting, noise, the nominal rate, the realised rate over
the whole training set, the training split's, the seconds the draw took (the instance-dependent
draw is the costly one). Never imports Ray.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tune_lnl.config import load_experiment  # noqa: E402
from tune_lnl.data import load_noisy_data, resolve_data_root  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spaces", nargs="*", help="search-space files")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--dataset", help="with --noise: a dataset name instead of space files")
    ap.add_argument("--noise", nargs="+", default=[], metavar="TYPE=RATE", help="e.g. asymmetric=0.4 instance=0.4")
    ap.add_argument("--noise-seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not args.spaces and not (args.dataset and args.noise):
        ap.error("give space files, or --dataset with --noise")
    root = resolve_data_root(args.data_root)
    print(f"command: python {' '.join(sys.argv)}\n")
    print("| file | dataset | setting | noise | nominal rate | realised (all training images) "
          "| realised (training split) | draw time (s) |")
    print("|---|---|---|---|---|---|---|---|")
    runs = []
    for path in args.spaces:
        space = load_experiment(path).first
        runs += [(Path(path).name, name, space.paper_config(name, str(root))) for name in space.settings]
    for spec in args.noise:
        kind, _, rate = spec.partition("=")
        runs.append(("(command line)", spec, {
            "dataset": args.dataset, "dataset_options": {}, "data_root": str(root), "noise_type": kind,
            "noise_rate": float(rate or 0), "noise_options": {}, "noise_seed": args.noise_seed, "proxy": "noisy_val",
            "val_fraction": 0.1, "clean_val_size": 0, "train_subset": 0, "test_subset": 0}))
    fmt = lambda v: "unknown" if v is None else f"{v:.4f}"  # noqa: E731
    for label, name, cfg in runs:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = load_noisy_data(cfg)
        dt = time.perf_counter() - t0
        noise = cfg["noise_type"] + "".join(f" {k}={v}" for k, v in cfg["noise_options"].items() if k != "matrix")
        info = data.info
        print(f"| {label} | {cfg['dataset']} | {name} | {noise} | {cfg['noise_rate']:g} | "
              f"{fmt(info['noise_rate_realised'])} | {fmt(info['noise_rate_realised_train'])} | {dt:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
