"""Packing trials on one device: aggregate MNIST MLC epochs per second of k concurrent trials.

For each k of ``--trials`` (default 1 8), k processes (``spawn``, as the Optuna backend's
workers) each build MLC from ``search_spaces/mlc_mnist.yaml``'s paper config (``--setting``,
full MNIST, batch 128) on ``--device``, train one untimed warm-up epoch, wait at a barrier, then
train ``--epochs`` epochs. Aggregate throughput = k * epochs / (wall time from the barrier to
the last process done). The table gives it for each k and relative to k = 1 (target on a GPU:
eight packed trials >= 5x one trial alone), with each process's peak GPU memory.

    python benchmarks/gpu_packing.py --device cuda --trials 1 8 --epochs 3 --data-root DATA
    python benchmarks/gpu_packing.py --device cpu --trials 1 2 --epochs 2   # sanity check on a CPU box

Options ``--amp bf16``, ``--channels-last``, ``--compile`` pass the run-config speed switches.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _worker(rank: int, cfg: dict, epochs: int, threads: int, barrier, queue) -> None:
    import torch
    torch.set_num_threads(threads)
    from tune_lnl.methods import method_class
    method = method_class(cfg["method"])(cfg)
    with method.autocast():  # the run's amp (Method.step applies it the same way)
        method.train_epoch()  # warm-up (CUDA context, allocator, kernels, compilation)
    method.epoch += 1
    if method.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    barrier.wait()
    t0 = time.time()
    for _ in range(epochs):
        with method.autocast():
            method.train_epoch()
        method.epoch += 1
    if method.device.type == "cuda":
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**20 if method.device.type == "cuda" else float("nan")
    queue.put((rank, t0, time.time(), peak))


def measure(k: int, cfg: dict, epochs: int, threads: int) -> dict:
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(k), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, cfg, epochs, threads, barrier, queue)) for r in range(k)]
    for p in procs:
        p.start()
    out = [queue.get() for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"a worker failed (exit code {p.exitcode})")
    start, end = min(o[1] for o in out), max(o[2] for o in out)
    return {"k": k, "wall": end - start, "epochs_per_s": k * epochs / (end - start),
            "peak_gpu_mib": max(o[3] for o in out)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--trials", type=int, nargs="+", default=[1, 8])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--setting", default="sym-0.2")
    p.add_argument("--space", default="search_spaces/mlc_mnist.yaml")
    p.add_argument("--data-root", default=os.environ.get("TUNE_LNL_DATA", str(ROOT.parent / "shared" / "data")))
    p.add_argument("--amp", default="none", choices=["none", "bf16"])
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true")
    args = p.parse_args(argv)
    import torch

    from tune_lnl.config import load_space
    cfg = load_space(ROOT / args.space).paper_config(args.setting, args.data_root)
    cfg.update(device=args.device, amp=args.amp, channels_last=args.channels_last, compile=args.compile)
    rows = [measure(k, cfg, args.epochs, args.threads) for k in args.trials]
    base = rows[0]["epochs_per_s"]
    dev = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"CPU ({os.cpu_count()} cores)"
    lines = [f"MLC MNIST packing on {dev}, torch {torch.__version__}, {args.epochs} timed epochs per trial, "
             f"amp {args.amp}, channels_last {args.channels_last}, compile {args.compile}", "",
             f"| concurrent trials | wall s | aggregate epochs/s | vs {rows[0]['k']} trial(s) | s per epoch per trial "
             f"| peak GPU MiB per trial |", "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['k']} | {r['wall']:.2f} | {r['epochs_per_s']:.3f} | {r['epochs_per_s'] / base:.2f}x | "
                     f"{r['k'] / r['epochs_per_s']:.3f} | {r['peak_gpu_mib']:.0f} |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
