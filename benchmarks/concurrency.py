"""Every study at once vs one study at a time: the same experiment run both ways, measured.

    python benchmarks/concurrency.py --space search_spaces/compare_mnist.yaml --smoke \
        --backend optuna --workers 2 --data-root ../shared/data --out /tmp/concurrency_smoke.json

For each way (the default schedule, then ``--one-study-at-a-time``) it runs
``python -m tune_lnl.search`` into a fresh folder and reads, from the runs' own ``result.json``
lines (every epoch's ``end_time`` and ``epoch_time``):

* wall time of the whole experiment (process start to exit: searches, finals, report);
* trial-epochs per second: epochs of every run (search trials and final seeds) / wall time;
* slot utilisation: the share of the ``slots x wall`` slot-seconds in which a run was training,
  a run spanning from its first epoch's start to its last epoch's end (process start-up and data
  loading count as idle: that is the time a schedule must hide);
* every run's (method, part, epochs, seconds), which ``benchmarks/simulate_cluster.py`` draws
  trial durations from.

Nothing else should run on the machine meanwhile. Prints a markdown table; ``--out`` keeps the
JSON (the table, the runs).
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

WAYS = {"at once": [], "one at a time": ["--one-study-at-a-time"]}


def runs_of(exp: Path) -> list[dict]:
    """One record per run folder: method, part (search/finals), epochs and its span."""
    out = []
    for f in sorted(exp.glob("*/*/*/*/result.json")):
        rows = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        if not rows or "end_time" not in rows[0]:
            continue
        part, method = f.parts[-5], f.parts[-4]
        start, end = rows[0]["end_time"] - rows[0]["epoch_time"], rows[-1]["end_time"]
        out.append({"method": method, "setting": f.parts[-3], "part": part, "epochs": len(rows),
                    "start": start, "end": end, "seconds": end - start,
                    "epoch_s": sum(r["epoch_time"] for r in rows) / len(rows)})
    return out


def measure(cmd: list[str], storage: Path, slots: int) -> dict:
    t0 = time.time()
    proc = subprocess.run(cmd + ["--storage-path", str(storage)], capture_output=True, text=True)
    t1 = time.time()
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    (exp,) = [p for p in storage.iterdir() if p.is_dir()]
    runs = runs_of(exp)
    wall = t1 - t0
    busy = sum(r["seconds"] for r in runs)
    epochs = sum(r["epochs"] for r in runs)
    return {"wall_s": round(wall, 1), "trial_epochs": epochs, "trial_epochs_per_s": round(epochs / wall, 3),
            "utilisation": round(busy / (slots * wall), 3), "runs": len(runs),
            "search_runs": sum(r["part"] == "search" for r in runs),
            "first_final_start_s": round(min((r["start"] for r in runs if r["part"] == "finals"), default=t1) - t0, 1),
            "last_search_end_s": round(max((r["end"] for r in runs if r["part"] == "search"), default=t0) - t0, 1),
            "run_records": [{k: v for k, v in r.items() if k not in ("start", "end")} for r in runs]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--space", required=True)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--backend", default="optuna", choices=("optuna", "ray"))
    ap.add_argument("--workers", type=int, default=os.cpu_count(), help="slots (--backend optuna's workers)")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                    help="more options for tune_lnl.search (e.g. --num-samples 8 --methods ce mlc)")
    ap.add_argument("--out", help="write the figures and the runs as JSON here")
    a = ap.parse_args(argv)
    base = [sys.executable, "-m", "tune_lnl.search", "--space", a.space, "--data-root", a.data_root,
            "--backend", a.backend] + (["--workers", str(a.workers)] if a.backend == "optuna" else []) \
        + (["--smoke"] if a.smoke else []) + a.extra
    results = {}
    for way, flag in WAYS.items():
        with tempfile.TemporaryDirectory(prefix="concurrency-") as tmp:
            print(f"running {way}: {' '.join(base + flag)}", flush=True)
            results[way] = measure(base + flag, Path(tmp), a.workers)
    print(f"\n{a.workers} slots; command: {' '.join(base[1:])}\n")
    print("| schedule | wall s | trial-epochs | trial-epochs/s | slot utilisation | first final starts at s | "
          "last search trial ends at s |\n|---|---:|---:|---:|---:|---:|---:|")
    for way, r in results.items():
        print(f"| {way} | {r['wall_s']} | {r['trial_epochs']} | {r['trial_epochs_per_s']} | {r['utilisation']:.1%} | "
              f"{r['first_final_start_s']} | {r['last_search_end_s']} |")
    if a.out:
        Path(a.out).write_text(json.dumps({"command": base[1:], "slots": a.workers, "results": results}, indent=1))


if __name__ == "__main__":
    main()
