"""Synthetic label noise from an explicit transition matrix.

``T[i, j]`` is the probability that a sample of clean class ``i`` receives the noisy label ``j``.
Three families are provided:

* ``symmetric``: keep the label with probability ``1 - r``, otherwise flip to one of the OTHER
  ``C - 1`` classes uniformly (Co-teaching / MLC definition).
* ``pairflip``: keep with probability ``1 - r``, otherwise ``c -> (c + 1) mod C``.
* ``uniform``: with probability ``r`` replace the label by a uniform draw over ALL ``C`` classes
  (may keep the true label: the IMAE paper's noise; expected realised rate ``r (C - 1) / C``).

Labels are drawn with a dedicated generator seeded by the *noise seed*, independent of every
training seed, so one noise seed fixes one noisy label set across all trials and final seeds.
"""
from __future__ import annotations

import torch

NOISE_TYPES = ("symmetric", "pairflip", "uniform", "none")
#: the noise type of labels used as given (a dataset with real noise: Clothing1M, a user's arrays)
REAL_NOISE = "real"


def transition_matrix(kind: str, rate: float, num_classes: int) -> torch.Tensor:
    """Row-stochastic ``[C, C]`` float64 transition matrix of the given noise family."""
    if kind not in NOISE_TYPES:
        raise ValueError(f"unknown noise type {kind!r}; allowed: {', '.join(NOISE_TYPES)}")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"noise rate must lie in [0, 1), got {rate!r}")
    C = num_classes
    eye = torch.eye(C, dtype=torch.float64)
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


def corrupt_labels(clean: torch.Tensor, T: torch.Tensor, noise_seed: int) -> torch.Tensor:
    """Draw one noisy label per sample from row ``T[clean_i]`` (vectorised, CPU, seeded)."""
    gen = torch.Generator().manual_seed(int(noise_seed))
    rows = T[clean.long().cpu()]  # [N, C]
    return torch.multinomial(rows, 1, generator=gen).squeeze(1).to(clean.dtype)


def realised_rate(clean: torch.Tensor, noisy: torch.Tensor) -> float:
    """Fraction of samples whose noisy label differs from the clean one."""
    return float((clean != noisy).float().mean()) if clean.numel() else 0.0
