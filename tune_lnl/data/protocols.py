"""The declared interfaces between the data layer and the methods.

* :class:`HostData`: what a dataset's :meth:`~tune_lnl.data.base.Dataset.noisy_data` returns
  (one run's data, still on the host): an object with ``to_device(device)``.
* :class:`TrainingData`: what ``to_device`` returns, and all a method (``Method.data``) uses of
  its data once it is on the training device. Two implementations: the in-memory datasets'
  :class:`tune_lnl.data.device.DeviceData` (every image a uint8 tensor on the device) and
  Clothing1M's :class:`tune_lnl.data.clothing1m.Clothing1MDeviceData` (images streamed from
  disk by DataLoader workers); a :class:`~tune_lnl.data.base.StreamedDataset` of your own
  implements it too.

Both are :func:`typing.runtime_checkable`: ``isinstance(x, TrainingData)`` tells whether ``x``
has every member (not their signatures). ``tests/unit/data/test_data_contracts.py`` checks both built-in
implementations.

Splits: ``test`` (clean labels; logged, never selects) and the model-selection proxies of
:data:`tune_lnl.data.proxies.PROXIES` that this run's data offers.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class TrainingData(Protocol):
    """One run's data on the training device (see the module's docstring)."""

    #: the number of classes C; labels are class indices in ``[0, C)``
    num_classes: int
    #: ``(C, H, W)`` of the float images the model sees (after any crop)
    image_shape: tuple[int, int, int]
    #: True: every split is cheap to score every epoch (held on the device); False: streamed
    #: from disk, so the analysis-only proxies are scored only when they select
    #: (:attr:`tune_lnl.data.proxies.Proxy.streamed_policy`)
    in_memory: bool
    #: facts about the run's data for logs and results: ``n_train``, ``n_val``, ``n_test``
    #: (image counts), optionally ``noise_rate_realised`` (the share of flipped training labels)
    info: dict
    #: int64 ``[n_train]`` on the device: the (noisy) labels training uses
    train_noisy: torch.Tensor
    #: int64 ``[n_train]`` on the device: the clean value of each training label, -1 where
    #: unknown; for analytics (and the ``clean_intact`` proxy) only, never for training
    train_clean: torch.Tensor

    @property
    def n_train(self) -> int:
        """The number of training images (the length of ``train_noisy``)."""

    def augmentation(self, value) -> Callable | None:
        """What a run config's ``augment`` means for this data: a batched on-device
        augmentation ``f(x, generator)``, or None for none. Raises
        :class:`~tune_lnl.errors.ConfigError` for a value the data does not offer."""

    def batches(self, batch_size: int, generator: torch.Generator,
                augment: Callable | None) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """One epoch of ``(idx, x, noisy)`` batches on the device: ``idx`` int64 ``[B]``
        positions in the training set (slices of one permutation drawn from ``generator``),
        ``x`` float ``[B, *image_shape]`` in [0, 1] (augmented by ``augment`` when given),
        ``noisy`` int64 ``[B]`` = ``train_noisy[idx]``. A last batch of one image is dropped."""

    def view_batches(self, plan: list[torch.Tensor], augments: Sequence[Callable | None],
                     generator: torch.Generator) -> Iterator[tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]]:
        """``(idx, views, noisy)`` for each int64 index tensor ``idx`` of ``plan`` (training positions,
        any order, repeats allowed), in order: the images gathered once and made float, one view per
        entry of ``augments`` (a batched augmentation ``f(x, generator)``, or None: un-augmented),
        ``noisy = train_noisy[idx]``. What the semi-supervised methods train on (a weak and a strong
        view of labeled and unlabeled samples: :mod:`tune_lnl.methods.semi`)."""

    def splits(self) -> tuple[str, ...]:
        """The evaluation splits this run's data offers: ``test``, then the proxies it has, in
        the order of :data:`tune_lnl.data.proxies.PROXIES`."""

    def labels(self, split: str) -> torch.Tensor:
        """int64 ``[n]`` on the device: the labels ``split`` is scored against (noisy for
        ``noisy_val``, clean otherwise). ``train`` (never listed by :meth:`splits`, never scored):
        ``train_noisy``."""

    def logits(self, model: torch.nn.Module, split: str) -> torch.Tensor:
        """Float ``[n, num_classes]``: ``model``'s logits over ``split`` in the order of
        :meth:`labels` (eval mode; ``model.training`` restored). ``split`` may also be ``train``:
        the training images in index order, un-augmented (what methods that estimate a noise
        transition matrix or a label prior from the network's predictions read)."""

    def accuracy(self, model: torch.nn.Module, split: str) -> float:
        """The share of ``split`` whose arg-max logit is its label (NaN for an empty split)."""

    def close(self) -> None:
        """Release what the data holds open (a streamed dataset's decoding workers); the object
        may not be used after. A no-op for in-memory data."""


@runtime_checkable
class HostData(Protocol):
    """One run's data as :meth:`~tune_lnl.data.base.Dataset.noisy_data` returns it (noise
    applied, splits made), before it moves to the training device."""

    def to_device(self, device: torch.device | str) -> TrainingData:
        """The data on ``device``: a :class:`TrainingData`."""
