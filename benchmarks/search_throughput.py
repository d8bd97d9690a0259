"""Search throughput: trial-epochs per second of a whole search, and what pruning saved.

Runs ``python -m tune_lnl.search`` on a search-space file for each ``--backend`` and each
``--budget`` and reads the ``search_stats.json`` every search writes (trial-epochs run, from the
trials' ``result.json``; wall time of the search; the share of ``trials x epochs`` that ASHA /
successive halving did not have to run). Budgets:

* ``smoke``: the file's own ``smoke:`` block (``--smoke``);
* ``medium``: the same block with ``--medium-images`` training images (default 20000), every
  epoch-like key of ``smoke.fixed`` (``epochs``, ``stage1``, ``stage2``, ``num_gradual``,
  ``init_epoch``) multiplied by ``--scale`` (default 2), ``--medium-trials`` trials (default 8)
  and grace period ``--medium-grace`` (default 3).

Finals run with ``--seeds 1`` (they are not what is measured). Example (the figures in
docs/benchmarks.md)::

    python benchmarks/search_throughput.py --space search_spaces/mlc_mnist.yaml --settings sym-0.2 \\
        --backends ray optuna --budgets smoke medium --data-root ../shared/data --out /tmp/throughput.md
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
EPOCH_KEYS = ("epochs", "stage1", "stage2", "num_gradual", "init_epoch")


def medium_space(src: Path, dst: Path, images: int, scale: int, trials: int, grace: int) -> Path:
    raw = yaml.safe_load(src.read_text())
    smoke = dict(raw.get("smoke") or {})
    fixed = dict(smoke.get("fixed") or {})
    for k in EPOCH_KEYS:
        if k in fixed:
            fixed[k] = int(fixed[k]) * scale
    smoke.update(train_subset=images, num_samples=trials, grace_period=grace, fixed=fixed)
    raw["smoke"] = smoke
    raw["name"] = f"{raw.get('name', src.stem)}-medium"
    dst.write_text(yaml.safe_dump(raw, sort_keys=False))
    return dst


def run(space: Path, backend: str, settings, data_root: str, storage: Path) -> tuple[float, list[dict], str]:
    cmd = [sys.executable, "-m", "tune_lnl.search", "--space", str(space), "--smoke", "--seeds", "1",
           "--backend", backend, "--data-root", data_root, "--storage-path", str(storage)]
    if settings:
        cmd += ["--settings", *settings]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    print("running:", " ".join(cmd), file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"search failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    stats = [json.loads(p.read_text()) | {"study": f"{p.parent.parent.name}/{p.parent.name}"}
             for p in sorted(storage.rglob("search_stats.json"))]
    return wall, stats, " ".join(cmd)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--space", default="search_spaces/mlc_mnist.yaml")
    p.add_argument("--settings", nargs="+", default=["sym-0.2"])
    p.add_argument("--backends", nargs="+", default=["ray", "optuna"], choices=["ray", "optuna"])
    p.add_argument("--budgets", nargs="+", default=["smoke", "medium"], choices=["smoke", "medium"])
    p.add_argument("--data-root", default=os.environ.get("TUNE_LNL_DATA", str(ROOT.parent / "shared" / "data")))
    p.add_argument("--medium-images", type=int, default=20000)
    p.add_argument("--medium-trials", type=int, default=8)
    p.add_argument("--medium-grace", type=int, default=3)
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--out", help="also write the markdown table here")
    args = p.parse_args(argv)
    space = (ROOT / args.space) if not Path(args.space).is_absolute() else Path(args.space)
    rows = []
    with tempfile.TemporaryDirectory(prefix="tune_lnl_throughput_") as tmp:
        tmp = Path(tmp)
        spaces = {"smoke": space, "medium": medium_space(space, tmp / f"{space.stem}-medium.yaml", args.medium_images,
                                                         args.scale, args.medium_trials, args.medium_grace)}
        for budget in args.budgets:
            for backend in args.backends:
                wall, stats, cmd = run(spaces[budget], backend, args.settings, args.data_root,
                                       tmp / f"{budget}-{backend}")
                for s in stats:
                    rows.append({"budget": budget, "backend": backend, "command_wall_s": wall, **s})
    lines = [f"Search throughput: `{args.space}`, settings {', '.join(args.settings)}, "
             f"{os.cpu_count()} CPUs; command: `python benchmarks/search_throughput.py "
             f"{' '.join(argv if argv is not None else sys.argv[1:])}`", "",
             "| budget | backend | study | trials (states) | epochs/trial | trial-epochs run | without pruning | "
             "pruning saved | search wall s | trial-epochs/s | whole command s (start-up, search, 1 final) |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        states = ", ".join(f"{v} {k}" for k, v in sorted(r["trial_states"].items()))
        lines.append(f"| {r['budget']} | {r['backend']} | {r['study']} | {r['trials']} ({states}) | "
                     f"{r['epochs_per_trial']} | {r['trial_epochs']} | {r['trial_epochs_without_pruning']} | "
                     f"{100 * r['pruning_saved']:.0f}% | {r['wall_s']:.1f} | {r['trial_epochs_per_s']:.2f} | "
                     f"{r['command_wall_s']:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
