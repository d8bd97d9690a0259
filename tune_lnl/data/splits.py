"""From a dataset's arrays to the noisy training data a run trains on: synthetic noise (or the
labels as given), the budget subset, the clean and noisy hold-outs.

Order of operations (so that one noise seed fixes one noisy label set for every trial and seed):
1. the full training set; 2. corrupt ALL training labels with the noise seed (``real`` noise:
the labels as given); 3. optionally keep a seeded random subset (``train_subset``); 4. the clean
validation split: the dataset's own trusted subset (``clean_val_index``) or, with
``clean_val_size`` N > 0, N random training images with their ORIGINAL labels (the small trusted
set a practitioner can afford to label), seeded by the noise seed; 5. a split of the rest
stratified by the NOISY label (the ``noisy_val`` proxy; the only label a practitioner has),
seeded by the noise seed, unless the proxy is ``clean_intact`` (an analysis run over every
training image). Both held-out splits are removed from training and exist whichever of
``noisy_val`` and ``clean_val`` selects, so every proxy is logged each epoch and runs selecting
on either train on the same images. Clean labels (-1 where unknown) travel beside the noisy ones
for the ``clean_intact`` proxy and the analytics; training code only ever reads ``train_noisy``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from ..errors import DataError
from .data_config import DataConfig
from .noise import (
    HUMAN_NOISE,
    REAL_NOISE,
    corrupt_labels,
    draw_labels,
    empirical_transition,
    file_sha256,
    instance_transition,
    read_matrix,
    realised_rate,
    transition_matrix,
)


@dataclass
class Arrays:
    """What an in-memory dataset loads: uint8 images ``[N, C, H, W]`` and int64 labels."""
    train_x: torch.Tensor
    train_y: torch.Tensor                  #: the training labels as the dataset has them
    test_x: torch.Tensor
    test_y: torch.Tensor
    train_clean: torch.Tensor | None = None  #: known clean labels (real noise), -1 where unknown
    clean_val_index: torch.Tensor | None = None  #: a trusted clean subset of the training set
    #: named sets of human-annotated noisy training labels (``noise: {type: human, labels: NAME}``);
    #: ``train_y`` then holds the clean labels
    label_sets: dict[str, torch.Tensor] | None = None


@dataclass
class NoisyData:
    train_x: torch.Tensor          # uint8 [N, C, H, W]
    train_noisy: torch.Tensor      # int64 [N]: the labels training sees
    train_clean: torch.Tensor      # int64 [N]: never reaches a loss (-1: unknown)
    val_x: torch.Tensor            # held-out noisy validation images (may be empty)
    val_noisy: torch.Tensor
    val_clean: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    #: [C, C] the matrix the noise was drawn from; the realised one for instance-dependent and human
    #: noise (no single matrix draws those); empty for real noise
    transition: torch.Tensor
    info: dict = field(default_factory=dict)  # realised noise rates, sizes
    augment: Callable | None = None  # the dataset's batched on-device augmentation f(x, generator)
    cval_x: torch.Tensor | None = None  # the clean held-out subset (may be None)
    cval_y: torch.Tensor | None = None  # ... with its ORIGINAL (clean) labels
    #: positions in the (subset) training set of each split: ``train``, ``noisy_val``, ``clean_val``
    split_index: dict = field(default_factory=dict)
    #: positions in ``train_x`` that ``clean_intact`` scores (None: all of them); see :data:`CLEAN_INTACT_SAMPLE`
    intact_index: torch.Tensor | None = None

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    def to_device(self, device: torch.device):
        from .device import DeviceData
        return DeviceData(self, device)


#: ``clean_intact`` is an analysis proxy scored every epoch over the training images; when it does
#: not select and the training split holds more than twice this many images, a seeded sample of
#: this many (the same for every epoch, trial and seed of a setting) estimates it to about +-0.5
#: percentage points (one standard error at 50%) at a fraction of the cost of a pass over all of
#: them (MNIST: 10,000 of 54,000). When it selects (``proxy: clean_intact``) every training image
#: counts.
CLEAN_INTACT_SAMPLE = 10_000


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


def split_problem(n: int, val_fraction: float, n_clean_val: int = 0, proxy: str = "noisy_val") -> str | None:
    """Why ``n`` training images (after ``train_subset``) cannot be split as a run config asks
    (None: they can): the ``n_clean_val`` images of the clean validation set must leave some, and
    unless the proxy is ``clean_intact`` the rest must give both a noisy validation set
    (``round(val_fraction x rest)`` images, at least 1) and a training set. (The hold-out is
    stratified by class, so a split that passes here can still come out empty per class:
    :func:`make_noisy_data` refuses that.)"""
    rest = n - n_clean_val
    if rest < 1:
        return (f"{n} training images leave none for training once the {n_clean_val} of the clean validation set "
                f"are held out; give more images or a smaller clean_val_size")
    if proxy == "clean_intact":
        return None
    held = round(val_fraction * rest)
    if held < 1 or held >= rest:
        return (f"{rest} training images cannot be split into a {100 * val_fraction:g}% noisy validation set "
                f"(val_fraction {val_fraction}) and a training set: {held} would be held out; give more images or "
                f"change val_fraction")
    return None


def seeded_subset(n: int, size: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(int(seed) + 104729)
    return torch.sort(torch.randperm(n, generator=gen)[:size]).values


def noisy_labels(arrays: Arrays, num_classes: int, cfg: DataConfig, asymmetric_map: dict | None = None):
    """``(noisy, clean, T)`` for the whole training set under the run config's noise (keys
    ``noise_type``, ``noise_rate``, ``noise_seed``, ``noise_options``); ``clean`` is -1 where
    unknown, ``T`` the transition matrix (see :class:`NoisyData`)."""
    kind, opts, seed = cfg.noise_type, cfg.noise_options, cfg.noise_seed
    given = arrays.train_y.long()
    if kind == REAL_NOISE:
        clean = arrays.train_clean.long() if arrays.train_clean is not None else torch.full_like(given, -1)
        return given, clean, torch.empty(0, 0, dtype=torch.float64)
    if kind == HUMAN_NOISE:
        sets = arrays.label_sets or {}
        if opts.get("labels") not in sets:
            raise DataError(f"dataset {cfg.dataset} has no human label set {opts.get('labels')!r}; it has: "
                            f"{', '.join(sets) or 'none'}")
        noisy = sets[opts["labels"]].long()
        return noisy, given, empirical_transition(given, noisy, num_classes)
    rate = float(cfg.noise_rate)
    if kind == "instance":  # one row per sample; T: the realised matrix
        noisy = draw_labels(instance_transition(arrays.train_x, given, num_classes, rate, seed), seed)
        return noisy, given, empirical_transition(given, noisy, num_classes)
    if kind == "matrix":
        T = torch.tensor(_matrix_rows(opts), dtype=torch.float64)
    else:
        T = transition_matrix(kind, rate, num_classes, asymmetric_map)
    return corrupt_labels(given, T, seed), given, T


def _matrix_rows(opts: dict):
    """The rows of a ``matrix`` noise: inline, or read from its file, which must still be the
    file the space was validated with (its sha256)."""
    if "matrix" in opts:
        return opts["matrix"]
    try:
        digest = file_sha256(opts["path"])
        rows = read_matrix(opts["path"])
    except (OSError, ValueError) as exc:
        raise DataError(f"{opts['path']}: cannot read the noise matrix ({type(exc).__name__}: {exc})") from None
    if digest != opts["sha256"]:
        raise DataError(f"{opts['path']}: the noise matrix file changed since the space file was validated "
                        f"(sha256 {digest[:12]}..., expected {opts['sha256'][:12]}...): its runs would not be "
                        f"comparable; restore it or start a new experiment")
    return rows


def make_noisy_data(arrays: Arrays, num_classes: int, cfg: DataConfig, augment: Callable | None = None,
                    asymmetric_map: dict | None = None) -> NoisyData:
    """The run config's noisy data (keys: noise_type, noise_rate, noise_seed, noise_options, proxy,
    val_fraction, clean_val_size, train_subset, test_subset) from a dataset's arrays
    (``asymmetric_map``: the dataset's class mapping of ``asymmetric`` noise)."""
    cfg = DataConfig.of(cfg)
    train_x, given, test_x, test_y = arrays.train_x, arrays.train_y.long(), arrays.test_x, arrays.test_y.long()
    n_all = train_x.shape[0]
    noisy, clean, T = noisy_labels(arrays, num_classes, cfg, asymmetric_map)
    trusted = torch.zeros(n_all, dtype=torch.bool)
    if arrays.clean_val_index is not None:
        trusted[arrays.clean_val_index.long()] = True
    if cfg.train_subset:
        keep = seeded_subset(n_all, int(cfg.train_subset), cfg.noise_seed)
        train_x, given, noisy, clean, trusted = train_x[keep], given[keep], noisy[keep], clean[keep], trusted[keep]
    if cfg.test_subset:
        keep = seeded_subset(test_x.shape[0], int(cfg.test_subset), cfg.noise_seed + 1)
        test_x, test_y = test_x[keep], test_y[keep]
    n = train_x.shape[0]
    n_cval = int(cfg.clean_val_size)
    if n_cval >= n:
        raise DataError(f"dataset {cfg.dataset}: clean_val_size {n_cval} leaves no training image (the "
                        f"training set has {n})")
    if arrays.clean_val_index is not None:  # the dataset's own trusted subset, labels as given
        cv = torch.nonzero(trusted).squeeze(1)
        cval_y = given[cv]
    else:
        cv = seeded_subset(n, n_cval, cfg.noise_seed + 2) if n_cval else torch.empty(0, dtype=torch.long)
        cval_y = clean[cv]
    rest = torch.ones(n, dtype=torch.bool)
    rest[cv] = False
    rest = torch.nonzero(rest).squeeze(1)
    if cfg.proxy == "clean_intact":  # an analysis run over every training image: no noisy hold-out
        tr, va = rest, torch.empty(0, dtype=torch.long)
    else:
        tr, va = stratified_holdout(noisy[rest], float(cfg.val_fraction), cfg.noise_seed)
        tr, va = rest[tr], rest[va]
        if not va.numel() or not tr.numel():  # (split_problem passed on the totals; the classes decide)
            raise DataError(f"dataset {cfg.dataset}: {rest.numel()} training images cannot be split into a "
                            f"{100 * float(cfg.val_fraction):g}% noisy validation set and a training set: "
                            f"stratified by class (round(val_fraction x the class's images) of each), "
                            f"{va.numel()} would be held out; give more images per class or change val_fraction")
    intact = (seeded_subset(tr.numel(), CLEAN_INTACT_SAMPLE, cfg.noise_seed + 3)
              if cfg.proxy != "clean_intact" and tr.numel() > 2 * CLEAN_INTACT_SAMPLE else None)
    data = NoisyData(train_x[tr], noisy[tr], clean[tr], train_x[va], noisy[va], clean[va],
                     test_x, test_y, num_classes, T, augment=augment, cval_x=train_x[cv], cval_y=cval_y,
                     split_index={"train": tr, "noisy_val": va, "clean_val": cv}, intact_index=intact)
    known = clean >= 0
    data.info = {
        "noise_type": cfg.noise_type,
        "noise_rate_realised": realised_rate(clean, noisy) if bool(known.all()) else None,
        "noise_rate_realised_train": realised_rate(data.train_clean, data.train_noisy) if bool(known.all()) else None,
        "n_train": int(tr.numel()), "n_val": int(va.numel()), "n_clean_val": int(cv.numel()),
        "n_clean_intact": (int(tr.numel() if intact is None else intact.numel()) if bool(known.all()) else 0),
        "n_test": int(test_y.numel()),
    }
    return data
