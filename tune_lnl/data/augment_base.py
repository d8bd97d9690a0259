"""The interface of a batched augmentation whose draws can be made for a whole epoch at once
(:class:`Augmentation`): the base of :mod:`tune_lnl.data.augment`'s and
:mod:`tune_lnl.data.randaugment`'s augmentations (re-exported by :mod:`tune_lnl.data.augment`)."""
from __future__ import annotations

import torch
from torch import Tensor


class Augmentation:
    """A batched augmentation whose random draws can be made for a whole epoch at once.

    ``draw(n, shape, generator, device)`` draws the per-sample parameters of ``n`` images of
    ``shape`` ``(C, H, W)``, in the order the images will come: a flat dict of tensors whose
    first dimension is ``n``.  ``apply(x, params)`` augments a batch ``[B, C, H, W]`` with its
    ``B`` rows of them; it may overwrite ``x`` (the data path hands it a fresh batch).  Calling it,
    ``f(x, generator)``, draws for that batch and applies to a copy of ``x``: the plain protocol
    every augmentation follows (a user's own may be any such function).

    :class:`~tune_lnl.data.device.DeviceData` draws once per epoch and slices the draws per
    batch: a few large operations instead of dozens of small ones per batch (on one CPU core,
    MNIST's augmentation took 0.60 s per epoch drawn batch by batch, 0.44 s drawn per epoch;
    ``docs/benchmarks.md`` section 6).  Each image's output depends only on its own row of
    the draws: augmenting a batch in slices, each with its rows, gives the batch's images.
    """

    def draw(self, n: int, shape: tuple[int, ...], generator: torch.Generator,
             device: torch.device) -> dict[str, Tensor]:
        raise NotImplementedError

    def apply(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        raise NotImplementedError

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return self.apply(x.clone(), self.draw(x.shape[0], tuple(x.shape[1:]), generator, x.device))
