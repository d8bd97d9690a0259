"""Datasets with synthetic label noise, clean labels kept aside, and the proxy split.

Everything here runs once per training, on the CPU; the result is a :class:`NoisyData` of plain
tensors that :mod:`tune_lnl.batching` moves onto the training device.

Order of operations (so that one noise seed fixes one noisy label set for every trial and seed):
1. load the full training set; 2. corrupt ALL training labels with the noise seed; 3. optionally
keep a seeded random subset (``train_subset``, smoke runs); 4. with ``clean_val_size`` N > 0, hold
out N random training images with their ORIGINAL labels (the ``clean_val`` proxy: the small
trusted set a practitioner can afford to label), seeded by the noise seed; 5. hold out a split
of the rest stratified by the NOISY label (the ``noisy_val`` proxy; the only label a
practitioner has), seeded by the noise seed, unless the proxy is ``clean_intact`` (an analysis
run over every training image). Both held-out splits are removed from training and exist
whichever of ``noisy_val`` and ``clean_val`` selects, so that every proxy is logged each epoch
and runs selecting on either train on the same images. Clean labels travel beside the noisy
ones for the ``clean_intact`` proxy and analytics; training code only ever reads ``train_noisy``.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from .noise import corrupt_labels, realised_rate, transition_matrix

#: in-memory datasets (device-resident) and Clothing1M (streamed from disk, real noise)
DATASETS = ("mnist", "cifar10", "clothing1m")
#: the datasets held as tensors on the training device (every proxy is cheap to evaluate each epoch)
IN_MEMORY = ("mnist", "cifar10")
#: the noise type of datasets whose labels are noisy as given (no synthetic corruption)
REAL_NOISE = "real"
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class DataNotFoundError(RuntimeError):
    """Dataset files absent and no way to download them."""


def resolve_data_root(cli_value: str | os.PathLike | None = None) -> Path:
    """``--data-root``, else ``$TUNE_LNL_DATA``, else ``./data``; always absolute.

    Absolute because Ray runs trials in other working directories."""
    value = cli_value or os.environ.get("TUNE_LNL_DATA") or "data"
    return Path(value).expanduser().resolve()


def open_torchvision(dataset_cls, root: Path, what: str, folder: Path, how_to_fill: str):
    """``(train, test)`` torchvision datasets from ``root``; downloads when the files are absent
    and the network allows, else raises :class:`DataNotFoundError` naming ``folder``."""
    try:
        return dataset_cls(str(root), train=True, download=False), dataset_cls(str(root), train=False, download=False)
    except RuntimeError:  # a file is missing
        try:
            return dataset_cls(str(root), train=True, download=True), dataset_cls(str(root), train=False, download=True)
        except Exception as exc:  # no network, no write access, ...
            raise DataNotFoundError(
                f"{what} not found in {folder} and downloading it failed ({type(exc).__name__}: {exc}). "
                f"{how_to_fill}, or point --data-root / TUNE_LNL_DATA at a folder holding "
                f"{folder.relative_to(root)}/.") from None


#: the uncompressed idx files: (magic number, size in bytes) = header + items
MNIST_FORMAT = {"train-images-idx3-ubyte": (2051, 16 + 60000 * 784), "train-labels-idx1-ubyte": (2049, 8 + 60000),
                "t10k-images-idx3-ubyte": (2051, 16 + 10000 * 784), "t10k-labels-idx1-ubyte": (2049, 8 + 10000)}


def check_mnist_files(raw: Path) -> None:
    """Refuse present-but-wrong MNIST files (truncated, another dataset) with a message naming
    the file, instead of a parser error deep in torchvision or, worse, silently other data."""
    for name, (magic, size) in MNIST_FORMAT.items():
        path = raw / name
        if not path.exists():
            continue  # absent: torchvision extracts the .gz or downloads; else DataNotFoundError
        with open(path, "rb") as f:
            got_magic = int.from_bytes(f.read(4), "big")
        got_size = path.stat().st_size
        if got_magic != magic or got_size != size:
            raise DataNotFoundError(
                f"{path}: not the official MNIST file (magic number {got_magic}, {got_size} bytes; expected "
                f"{magic}, {size} bytes): truncated or replaced. Delete it and put the official file there "
                f"(or its .gz).")


def load_mnist(root: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """MNIST through torchvision as uint8 ``[N, 1, 28, 28]`` images and int64 labels.

    Downloads when the files are absent and the network allows; otherwise raises
    :class:`DataNotFoundError` naming the folder to fill."""
    from torchvision.datasets import MNIST

    root = Path(root)
    raw = root / "MNIST" / "raw"
    check_mnist_files(raw)
    train, test = open_torchvision(MNIST, root, "MNIST", raw,
                                   f"Put the four files {', '.join(MNIST_FILES)} (or their .gz) into {raw}")
    return (train.data.unsqueeze(1).contiguous(), train.targets.long(),
            test.data.unsqueeze(1).contiguous(), test.targets.long())


@dataclass
class NoisyData:
    train_x: torch.Tensor          # uint8 [N, C, H, W]
    train_noisy: torch.Tensor      # int64 [N]: the labels training sees
    train_clean: torch.Tensor      # int64 [N]: never reaches a loss
    val_x: torch.Tensor            # held-out noisy validation images (may be empty)
    val_noisy: torch.Tensor
    val_clean: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    transition: torch.Tensor       # [C, C] the matrix the noise was drawn from
    info: dict = field(default_factory=dict)  # realised noise rates, sizes
    augment: Callable | None = None  # the dataset's batched on-device augmentation f(x, generator)
    cval_x: torch.Tensor | None = None  # the clean held-out subset (clean_val_size images; may be None)
    cval_y: torch.Tensor | None = None  # ... with its ORIGINAL (clean) labels
    #: positions in the (subset) training set of each split: ``train``, ``noisy_val``, ``clean_val``
    split_index: dict = field(default_factory=dict)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    def to_device(self, device: torch.device):
        from .batching import DeviceData
        return DeviceData(self, device)


def stratified_holdout(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, held-out): ``round(fraction * n_c)`` of each class ``c`` held out."""
    gen = torch.Generator().manual_seed(int(seed) + 7919)
    held = []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).squeeze(1)
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        held.append(idx[: int(round(fraction * idx.numel()))])
    held_idx = torch.sort(torch.cat(held)).values if held else torch.empty(0, dtype=torch.long)
    mask = torch.ones(labels.numel(), dtype=torch.bool)
    mask[held_idx] = False
    return torch.nonzero(mask).squeeze(1), held_idx


def seeded_subset(n: int, size: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(int(seed) + 104729)
    return torch.sort(torch.randperm(n, generator=gen)[:size]).values


def load_images(dataset: str, root) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 train/test images and labels of an in-memory dataset."""
    if dataset == "mnist":
        return load_mnist(root)
    if dataset == "cifar10":
        from .cifar10 import load_cifar10
        return load_cifar10(root)
    raise ValueError(f"unknown in-memory dataset {dataset!r}; allowed: mnist, cifar10")


def check_data(dataset: str, root) -> None:
    """Raise :class:`DataNotFoundError` (naming the folder to fill) if ``dataset`` is absent."""
    if dataset == "clothing1m":
        from .clothing1m import check_clothing1m
        check_clothing1m(root)
    else:
        load_images(dataset, root)


def dataset_augment(dataset: str) -> Callable:
    """The dataset's batched on-device augmentation (``mnist_augment``, ``cifar10_augment``)."""
    from . import augment
    return getattr(augment, f"{dataset}_augment")


def load_noisy_data(cfg: dict):
    """Build the noisy dataset a run config describes (keys: dataset, data_root, noise_type,
    noise_rate, noise_seed, proxy, val_fraction, train_subset, test_subset). MNIST and CIFAR-10
    give a :class:`NoisyData`; Clothing1M (real noise, streamed) its own object with the same
    ``to_device``."""
    if cfg["dataset"] == "clothing1m":
        from .clothing1m import load_clothing1m
        return load_clothing1m(cfg)
    if cfg["dataset"] not in DATASETS:
        raise ValueError(f"unknown dataset {cfg['dataset']!r}; allowed: {', '.join(DATASETS)}")
    train_x, train_y, test_x, test_y = load_images(cfg["dataset"], cfg["data_root"])
    num_classes = 10
    T = transition_matrix(cfg["noise_type"], float(cfg["noise_rate"]), num_classes)
    noisy = corrupt_labels(train_y, T, cfg["noise_seed"])
    if cfg.get("train_subset"):
        keep = seeded_subset(train_x.shape[0], int(cfg["train_subset"]), cfg["noise_seed"])
        train_x, train_y, noisy = train_x[keep], train_y[keep], noisy[keep]
    if cfg.get("test_subset"):
        keep = seeded_subset(test_x.shape[0], int(cfg["test_subset"]), cfg["noise_seed"] + 1)
        test_x, test_y = test_x[keep], test_y[keep]
    n = train_x.shape[0]
    n_cval = int(cfg.get("clean_val_size") or 0)
    if n_cval >= n:
        raise ValueError(f"clean_val_size {n_cval} leaves no training image (the training set has {n})")
    cv = seeded_subset(n, n_cval, cfg["noise_seed"] + 2) if n_cval else torch.empty(0, dtype=torch.long)
    rest = torch.ones(n, dtype=torch.bool)
    rest[cv] = False
    rest = torch.nonzero(rest).squeeze(1)
    if cfg["proxy"] == "clean_intact":  # an analysis run over every training image: no noisy hold-out
        tr, va = rest, torch.empty(0, dtype=torch.long)
    else:
        tr, va = stratified_holdout(noisy[rest], float(cfg["val_fraction"]), cfg["noise_seed"])
        tr, va = rest[tr], rest[va]
    data = NoisyData(train_x[tr], noisy[tr], train_y[tr], train_x[va], noisy[va], train_y[va],
                     test_x, test_y, num_classes, T, augment=dataset_augment(cfg["dataset"]),
                     cval_x=train_x[cv], cval_y=train_y[cv],
                     split_index={"train": tr, "noisy_val": va, "clean_val": cv})
    data.info = {
        "noise_rate_realised": realised_rate(train_y, noisy),
        "noise_rate_realised_train": realised_rate(data.train_clean, data.train_noisy),
        "n_train": int(tr.numel()), "n_val": int(va.numel()), "n_clean_val": int(cv.numel()),
        "n_test": int(test_y.numel()),
    }
    return data


# -- per-process cache of device-resident data ---------------------------------------------------
#: how many device-resident datasets a process keeps (the latest ones): a worker runs the trials
#: of one noise setting one after another, and a long-lived process must not accumulate copies
DATA_CACHE_SIZE = 1
_cache: OrderedDict[tuple, object] = OrderedDict()
_cache_lock = threading.Lock()


def _device_key(device: torch.device) -> str:
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return str(device)


def data_key(cfg: dict, device: torch.device) -> tuple | None:
    """Everything :func:`load_noisy_data` reads, normalised, plus the device; ``None`` for a
    dataset that is not cached (Clothing1M: streamed, its device view holds DataLoader workers
    that :meth:`~tune_lnl.method.Method.close` stops)."""
    if cfg["dataset"] not in DATASETS or cfg["dataset"] == "clothing1m":
        return None
    holdout = cfg["proxy"] != "clean_intact"  # val_fraction read only then
    return (cfg["dataset"], str(Path(cfg["data_root"]).expanduser().resolve()), cfg["noise_type"],
            float(cfg["noise_rate"]), int(cfg["noise_seed"]), holdout, float(cfg["val_fraction"]) if holdout else None,
            int(cfg.get("clean_val_size") or 0), int(cfg.get("train_subset") or 0), int(cfg.get("test_subset") or 0),
            _device_key(device))


def cached_noisy_data(cfg: dict, device: torch.device):
    """``load_noisy_data(cfg).to_device(device)``, shared by every caller of this process asking
    for the same data (same :func:`data_key`): the trials a worker runs one after another load
    and upload the dataset once. Only the device copy is kept (for CUDA the host tensors are
    freed after the upload), and only the :data:`DATA_CACHE_SIZE` latest datasets; an older one
    lives on only while a method still holds it. Callers must treat the tensors as read-only
    (no method writes into its data). Clothing1M is never cached: each call loads afresh."""
    key = data_key(cfg, device)
    if key is None:
        return load_noisy_data(cfg).to_device(device)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        while _cache and len(_cache) >= DATA_CACHE_SIZE:  # drop before loading: no two copies at the peak
            _cache.popitem(last=False)
        data = load_noisy_data(cfg).to_device(device)
        if DATA_CACHE_SIZE > 0:
            _cache[key] = data
        return data


def clear_data_cache() -> None:
    """Forget every cached dataset (the tensors are freed once no method holds them)."""
    with _cache_lock:
        _cache.clear()
