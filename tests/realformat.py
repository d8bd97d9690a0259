"""Tiny dataset files in the real formats, written by the tests (the real CIFAR / CIFAR-N /
FashionMNIST files are not on this machine): CIFAR python pickles as Python 2 wrote them,
CIFAR-N ``.pt`` label files, idx files of MNIST's layout."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch


class Py2Str(str):
    """A Python-2 ``str``: pickled with the SHORT_BINSTRING opcode, as in the official files
    (written by Python 2), so that ``pickle.load(f, encoding="bytes")`` -- the recipe on the
    CIFAR web page -- gives ``b"data"`` keys, and ``encoding="latin1"`` (torchvision) ``"data"``."""


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler: its dispatch table is extensible
    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        raw = obj.encode("latin1")
        assert len(raw) < 256
        self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)

    dispatch[Py2Str] = _save_py2_str


def dump_py2(obj, path: Path) -> None:
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump(obj)


def _batch(rows: np.ndarray, labels: dict[str, list[int]], name: str) -> dict:
    return {Py2Str("batch_label"): Py2Str(f"{name} (tiny test copy)"),
            **{Py2Str(k): v for k, v in labels.items()},
            Py2Str("data"): rows,
            Py2Str("filenames"): [Py2Str(f"img_{name}_{k}.png") for k in range(len(rows))]}


def write_cifar10(root: Path, per_batch: int = 4, n_test: int = 3, seed: int = 0):
    """5 train batches of ``per_batch`` images and a test batch of ``n_test``: random uint8 rows
    ``[n, 3072]`` (1024 R, then 1024 G, then 1024 B values, each plane row-major 32x32).
    Returns ``(folder, train_rows, train_labels, test_rows, test_labels)``."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    train_rows, train_labels = [], []
    for b in range(1, 6):
        rows = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=per_batch)]
        dump_py2(_batch(rows, {"labels": labels}, f"training batch {b} of 5"), folder / f"data_batch_{b}")
        train_rows.append(rows)
        train_labels += labels
    test_rows = rng.integers(0, 256, size=(n_test, 3072), dtype=np.uint8)
    test_labels = [7, 0, 9] if n_test == 3 else [int(v) for v in rng.integers(0, 10, size=n_test)]
    dump_py2(_batch(test_rows, {"labels": test_labels}, "testing batch 1 of 1"), folder / "test_batch")
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    dump_py2({Py2Str("num_cases_per_batch"): 10000, Py2Str("num_vis"): 3072,
              Py2Str("label_names"): [Py2Str(n) for n in names]}, folder / "batches.meta")
    return folder, np.concatenate(train_rows), train_labels, test_rows, test_labels


def write_cifar100(root: Path, n_train: int = 300, n_test: int = 100, seed: int = 0):
    """``cifar-100-python/{train,test,meta}`` with random images and balanced fine labels (the
    coarse label of fine class f: f // 5, as the real files' numbering is not needed here).
    Returns ``(folder, train_rows, train_fine, test_rows, test_fine)``."""
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    out = [folder]
    for name, n in (("train", n_train), ("test", n_test)):
        rows = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        fine = [int(v) for v in rng.permutation(np.arange(n) % 100)]
        dump_py2(_batch(rows, {"fine_labels": fine, "coarse_labels": [f // 5 for f in fine]}, name), folder / name)
        out += [rows, fine]
    dump_py2({Py2Str("fine_label_names"): [Py2Str(f"fine{k}") for k in range(100)],
              Py2Str("coarse_label_names"): [Py2Str(f"coarse{k}") for k in range(20)]}, folder / "meta")
    return tuple(out)


def write_cifar_n(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """A CIFAR-N label file as published: ``torch.save`` of a dict of NumPy integer arrays."""
    torch.save({k: np.asarray(v, dtype=np.int64) for k, v in arrays.items()}, path)
    return path


def write_idx(raw: Path, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> Path:
    """The four uncompressed idx files of MNIST's layout into ``raw`` (images uint8 ``[N, 28, 28]``)."""
    raw = Path(raw)
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, x, y in (("train", train_x, train_y), ("t10k", test_x, test_y)):
        with open(raw / f"{prefix}-images-idx3-ubyte", "wb") as f:
            f.write((2051).to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in x.shape))
            f.write(np.ascontiguousarray(x, dtype=np.uint8).tobytes())
        with open(raw / f"{prefix}-labels-idx1-ubyte", "wb") as f:
            f.write((2049).to_bytes(4, "big") + len(y).to_bytes(4, "big"))
            f.write(np.asarray(y, dtype=np.uint8).tobytes())
    return raw
