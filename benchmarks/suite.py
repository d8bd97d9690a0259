"""Benchmark suite: every method's epoch time against a bare training floor and against the
per-sample PIL + DataLoader pipeline of the authors' reference code, on MNIST and CIFAR-10.

Run by hand (never part of pytest). For each (workload, method) the suite starts a FRESH
subprocess of itself (``--one METHOD WORKLOAD``), so the peak RSS of a row is that method's
own; each subprocess builds the method once and measures, on the same in-memory data, same
machine, same batch size:

* ``ours``: ``method.train_epoch()`` as the method runs in a search (device-resident uint8
  tensors, index slices of one permutation, on-device augmentation when the paper config has
  ``augment: true``); ``evaluate``: ``method.evaluate()`` timed separately;
* ``floor``: a bare loop over the method's own training tensors (uint8 -> ``float()/255`` per
  batch, index slices of ``randperm``s) doing only forward / cross-entropy / backward / step of
  as many images, and forward without gradients of as many more, as the method's epoch sends
  through its networks (counted by :class:`PassCounter` on an untimed epoch: every view, guess,
  mixed batch and scoring pass of the semi-supervised methods; one CE pass per image and network
  for the plain ones), through one network built with ``tune_lnl.models.build_model`` and
  ``tune_lnl.methods.base.make_optimizer`` from the method's run config; no augmentation, no
  selection, no label table;
* ``usual``: the SAME ``train_epoch()`` (the method's own per-batch math), fed like the
  reference code feeds it: a torchvision-style Dataset of PIL-convertible uint8 arrays applying
  per-sample PIL transforms in ``__getitem__`` (MNIST: ``RandomPerspective(0.5, p=0.5)``,
  ``ColorJitter(0.2, 0.75, 0.25, 0.04)``, ``ToTensor()``; CIFAR-10: ``RandomCrop(32, padding=4)``,
  ``RandomHorizontalFlip()``, ``ToTensor()``; just ``ToTensor()`` when the config's augment is
  off), through a shuffling ``torch.utils.data.DataLoader`` with ``--workers`` worker processes
  (``persistent_workers=False``: worker start-up is part of every epoch, as in the reference
  code). It replaces ``method.train_batches`` for those epochs and yields exactly the method's
  training samples and noisy labels under the method's own dataset indices (checked after
  every usual epoch, see ``check_usual_epoch``).

Workloads:

* ``mnist``: real MNIST (``--data-root``), ``search_spaces/<method>_mnist.yaml``'s paper config
  (``model: mlp``), optionally capped by ``--mnist-images`` (the run config's ``train_subset``:
  a seeded subset of the 60,000-image training pool, before the 10% noisy-val hold-out);
* ``cifar10``: CIFAR-10 is not on these machines, so a STAND-IN of the real shape: ``--cifar-images``
  seeded random uint8 images ``[N, 3, 32, 32]`` with seeded random clean labels 0..9, corrupted
  with the setting's noise (``tune_lnl.data.make_noisy_data``, as real data gets it:
  ``noise_seed`` of the file) and split into training / noisy-val exactly as for real data
  (``tune_lnl.data.stratified_holdout``), plus ``round(N / 5)`` random test images (real
  CIFAR-10: 10,000 test per 50,000 training); ``search_spaces/<method>_cifar10.yaml``'s paper
  config (``cnn6``; IMAE's file uses ``resnet20``; ``--cifar-model`` forces one).

Where fewer images than the full training pool (60,000 MNIST / 50,000 CIFAR-10) are measured,
the table shows figures extrapolated to the full pool (linear in images; for ``usual`` the time
to the first batch -- worker start-up -- is counted once, not scaled) and says so; the measured
seconds are kept in the JSON rows (``--json FILE``).

    /work/venv/bin/python benchmarks/suite.py --data-root /work/shared/data --cifar-images 1280 \\
        --out docs/benchmarks.md
    /work/venv/bin/python benchmarks/suite.py --quick                # fast sanity check
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from tune_lnl.methods import METHOD_NAMES  # noqa: E402

WORKLOADS = ("mnist", "cifar10")
#: the full training pool of each workload (before the noisy-val hold-out)
FULL_POOL = {"mnist": 60000, "cifar10": 50000}
#: real CIFAR-10 has 10,000 test images per 50,000 training images
CIFAR_TEST_PER_TRAIN = 10000 / 50000
QUICK = {"mnist_images": 2048, "cifar_images": 256, "repeats": 1, "warmup": 0}
DEFAULTS = {"mnist_images": 0, "cifar_images": 50000, "repeats": 2, "warmup": 1}
#: targets (CPU, MNIST MLP): ours/floor of MLC and of every method, usual/ours
TARGET_MLC, TARGET_ANY, TARGET_USUAL = 1.3, 1.5, 10.0
ROW_TAG = "SUITE_ROW "


# -- small helpers --------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def peak_rss_mib() -> float:
    """Process-wide high-water mark of the resident set (Linux: ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_interleaved(fns: dict, repeats: int, warmup: int, device: torch.device) -> dict:
    """Median wall time of each of ``fns`` (name -> callable) over ``repeats`` rounds, the
    callables taking turns within a round (first-to-last in even rounds, last-to-first in odd
    ones) after ``warmup`` untimed rounds: this machine's speed drifts by tens of percent over
    minutes, and a ratio of two cells measured minutes apart carries that drift whole."""
    names = list(fns)
    for i in range(warmup):
        for name in names:
            fns[name]()
            sync(device)
        log(f"    warm-up {i + 1}/{warmup} done ({', '.join(names)})")
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(repeats):
        for name in (names if i % 2 == 0 else names[::-1]):
            sync(device)
            t0 = time.perf_counter()
            fns[name]()
            sync(device)
            times[name].append(time.perf_counter() - t0)
        log(f"    round {i + 1}/{repeats}: " + ", ".join(f"{n} {times[n][-1]:.3f} s" for n in names))
    return {name: (statistics.median(t), t) for name, t in times.items()}


def timed(fn, repeats: int, warmup: int, device: torch.device, what: str) -> tuple[float, list[float]]:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` untimed ones."""
    return timed_interleaved({what: fn}, repeats, warmup, device)[what]


# -- building the method --------------------------------------------------------------------------
def space_path(method: str, workload: str) -> Path:
    return ROOT / "search_spaces" / f"{method}_{workload}.yaml"


def run_config(method: str, workload: str, args) -> dict:
    from tune_lnl.config import load_space

    space = load_space(space_path(method, workload))
    if args.setting:
        if args.setting not in space.settings:
            raise SystemExit(f"{space.path}: no setting {args.setting!r}; it has {', '.join(space.settings)}")
        setting = args.setting
    else:  # sym-0.2 where the file has it, else its first setting (IMAE on CIFAR-10: clean)
        setting = "sym-0.2" if "sym-0.2" in space.settings else next(iter(space.settings))
    cfg = space.paper_config(setting, args.data_root)
    cfg.update(device=args.device, batch_size=args.batch_size)
    if workload == "mnist" and args.mnist_images:
        cfg["train_subset"] = int(args.mnist_images)
    if workload == "cifar10" and args.cifar_model:
        cfg["model"] = args.cifar_model
    return cfg


def cifar_standin(cfg: dict, n_images: int, seed: int = 0):
    """A :class:`tune_lnl.data.NoisyData` shaped like CIFAR-10: ``n_images`` seeded random uint8
    ``[3, 32, 32]`` training images with seeded random clean labels, the setting's synthetic
    noise, the noisy-val hold-out of the proxy, and ``round(n_images / 5)`` test images."""
    from tune_lnl.data import Arrays, make_noisy_data, open_dataset

    gen = torch.Generator().manual_seed(seed)
    n_test = max(2, round(n_images * CIFAR_TEST_PER_TRAIN))
    train_x = torch.randint(0, 256, (n_images, 3, 32, 32), generator=gen, dtype=torch.uint8)
    train_y = torch.randint(0, 10, (n_images,), generator=gen)
    test_x = torch.randint(0, 256, (n_test, 3, 32, 32), generator=gen, dtype=torch.uint8)
    test_y = torch.randint(0, 10, (n_test,), generator=gen)
    cifar10 = open_dataset("cifar10")
    data = make_noisy_data(Arrays(train_x, train_y, test_x, test_y), 10,
                           {**cfg, "clean_val_size": 0, "train_subset": 0, "test_subset": 0},
                           cifar10.augmentation(), cifar10.asymmetric_map)
    data.info["stand_in"] = True
    return data


def build_method(method: str, workload: str, args):
    from tune_lnl.methods import method_class

    cfg = run_config(method, workload, args)
    cls = method_class(method)
    if workload == "mnist":
        return cls(cfg), FULL_POOL["mnist"] if not args.mnist_images else min(args.mnist_images, FULL_POOL["mnist"])
    n = int(args.cifar_images)
    return cls(cfg, data=cifar_standin(cfg, n)), n


# -- floor ----------------------------------------------------------------------------------------
class Floor:
    """A bare loop over the method's own device-resident training tensors with the same network work
    as the method's epoch: as many images forwarded and back-propagated (plain CE, the method's
    optimizer) and as many forwarded without gradients, counted on the method's own networks
    (:class:`PassCounter`), in batches of the method's batch size through one network of the
    method's backbone; no augmentation, selection, table or other per-batch extra. For the plain
    methods that is one (or, two-network ones, two) CE pass(es) per image; for the semi-supervised
    ones every view, co-guess, mixed batch and per-epoch scoring pass."""

    def __init__(self, method, counts: dict, seed: int = 0):
        from tune_lnl.methods.base import make_optimizer
        from tune_lnl.models import build_model

        d, cfg = method.data, method.cfg
        self.x, self.y, self.bs = d.train_x, d.train_noisy, int(cfg["batch_size"])
        torch.manual_seed(seed)
        self.net = build_model(cfg["model"], d.num_classes, d.image_shape,
                               pretrained=cfg.get("pretrained", False)).to(self.x.device)
        self.opt = make_optimizer(self.net.parameters(), method.hp)  # the method's optimizer
        self.gen = torch.Generator(device=self.x.device).manual_seed(seed)
        self.fwd_bwd = max(1, round(counts["grad"] / self.bs))  # batches of bs images
        self.fwd = round(counts["no_grad"] / self.bs)

    def _batches(self, k: int):
        n = self.x.shape[0]
        done = 0
        while done < k:
            perm = torch.randperm(n, generator=self.gen, device=self.x.device)
            for start in range(0, n - 1, self.bs):
                if done >= k:
                    return
                idx = perm[start:start + self.bs]
                if idx.numel() < 2:  # as the method's batching: BatchNorm needs two samples
                    continue
                done += 1
                yield self.x.index_select(0, idx).float().div_(255.0), self.y[idx]  # the methods' gather

    def epoch(self) -> None:
        self.net.train()
        for xb, yb in self._batches(self.fwd_bwd):
            loss = F.cross_entropy(self.net(xb), yb)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        with torch.no_grad():
            for xb, _ in self._batches(self.fwd):
                self.net(xb)


class PassCounter:
    """Counts the images each of the method's networks forwards during an epoch, with and without
    gradients: a forward pre-hook on the first parameterised module of every distinct network of
    ``method.eval_models()`` and of every other network the method holds (an ensemble of two counts
    through its members, once each)."""

    def __init__(self, method):
        self.counts = {"grad": 0, "no_grad": 0}
        firsts = {}
        models = [*method.eval_models().values(), *(v for v in vars(method).values() if isinstance(v, torch.nn.Module))]
        for model in models:  # the evaluated ones and any other (e.g. ELR+'s mean-teacher copies)
            first = next((m for m in model.modules() if any(True for _ in m.parameters(recurse=False))), None)
            if first is not None:
                firsts[id(first)] = first
        self.handles = [m.register_forward_pre_hook(self._hook) for m in firsts.values()]
        #: the distinct networks (an ensemble of two is two; a mean-teacher copy counts)
        self.networks = len(firsts)

    def _hook(self, module, args):
        if args and isinstance(args[0], torch.Tensor):
            self.counts["grad" if torch.is_grad_enabled() else "no_grad"] += int(args[0].shape[0])

    def close(self) -> dict:
        for h in self.handles:
            h.remove()
        return dict(self.counts)


# -- the usual pipeline ---------------------------------------------------------------------------
def usual_transform(workload: str, augment: bool):
    from torchvision import transforms as T

    if not augment:
        return T.ToTensor()
    if workload == "mnist":
        return T.Compose([T.RandomPerspective(0.5, p=0.5), T.ColorJitter(0.2, 0.75, 0.25, 0.04), T.ToTensor()])
    return T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor()])


def mnist_raw_index(method, mnist_images: torch.Tensor, mnist_targets: torch.Tensor) -> list[int]:
    """For each training sample ``i`` of the method, an index into torchvision's 60,000 MNIST
    training images with the same pixels and the same clean label (found by content, so it
    does not depend on how the method chose and ordered its training samples)."""
    raw = mnist_images.reshape(mnist_images.shape[0], -1).numpy()
    raw_y = mnist_targets.tolist()
    where: dict[bytes, list[int]] = {}
    for j in range(raw.shape[0]):
        where.setdefault(raw[j].tobytes() + bytes([raw_y[j]]), []).append(j)
    ours = method.data.train_x.cpu().reshape(method.data.n_train, -1).numpy()
    clean = method.data.train_clean.cpu().tolist()
    out = []
    for i in range(ours.shape[0]):
        hits = where.get(ours[i].tobytes() + bytes([clean[i]]))
        if not hits:
            raise AssertionError(f"training sample {i} of the method is not an MNIST training image")
        out.append(hits.pop())  # each raw image used once (exact duplicates: any copy, same pixels)
    return out


def usual_dataset(workload: str, method, data_root: str, transform):
    """torchvision-style Dataset of the method's training samples: ``__getitem__(i)`` returns
    ``(i, transform(PIL image), noisy label)`` with ``i`` the method's own dataset index."""
    from PIL import Image
    from torch.utils.data import Dataset
    from torchvision.datasets import MNIST

    noisy = method.data.train_noisy.cpu().tolist()

    if workload == "mnist":
        class MethodMNIST(MNIST):
            """torchvision's MNIST (PIL 'L' images, its own ``__getitem__``) restricted to and
            re-indexed by the method's training samples, with the method's noisy labels."""

            def __init__(self, root, raw_index, labels, transform):
                super().__init__(root, train=True, transform=transform, download=False)
                self.raw_index, self.labels = raw_index, labels

            @property
            def raw_folder(self):  # torchvision derives it from the class name: keep MNIST's
                return os.path.join(self.root, "MNIST", "raw")

            @property
            def processed_folder(self):
                return os.path.join(self.root, "MNIST", "processed")

            def __len__(self):
                return len(self.raw_index)

            def __getitem__(self, i):
                img, _ = super().__getitem__(self.raw_index[i])
                return i, img, self.labels[i]

        ds = MethodMNIST(data_root, None, noisy, transform)
        ds.raw_index = mnist_raw_index(method, ds.data, ds.targets)
        return ds

    class ArrayDataset(Dataset):
        """Images as an NHWC uint8 numpy array (torchvision's CIFAR10 layout), PIL per sample."""

        def __init__(self, images_nhwc, labels, transform):
            self.data, self.labels, self.transform = images_nhwc, labels, transform

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            img = Image.fromarray(self.data[i])
            return i, self.transform(img), self.labels[i]

    images = method.data.train_x.cpu().permute(0, 2, 3, 1).contiguous().numpy()
    return ArrayDataset(images, noisy, transform)


class UsualFeed:
    """Replaces ``method.train_batches`` by a DataLoader over :func:`usual_dataset`. Records, per
    epoch, the time to the first batch and every (index, label) batch for the self-check."""

    def __init__(self, method, dataset, batch_size: int, workers: int):
        from torch.utils.data import DataLoader

        self.method = method
        self.loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                                 persistent_workers=False, drop_last=False)
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.t_start = self.t_first = None

    def __call__(self):
        m, dev = self.method, self.method.device
        for model in m.eval_models().values():
            model.train()
        self.seen = []
        for idx, x, y in self.loader:  # the loader's iterator (and its workers) start here
            if self.t_first is None:
                self.t_first = time.perf_counter()
            self.seen.append((idx, y))
            if idx.numel() < 2:  # as the method's own batching (BatchNorm needs two samples)
                continue
            yield idx.to(dev, non_blocking=True), x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)

    def epoch(self) -> float:
        """One timed ``train_epoch()`` over the usual feed; returns the time to the first batch."""
        self.t_first = None
        self.t_start = time.perf_counter()
        self.method.train_epoch()
        return (self.t_first or time.perf_counter()) - self.t_start


def check_usual_epoch(feed: UsualFeed, method) -> None:
    """The usual epoch fed every training sample of the method exactly once, under the method's
    own index and with the method's own noisy label."""
    n = method.data.n_train
    idx = torch.cat([i for i, _ in feed.seen])
    y = torch.cat([lab for _, lab in feed.seen])
    if idx.numel() != n or not torch.equal(torch.sort(idx).values, torch.arange(n)):
        raise AssertionError(f"usual epoch saw {idx.numel()} indices, {torch.unique(idx).numel()} distinct; "
                             f"the method trains on indices 0..{n - 1}")
    if not torch.equal(y, method.data.train_noisy.cpu()[idx]):
        raise AssertionError("usual epoch: labels differ from the method's noisy labels")


def check_usual_images(workload: str, method, data_root: str, k: int = 512) -> None:
    """Un-augmented, the usual Dataset's image ``i`` is the method's training image ``i``."""
    ds = usual_dataset(workload, method, data_root, usual_transform(workload, augment=False))
    gen = torch.Generator().manual_seed(1)
    pick = torch.randperm(len(ds), generator=gen)[:k].tolist()
    train_x = method.data.train_x.cpu()
    for i in pick:
        j, img, lab = ds[i]
        if j != i or not torch.equal(img, train_x[i].float().div(255.0)):
            raise AssertionError(f"usual dataset sample {i}: image differs from the method's training image")


# -- one row (subprocess) -------------------------------------------------------------------------
def prime(method) -> None:
    """One untimed forward/backward of a throwaway network of the method's backbone (and one call
    of its on-device augmentation) on one batch, so that one-time costs of the process (kernel
    selection, allocator growth) land in no timed cell -- with --warmup 0 they would otherwise
    all fall on the first cell measured (evaluate), magnified by any extrapolation. The method's own
    state (networks, optimizers, generator, tables) is not touched."""
    from tune_lnl.models import build_model

    d, cfg = method.data, method.cfg
    with torch.random.fork_rng(devices=[method.device] if method.device.type == "cuda" else []):
        net = build_model(cfg["model"], d.num_classes, d.image_shape).to(method.device)
        x = d.train_x[: int(cfg["batch_size"])].float().div_(255.0)
        if getattr(method, "augment", None) is not None:
            x = method.augment(x, torch.Generator(device=method.device).manual_seed(12345))
        F.cross_entropy(net(x), d.train_noisy[: x.shape[0]]).backward()
    sync(method.device)


def measure_one(method_name: str, workload: str, args) -> dict:
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rss_imports = peak_rss_mib()
    tag = f"[{workload}/{method_name}]"
    t0 = time.perf_counter()
    method, pool = build_method(method_name, workload, args)
    setup_s = time.perf_counter() - t0
    method.epoch = args.epoch
    d, cfg = method.data, method.cfg
    n_train, bs = d.n_train, int(cfg["batch_size"])
    nets = method.eval_models()
    log(f"{tag} built in {setup_s:.1f} s: setting {cfg['setting']}, {len(nets)} x {cfg['model']}, "
        f"augment {cfg.get('augment')}, {n_train} training images, epoch index {method.epoch}")

    prime(method)
    def under_amp(fn):  # the run config's amp, applied as Method.step applies it
        def run():
            with method.autocast():
                return fn()
        return run

    log(f"{tag} evaluate")
    eval_s, eval_raw = timed(under_amp(method.evaluate), args.repeats, args.warmup, device, "evaluate")
    # the method's own peak memory: after evaluate and one (untimed) training epoch, before the
    # floor's networks exist
    counter = PassCounter(method)  # the floor does the same network work as this epoch
    under_amp(method.train_epoch)()
    counts = counter.close()
    sync(device)
    rss_ours = peak_rss_mib()
    gpu_ours = torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else None
    log(f"{tag} ours (train_epoch) and floor (the same images through one {cfg['model']}, plain CE), taking turns")
    floor = Floor(method, counts)
    log(f"{tag} images per epoch through the networks: {counts['grad']} with gradients, {counts['no_grad']} without")
    cells = timed_interleaved({"ours": under_amp(method.train_epoch), "floor": floor.epoch},
                              args.repeats, args.warmup, device)
    (ours_s, ours_raw), (floor_s, floor_raw) = cells["ours"], cells["floor"]
    del floor
    if args.no_usual:
        row = finish_row(method_name, workload, args, method, pool, setup_s, rss_imports, rss_ours, gpu_ours,
                         floor_s, floor_raw, ours_s, ours_raw, eval_s, eval_raw, None, None, [])
        return {**row, "networks": counter.networks, "images_per_epoch": counts}

    log(f"{tag} usual (PIL transforms, DataLoader with {args.workers} workers)")
    check_usual_images(workload, method, args.data_root)
    transform = usual_transform(workload, bool(cfg.get("augment", False)))
    feed = UsualFeed(method, usual_dataset(workload, method, args.data_root, transform), bs, args.workers)
    method.train_batches = feed  # the method's own train_epoch() now draws its batches from the loader
    firsts: list[float] = []

    def usual_epoch():
        firsts.append(feed.epoch())
        check_usual_epoch(feed, method)

    usual_s, usual_raw = timed(under_amp(usual_epoch), args.repeats, args.warmup, device, "usual")
    usual_first = statistics.median(firsts[args.warmup:])
    del method.train_batches
    row = finish_row(method_name, workload, args, method, pool, setup_s, rss_imports, rss_ours, gpu_ours,
                     floor_s, floor_raw, ours_s, ours_raw, eval_s, eval_raw, usual_s, usual_first, usual_raw)
    return {**row, "networks": counter.networks, "images_per_epoch": counts}


def finish_row(method_name, workload, args, method, pool, setup_s, rss_imports, rss_ours, gpu_ours,
               floor_s, floor_raw, ours_s, ours_raw, eval_s, eval_raw, usual_s, usual_first, usual_raw) -> dict:
    """The row: measured figures, and extrapolated to the full pool; usual figures None when
    the usual feed was not run (``--no-usual``)."""
    tag = f"[{workload}/{method_name}]"
    d, cfg = method.data, method.cfg
    n_train, bs = d.n_train, int(cfg["batch_size"])
    nets = method.eval_models()
    # extrapolation to the full training pool (training images scale with the pool)
    # usual: the time to the first batch (worker start-up + that batch's loading) happens once
    # per epoch; everything after it (training on all n_train images, loading the rest) scales
    scale = FULL_POOL[workload] / pool
    usual_x = None if usual_s is None else usual_first + max(0.0, usual_s - usual_first) * scale
    row = {
        "method": method_name, "workload": workload, "setting": cfg["setting"], "model": cfg["model"],
        "networks": len(nets), "augment": bool(cfg.get("augment", False)), "epoch_index": args.epoch,
        "n_train": n_train, "n_val": int(d.val_x.shape[0]), "n_test": int(d.test_x.shape[0]),
        "pool": pool, "full_pool": FULL_POOL[workload], "scale": scale, "batch_size": bs,
        "setup_s": setup_s,
        "measured": {"floor_s": floor_s, "ours_s": ours_s, "usual_s": usual_s, "usual_first_batch_s": usual_first,
                     "evaluate_s": eval_s, "floor_raw": floor_raw, "ours_raw": ours_raw, "usual_raw": usual_raw,
                     "evaluate_raw": eval_raw},
        "floor_s": floor_s * scale, "ours_s": ours_s * scale, "usual_s": usual_x,
        # MNIST keeps its full 10,000-image test set when capped: evaluate is not scaled there
        "evaluate_s": eval_s * scale if workload == "cifar10" else eval_s,
        "rss_imports_mib": rss_imports, "peak_rss_mib": rss_ours, "peak_rss_end_mib": peak_rss_mib(),
        "peak_gpu_mib": gpu_ours,
        "usual_check": "ok" if usual_s is not None else "not run",
    }
    row["ours_over_floor"] = row["ours_s"] / row["floor_s"]
    # the per-round ratios (ours and floor of one round ran back to back)
    row["ours_over_floor_rounds"] = [o / f for o, f in zip(ours_raw, floor_raw)]
    row["usual_over_ours"] = None if usual_x is None else usual_x / row["ours_s"]
    usual_txt = "usual not run" if usual_x is None else f"usual {usual_x:.3f} s ({row['usual_over_ours']:.1f}x ours)"
    log(f"{tag} floor {row['floor_s']:.3f} s, ours {row['ours_s']:.3f} s ({row['ours_over_floor']:.2f}x floor), "
        f"{usual_txt}, evaluate {row['evaluate_s']:.3f} s"
        + (f" [extrapolated x{scale:.2f} from {pool} images]" if scale != 1.0 else ""))
    return row


# -- the table ------------------------------------------------------------------------------------
def target_cell(row: dict) -> str:
    lim = TARGET_MLC if row["method"] == "mlc" else TARGET_ANY
    misses = []
    if row["ours_over_floor"] > lim:
        misses.append(f"ours/floor {row['ours_over_floor']:.2f} > {lim}")
    if row["usual_over_ours"] is not None and row["usual_over_ours"] < TARGET_USUAL:
        misses.append(f"usual/ours {row['usual_over_ours']:.1f} < {TARGET_USUAL:g}")
    return "pass" if not misses else "miss (" + "; ".join(misses) + ")"


def workload_table(workload: str, rows: list[dict], errors: dict, args) -> list[str]:
    cuda = args.device.startswith("cuda")
    targets = workload == "mnist" and not cuda
    head = ["method", "networks", "floor s", "ours s", "ours/floor", "usual s", "usual/ours", "evaluate s",
            "peak RSS MiB"] + (["peak GPU MiB"] if cuda else []) + (["targets"] if targets else [])
    stand_in = " (CIFAR-10 stand-in: random tensors of the real shape)" if workload == "cifar10" else ""
    out = [f"## {workload}{stand_in}", ""]
    ok = [r for r in rows if r["workload"] == workload]
    if ok:
        r0 = ok[0]
        settings = sorted({r["setting"] for r in ok})
        out.append(f"- setting {', '.join(settings)} (paper config of search_spaces/<method>_{workload}.yaml), "
                   f"batch size {r0['batch_size']}, epoch index {r0['epoch_index']}, device {args.device}, "
                   f"{args.threads} torch thread(s), usual: {args.workers} DataLoader worker(s)")
        out.append(f"- measured on {r0['n_train']} training images ({r0['pool']} before the noisy-val hold-out), "
                   f"{r0['n_val']} noisy-val, {r0['n_test']} test")
        if r0["scale"] != 1.0:
            out.append(f"- **floor / ours / usual are per-epoch figures EXTRAPOLATED to the full "
                       f"{r0['full_pool']:,}-image pool** (x{r0['scale']:.2f}; {r0['n_train'] * r0['scale']:.0f} "
                       f"training images) from the {r0['pool']} measured; usual counts its time to the first "
                       f"batch (worker start-up) once. evaluate: "
                       + ("extrapolated the same way (test set scaled with N)." if workload == "cifar10"
                          else "as measured (full 10,000-image test set, noisy-val of the capped pool)."))
        if args.no_usual:
            out.append("- usual: not run (`--no-usual`); its target is not checked")
        else:
            out.append(f"- usual feed self-check (every usual epoch fed each training index once with the method's "
                       f"noisy label; un-augmented images equal the method's): passed in all {len(ok)} rows")
        out.append(f"- median of {args.repeats} epoch(s) after {args.warmup} warm-up epoch(s) per cell, ours and "
                   f"floor taking turns (`timed_interleaved`); "
                   f"peak RSS: the row's own process after ours + evaluate "
                   f"(imports alone: {statistics.median(r['rss_imports_mib'] for r in ok):.0f} MiB)")
        out.append("")
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1 - targets) + (["---"] if targets else [])) + "|")
    for r in ok:
        cells = [r["method"], f"{r['networks']} x {r['model']}", f"{r['floor_s']:.3f}", f"{r['ours_s']:.3f}",
                 f"{r['ours_over_floor']:.2f}", "-" if r["usual_s"] is None else f"{r['usual_s']:.3f}",
                 "-" if r["usual_over_ours"] is None else f"{r['usual_over_ours']:.1f}",
                 f"{r['evaluate_s']:.3f}", f"{r['peak_rss_mib']:.0f}"]
        if cuda:
            cells.append(f"{r['peak_gpu_mib']:.0f}" if r["peak_gpu_mib"] is not None else "-")
        if targets:
            cells.append(target_cell(r))
        out.append("| " + " | ".join(cells) + " |")
    for m, err in errors.items():
        out.append(f"| {m} | error: {err} |" + " |" * (len(head) - 2))
    out.append("")
    if targets and ok:
        npass = sum(target_cell(r) == "pass" for r in ok)
        out.append(f"Targets (CPU, MNIST MLP): MLC ours/floor <= {TARGET_MLC}, every method ours/floor <= "
                   f"{TARGET_ANY}" + (" (usual/ours not measured: --no-usual)" if args.no_usual
                                      else f", usual/ours >= {TARGET_USUAL:g}") + f": {npass}/{len(ok)} rows pass.")
        out.append("")
    elif workload == "mnist" and cuda:
        out.append("Targets apply to the CPU run only (MNIST MLP on CPU); not marked here.")
        out.append("")
    return out


def machine_lines(args) -> list[str]:
    torch.set_num_threads(args.threads)
    lines = [
        f"- CPU: {cpu_model()} ({os.cpu_count()} logical cores visible)",
        f"- torch {torch.__version__}, python {platform.python_version()}, device {args.device}, "
        f"torch threads {torch.get_num_threads()} (`--threads`; Ray gives a CPU trial one), "
        f"DataLoader workers {args.workers}",
    ]
    if args.device.startswith("cuda") and torch.cuda.is_available():
        lines.append(f"- GPU: {torch.cuda.get_device_name(torch.device(args.device))}")
    return lines


NOTES = """## Notes

- One fresh subprocess per row (`suite.py --one METHOD WORKLOAD`): peak RSS is that method's own
  (ru_maxrss of the row's process, read after the ours + evaluate epochs, before floor and usual
  run; DataLoader workers are separate processes and not included). Importing torch and the
  project already accounts for the 'imports alone' figure above (the suite keeps Ray out of the
  process). On CUDA: torch.cuda.max_memory_allocated() over the same span.
- floor: the images the method's epoch sends through its networks, counted (with and without
  gradients) on an untimed epoch, through one network of the same backbone and optimizer
  (`build_model`, `make_optimizer` with the run config), plain cross-entropy, the method's own
  device tensors, no augmentation. ours/floor is what the method's per-batch extras
  (augmentation, views, selection, co-regularization, label tables) cost over bare training
  with the same passes.
- usual: the method's own `train_epoch()` fed by a torchvision-style Dataset with per-sample PIL
  transforms (the paper config's augmentation) through a shuffling DataLoader
  (persistent_workers=False, worker start-up counts, no pin_memory). Every usual epoch is checked
  to feed each of the method's training indices exactly once with the method's noisy label, and
  a sample of un-augmented images is checked to equal the method's training images.
- The training state carries over from one timed epoch to the next (ours, then usual on the same
  method object); that does not change the cost of an epoch. Epoch index (`--epoch`) selects
  the stage where a method has stages (MLC/PENCIL: stage 1 before `stage1`; Co-teaching+:
  disagreement from `init_epoch`, 0 on MNIST, 20 on CIFAR-10).
- CIFAR-10 is a stand-in (seeded random uint8 images and labels, the setting's synthetic noise
  via tune_lnl.data.noise, the real hold-out): the shapes, hence the per-epoch cost, are CIFAR-10's;
  accuracies are meaningless and not reported.
- Timing is wall clock: measure on an otherwise idle machine.
"""


def child_argv(args, method: str, workload: str) -> list[str]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--one", method, workload,
            "--data-root", args.data_root, "--device", args.device, "--threads", str(args.threads),
            "--batch-size", str(args.batch_size), "--repeats", str(args.repeats), "--warmup", str(args.warmup),
            "--workers", str(args.workers), "--epoch", str(args.epoch),
            "--mnist-images", str(args.mnist_images), "--cifar-images", str(args.cifar_images)]
    if args.setting:
        argv += ["--setting", args.setting]
    if args.cifar_model:
        argv += ["--cifar-model", args.cifar_model]
    if args.no_usual:
        argv += ["--no-usual"]
    return argv


def run_suite(args) -> str:
    command = shlex.join([sys.executable, *sys.argv])
    header = ["# Benchmark suite: epoch time per method vs. a bare floor and the usual PIL/DataLoader feed", "",
              *machine_lines(args), f"- command: `{command}`", ""]
    print("\n".join(header), flush=True)
    rows: list[dict] = []
    errors: dict[str, dict[str, str]] = {w: {} for w in args.workloads}
    jobs = [(w, m) for w in args.workloads for m in args.methods]
    t_all = time.perf_counter()
    for k, (workload, method) in enumerate(jobs, 1):
        log(f"[{k}/{len(jobs)}] {workload}/{method} ... (elapsed {time.perf_counter() - t_all:.0f} s)")
        proc = subprocess.run(child_argv(args, method, workload), stdout=subprocess.PIPE, text=True)
        found = [line[len(ROW_TAG):] for line in proc.stdout.splitlines() if line.startswith(ROW_TAG)]
        if proc.returncode != 0 or not found:
            errors[workload][method] = f"subprocess exit {proc.returncode} (see stderr above)"
            log(f"[{k}/{len(jobs)}] {workload}/{method} FAILED (exit {proc.returncode})")
            continue
        rows.append(json.loads(found[-1]))
    body = []
    for workload in args.workloads:
        body += workload_table(workload, rows, errors[workload], args)
    text = "\n".join(header + body) + "\n" + NOTES
    print("\n".join(body), flush=True)
    log(f"suite done in {time.perf_counter() - t_all:.0f} s")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        log(f"wrote {args.out}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text("".join(json.dumps(r) + "\n" for r in rows))
        log(f"wrote {args.json}")
    return text


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=list(METHOD_NAMES), choices=METHOD_NAMES, metavar="METHOD",
                   help=f"subset of methods (default: all: {' '.join(METHOD_NAMES)})")
    p.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    p.add_argument("--data-root", default=os.environ.get("TUNE_LNL_DATA", "/work/shared/data"),
                   help="holds MNIST/raw (default: $TUNE_LNL_DATA or /work/shared/data)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1: a Ray CPU trial)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=None, help="timed epochs per cell, median reported (default 2)")
    p.add_argument("--warmup", type=int, default=None, help="untimed epochs before each cell (default 1)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes of the usual feed")
    p.add_argument("--setting", default=None,
                   help="noise setting of every file (default: sym-0.2 where the file has it, else its first)")
    p.add_argument("--epoch", type=int, default=0, help="0-based epoch index the timed epochs run as (stages)")
    p.add_argument("--mnist-images", type=int, default=None,
                   help="cap the 60,000-image MNIST training pool (train_subset; default: all)")
    p.add_argument("--cifar-images", type=int, default=None,
                   help="CIFAR-10 stand-in training pool size (default 50000; smaller N is extrapolated)")
    p.add_argument("--cifar-model", default=None, help="force the CIFAR-10 backbone (default: the config's)")
    p.add_argument("--quick", action="store_true",
                   help="fast sanity check: 2048 MNIST / 256 CIFAR images, repeats 1, warm-up 0 "
                        "(explicit options win)")
    p.add_argument("--no-usual", action="store_true",
                   help="skip the usual PIL + DataLoader feed (its 30 s MNIST epochs): ours, floor, evaluate only")
    p.add_argument("--out", default=None, help="also write the markdown (machine, command, tables, notes)")
    p.add_argument("--json", default=None, help="also write the rows (measured and extrapolated) as JSON lines")
    p.add_argument("--one", nargs=2, metavar=("METHOD", "WORKLOAD"), default=None,
                   help="internal: measure one row in this process and print it as a JSON line")
    args = p.parse_args(argv)
    for k, v in DEFAULTS.items():
        if getattr(args, k) is None:
            setattr(args, k, QUICK[k] if args.quick else v)
    if args.one and (args.one[0] not in METHOD_NAMES or args.one[1] not in WORKLOADS):
        p.error(f"--one METHOD WORKLOAD: METHOD in {METHOD_NAMES}, WORKLOAD in {WORKLOADS}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda but torch sees no GPU")
    if args.repeats < 1 or args.warmup < 0 or args.cifar_images < 2 or args.mnist_images < 0 or args.workers < 0:
        p.error("need --repeats >= 1, --warmup >= 0, --cifar-images >= 2, --mnist-images >= 0, --workers >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.one:
        sys.modules.setdefault("ray", None)  # the suite never needs Ray; keep it out of the row's RSS
        row = measure_one(args.one[0], args.one[1], args)
        print(ROW_TAG + json.dumps(row), flush=True)
        return 0
    run_suite(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
