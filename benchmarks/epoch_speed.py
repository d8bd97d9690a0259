"""Epoch-speed benchmark: one MNIST MLC epoch per stage vs. a bare two-MLP training floor.

Measured in ONE process, on the same in-memory data and machine, batch size 128:

* ``MLC stage 1/2/3``: ``method.train_epoch()`` of :class:`trainables.mlc.MLC` built from
  ``search_spaces/mlc_mnist.yaml``'s paper config (``sym-0.2`` by default), device cpu, with
  ``method.epoch`` set to an index inside each stage (default 0, 30, 140);
* ``MLC evaluate``: ``method.evaluate()`` (test + noisy-val accuracy of both networks);
* ``floor``: a bare loop over the SAME training tensors (uint8 -> float/255 per batch, index
  slices of a permutation) training two 784-256-10 MLPs with plain cross-entropy and Adam,
  same batch size, no augmentation, no selection, no co-regularization, no label update.

Each figure is the median over ``--repeats`` epochs (after ``--warmup`` untimed epochs).
``--threads 1 2`` measures several torch intra-op thread counts in the same process (Ray gives
each CPU trial one thread, ``cpus_per_trial: 1``).

    /work/venv/bin/python benchmarks/epoch_speed.py --data-root /work/shared/data --threads 1 2 \
        --out benchmarks/results.md
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from trainables.mlc import MLC  # noqa: E402
from tune_lnl.config import load_space  # noqa: E402
from tune_lnl.label_table import stage_of  # noqa: E402
from tune_lnl.method import make_optimizer  # noqa: E402
from tune_lnl.models import MLP  # noqa: E402


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def median_time(fn, repeats: int, warmup: int) -> tuple[float, list[float]]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


class Floor:
    """Two MLPs, plain CE + Adam, over the method's own device-resident training tensors."""

    def __init__(self, train_x: torch.Tensor, train_y: torch.Tensor, batch_size: int, seed: int = 0):
        self.x, self.y, self.bs = train_x, train_y, batch_size
        torch.manual_seed(seed)
        n_in = 1
        for s in train_x.shape[1:]:
            n_in *= s
        self.nets = [MLP(n_in, 256, 10).to(train_x.device) for _ in range(2)]
        self.opts = [make_optimizer(n.parameters(), {"lr": 1e-3}) for n in self.nets]  # the methods' (fused) Adam
        self.gen = torch.Generator(device=train_x.device).manual_seed(seed)

    def epoch(self) -> None:
        n = self.x.shape[0]
        perm = torch.randperm(n, generator=self.gen, device=self.x.device)
        for net in self.nets:
            net.train()
        for start in range(0, n, self.bs):
            idx = perm[start:start + self.bs]
            if idx.numel() < 2:
                continue
            xb = self.x[idx].float().div_(255.0)
            yb = self.y[idx]
            for net, opt in zip(self.nets, self.opts):
                loss = F.cross_entropy(net(xb), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()


def build_method(space: str, setting: str, data_root: str, batch_size: int) -> MLC:
    cfg = load_space(ROOT / space).paper_config(setting, data_root)
    cfg.update(device="cpu", batch_size=batch_size)
    return MLC(cfg)


def run(args) -> str:
    t_load = time.perf_counter()
    method = build_method(args.space, args.setting, args.data_root, args.batch_size)
    t_load = time.perf_counter() - t_load
    d = method.data
    floor = Floor(d.train_x, d.train_noisy, args.batch_size)
    stage_epochs = args.stage_epochs
    thread_list = args.threads or [torch.get_num_threads()]

    lines = [
        "# Epoch speed: MLC (MNIST) vs. bare two-MLP floor",
        "",
        f"- CPU: {cpu_model()} ({os.cpu_count()} logical cores visible)",
        f"- torch {torch.__version__}, python {platform.python_version()}, "
        f"interop threads {torch.get_num_interop_threads()}",
        f"- config: {args.space} / {args.setting} (variant {method.cfg['variant']}, "
        f"augment {method.cfg['augment']}), device cpu, batch size {args.batch_size}",
        f"- data: {d.n_train} training images ({-(-d.n_train // args.batch_size)} batches/epoch), "
        f"{d.val_x.shape[0]} noisy-val, {d.test_x.shape[0]} test; setup (load + build) {t_load:.1f} s",
        f"- median of {args.repeats} epochs after {args.warmup} warm-up epoch(s) per cell; "
        f"MLC epochs timed at epoch index {stage_epochs} (stages 1/2/3)",
        "",
        "| threads | floor s/epoch | MLC stage 1 s/epoch (x floor) | MLC stage 2 s/epoch (x floor) "
        "| MLC stage 3 s/epoch (x floor) | MLC evaluate s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    print("\n".join(lines[:7]), flush=True)
    for n_threads in thread_list:
        torch.set_num_threads(n_threads)
        floor_s, raw = median_time(floor.epoch, args.repeats, args.warmup)
        print(f"[threads={n_threads}] floor {floor_s:.3f} s  raw {['%.3f' % t for t in raw]}", flush=True)
        cells = []
        for stage, e in zip((1, 2, 3), stage_epochs):
            if stage_of(e, method.cfg) != stage:
                raise SystemExit(f"epoch index {e} is not in stage {stage}")

            def one_epoch(e=e):
                method.epoch = e
                method.train_epoch()

            s, raw = median_time(one_epoch, args.repeats, args.warmup)
            cells.append(f"{s:.3f} ({s / floor_s:.2f}x)")
            print(f"[threads={n_threads}] MLC stage {stage} (epoch {e}) {s:.3f} s = {s / floor_s:.2f}x floor"
                  f"  raw {['%.3f' % t for t in raw]}", flush=True)
        ev, raw = median_time(method.evaluate, args.repeats, 1)
        print(f"[threads={n_threads}] MLC evaluate {ev:.3f} s  raw {['%.3f' % t for t in raw]}", flush=True)
        lines.append(f"| {n_threads} | {floor_s:.3f} | " + " | ".join(cells) + f" | {ev:.3f} |")
    table = "\n".join(lines) + "\n"
    return table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", default=os.environ.get("TUNE_LNL_DATA", "/work/shared/data"))
    p.add_argument("--space", default="search_spaces/mlc_mnist.yaml", help="relative to the project root")
    p.add_argument("--setting", default="sym-0.2")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3, help="timed epochs per cell (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed epochs before each cell")
    p.add_argument("--threads", type=int, nargs="*", default=None,
                   help="torch intra-op thread counts to measure, e.g. '--threads 1 2' "
                        "(default: torch's default only)")
    p.add_argument("--stage-epochs", type=int, nargs=3, default=[0, 30, 140], metavar=("E1", "E2", "E3"),
                   help="epoch index (0-based) used for stage 1, 2 and 3")
    p.add_argument("--out", default=None, help="also write the markdown table to this file")
    args = p.parse_args(argv)
    table = run(args)
    print()
    print(table, end="")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
