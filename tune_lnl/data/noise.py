"""Label noise: the noise models a space file's ``noise:`` names, each an explicit seeded draw.

Class-conditional noise is a row-stochastic transition matrix ``T`` (``T[i, j]``: the probability
that a sample of clean class ``i`` receives the noisy label ``j``) from which every sample's noisy
label is drawn independently:

* ``symmetric``: keep the label with probability ``1 - r``, otherwise flip to one of the OTHER
  ``C - 1`` classes uniformly (Co-teaching / MLC definition).
* ``pairflip``: keep with probability ``1 - r``, otherwise ``c -> (c + 1) mod C``.
* ``uniform``: with probability ``r`` replace the label by a uniform draw over ALL ``C`` classes
  (may keep the true label: the IMAE paper's noise; expected realised rate ``r (C - 1) / C``).
* ``asymmetric``: the class mapping the DATASET declares (``asymmetric_map``, e.g. CIFAR-10
  truck -> automobile); each mapped class flips to its target with probability ``r``, the others
  never flip (so the overall rate is ``r`` times the share of mapped samples).
* ``matrix``: a ``C x C`` matrix the user gives (:func:`check_matrix` says what is wrong with one).

Instance-dependent noise (``instance``, :func:`instance_transition`): every sample gets its own
row, a function of its image (Xia et al. 2020, part-dependent label noise).

Labels that come with the dataset: ``real`` (the labels as given; clean ones maybe unknown) and
``human`` (a named set of human-annotated labels beside the clean ones, e.g. CIFAR-10N's
``worse``).

Labels are drawn with a dedicated generator seeded by the *noise seed*, independent of every
training seed, so one noise seed fixes one noisy label set across all trials and final seeds.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError

#: class-conditional noise parametrised by a rate ``r`` (the dataset must allow it)
RATE_TYPES = ("symmetric", "pairflip", "uniform", "asymmetric", "instance")
#: the synthetic noise types: drawn on top of clean labels
NOISE_TYPES = RATE_TYPES + ("matrix", "none")
#: the noise type of labels used as given (a dataset with real noise: Clothing1M, a user's arrays)
REAL_NOISE = "real"
#: a named set of human-annotated noisy labels the dataset ships beside the clean ones (CIFAR-N)
HUMAN_NOISE = "human"
#: the flip-rate spread of instance-dependent noise (Xia et al. 2020: q_i ~ N(r, 0.1^2) on [0, 1])
INSTANCE_STD = 0.1
#: tolerance of a user-given matrix's row sums
ROW_SUM_TOLERANCE = 1e-6


def transition_matrix(kind: str, rate: float, num_classes: int, mapping: dict[int, int] | None = None) -> torch.Tensor:
    """Row-stochastic ``[C, C]`` float64 transition matrix of a rate-parametrised class-conditional
    family (``mapping``: the dataset's class mapping, for ``asymmetric``)."""
    if kind not in ("symmetric", "pairflip", "uniform", "asymmetric", "none"):
        raise ConfigError(f"unknown class-conditional noise type {kind!r}; allowed: symmetric, pairflip, uniform, "
                          f"asymmetric, none")
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"noise rate must lie in [0, 1), got {rate!r}")
    C = num_classes
    eye = torch.eye(C, dtype=torch.float64)
    if kind == "asymmetric":
        if mapping is None:
            raise ConfigError("asymmetric noise needs the dataset's class mapping (asymmetric_map)")
        return asymmetric_matrix(mapping, rate, C)
    if kind == "none" or rate == 0.0:
        return eye
    if kind == "symmetric":
        off = (torch.ones(C, C, dtype=torch.float64) - eye) * (rate / (C - 1))
        return eye * (1.0 - rate) + off
    if kind == "pairflip":
        shift = torch.roll(eye, shifts=1, dims=1)  # row c has its 1 at column (c + 1) mod C
        return eye * (1.0 - rate) + shift * rate
    # uniform: (1 - r) I + r / C * ones
    return eye * (1.0 - rate) + torch.full((C, C), rate / C, dtype=torch.float64)


def asymmetric_matrix(mapping: dict[int, int], rate: float, num_classes: int) -> torch.Tensor:
    """``T[s, s] = 1 - r`` and ``T[s, t] = r`` for every ``s -> t`` of ``mapping`` (``s != t``);
    unmapped classes keep their label."""
    T = torch.eye(num_classes, dtype=torch.float64)
    for s, t in mapping.items():
        if not (0 <= s < num_classes and 0 <= t < num_classes) or s == t:
            raise ConfigError(f"asymmetric mapping {s} -> {t} is not a flip between two of {num_classes} classes")
        T[s, s] = 1.0 - rate
        T[s, t] = rate
    return T


def block_successor_map(num_classes: int, block: int) -> dict[int, int]:
    """Within each block of ``block`` consecutive class indices, class -> the next one (wrapping
    inside the block): CIFAR-100's asymmetric noise (blocks of 5)."""
    return {c: (c // block) * block + (c % block + 1) % block for c in range(num_classes)}


def check_matrix(m, num_classes: int) -> str | None:
    """What is wrong with a user-given transition matrix (``None``: nothing): its shape must be
    ``C x C``, its entries in [0, 1], each row sum to 1."""
    if isinstance(m, (list, tuple)) and any(isinstance(v, bool) for row in m if isinstance(row, (list, tuple))
                                            for v in row):
        return "entries must be numbers, not true/false"
    try:
        a = np.asarray(m, dtype=np.float64)
    except (TypeError, ValueError):
        return "must be a C x C table of numbers"
    if a.shape != (num_classes, num_classes):
        return f"must be {num_classes} x {num_classes} (the dataset's classes); got shape {a.shape}"
    for i, row in enumerate(a):
        if not np.isfinite(row).all() or (row < 0).any() or (row > 1).any():
            return f"row {i}: entries must lie in [0, 1] (got {row.tolist()})"
        if abs(row.sum() - 1.0) > ROW_SUM_TOLERANCE:
            return f"row {i}: sums to {row.sum():.6g}, must sum to 1"
    return None


def read_matrix(path) -> np.ndarray:
    """A transition matrix from a ``.npy`` file or a comma-separated text file (any other
    suffix); raises OSError / ValueError when it cannot be read."""
    path = Path(path)
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    return np.loadtxt(path, delimiter=",", ndmin=2)


def file_sha256(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def expected_rate(T: torch.Tensor) -> float:
    """The expected share of flipped labels under ``T`` with every class equally frequent: the
    mean of ``1 - T[c, c]`` over the classes."""
    return float(1.0 - torch.diagonal(T).mean())


def instance_transition(images: torch.Tensor, labels: torch.Tensor, num_classes: int, rate: float,
                        noise_seed: int, chunk: int = 4096) -> torch.Tensor:
    """Per-sample label distributions ``[N, C]`` (float64) of instance-dependent noise, Xia et al.
    2020 ("Part-dependent label noise"), written from the paper's description:

    * per sample a flip rate ``q_i ~ N(r, 0.1^2)`` truncated to [0, 1];
    * a seeded random projection ``W in R^{C x d x C}`` (standard normal), ``d`` the pixel count;
    * ``p = x_i^T W[y_i]``; ``p[y_i] = -inf``; ``p = q_i softmax(p)``; ``p[y_i] = 1 - q_i``.

    ``x_i`` is the image flattened and standardised per channel with the training set's mean and
    std (the normalisation the original experiments fed their networks). So a sample keeps its
    label with probability ``1 - q_i`` and, when flipped, goes to classes its own pixels favour:
    two images of one class get different flip distributions. Vectorised: one matrix product per
    class and chunk of images, no loop over samples. ``r = 0`` keeps every label (the truncated
    normal alone would flip about 8%: half of N(0, 0.1^2))."""
    from scipy.stats import truncnorm

    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"noise rate must lie in [0, 1), got {rate!r}")
    n, C = images.shape[0], num_classes
    labels = labels.long().cpu()
    if rate == 0.0:
        return torch.eye(C, dtype=torch.float64)[labels]
    rng = np.random.default_rng([int(noise_seed), 20200707])
    lo, hi = (0.0 - rate) / INSTANCE_STD, (1.0 - rate) / INSTANCE_STD
    q = torch.from_numpy(truncnorm.rvs(lo, hi, loc=rate, scale=INSTANCE_STD, size=n, random_state=rng))
    x = images.reshape(n, images.shape[1], -1).to(torch.float32)
    mean = x.mean(dim=(0, 2), keepdim=True)
    std = x.std(dim=(0, 2), keepdim=True).clamp_min(1e-6)
    d = x.shape[1] * x.shape[2]
    W = torch.from_numpy(rng.standard_normal((C, d, C), dtype=np.float32))
    rows = torch.empty(n, C, dtype=torch.float64)
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).squeeze(1)
        for start in range(0, idx.numel(), chunk):
            part = idx[start:start + chunk]
            feats = ((x[part] - mean) / std).reshape(part.numel(), d)
            p = (feats @ W[c]).double()
            p[:, c] = -math.inf
            rows[part] = torch.softmax(p, dim=1) * q[part, None]
            rows[part, c] = 1.0 - q[part]
    return rows


def draw_labels(rows: torch.Tensor, noise_seed: int) -> torch.Tensor:
    """One label per row of the ``[N, C]`` probability table ``rows`` (seeded, CPU, vectorised)."""
    gen = torch.Generator().manual_seed(int(noise_seed))
    return torch.multinomial(rows, 1, generator=gen).squeeze(1)


def corrupt_labels(clean: torch.Tensor, T: torch.Tensor, noise_seed: int) -> torch.Tensor:
    """Draw one noisy label per sample from row ``T[clean_i]`` (vectorised, CPU, seeded)."""
    return draw_labels(T[clean.long().cpu()], noise_seed).to(clean.dtype)


def realised_rate(clean: torch.Tensor, noisy: torch.Tensor) -> float:
    """Fraction of samples whose noisy label differs from the clean one."""
    return float((clean != noisy).double().mean()) if clean.numel() else 0.0


def empirical_transition(clean: torch.Tensor, noisy: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The realised ``[C, C]`` transition matrix: row ``i`` is the distribution of the noisy
    labels of the samples of clean class ``i`` (a row of zeros for an absent class)."""
    counts = torch.zeros(num_classes, num_classes, dtype=torch.float64)
    counts.index_put_((clean.long().cpu(), noisy.long().cpu()), torch.ones(clean.numel(), dtype=torch.float64),
                      accumulate=True)
    return counts / counts.sum(1, keepdim=True).clamp_min(1.0)
