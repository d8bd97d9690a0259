"""Device-resident data path: the dataset lives as uint8 tensors on the training device, an
epoch is a permutation drawn from the run's own generator, a batch is an index slice, and
images are turned into floats (and augmented, a few batches at a time) on the device.

A method talks to its data only through the interface :class:`tune_lnl.data.protocols.TrainingData`
declares; :class:`DeviceData` is its in-memory implementation (a streamed dataset's device view,
e.g. Clothing1M's in :mod:`tune_lnl.data.clothing1m`, is another). Besides the interface it
keeps ``device`` and ``default_augment`` (the dataset's batched augmentation).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch

from .augment import Augmentation, resolve_augment
from .proxies import PROXIES

if TYPE_CHECKING:
    from .splits import NoisyData


#: images gathered and augmented at once (rounded down to whole batches, at least one)
CHUNK = 512


class DeviceData:
    """One run's in-memory data on the training device: a
    :class:`~tune_lnl.data.protocols.TrainingData` (see there for what each member means).
    Shared, read-only, by the methods of a process that load the same data
    (:func:`tune_lnl.data.cache.cached_noisy_data`)."""
    in_memory = True

    def __init__(self, data: "NoisyData", device: torch.device):
        self.device = device
        to = lambda t: t.to(device, non_blocking=True)
        self.train_x, self.train_noisy, self.train_clean = map(to, (data.train_x, data.train_noisy, data.train_clean))
        self.val_x, self.val_noisy, self.val_clean = map(to, (data.val_x, data.val_noisy, data.val_clean))
        self.test_x, self.test_y = to(data.test_x), to(data.test_y)
        empty = torch.empty((0, *data.train_x.shape[1:]), dtype=data.train_x.dtype)
        self.cval_x = to(data.cval_x if data.cval_x is not None else empty)
        self.cval_y = to(data.cval_y if data.cval_y is not None else torch.empty(0, dtype=torch.long))
        #: every training label's clean value is known (else no clean_intact split: real noise)
        self._clean_known = bool((data.train_clean >= 0).all())
        # what clean_intact scores: every training image, or the seeded sample of them
        # (tune_lnl.data.splits.CLEAN_INTACT_SAMPLE) when it does not select
        if data.intact_index is None:
            self.intact_x, self.intact_clean = self.train_x, self.train_clean
        else:
            idx = data.intact_index.to(device)
            self.intact_x, self.intact_clean = self.train_x[idx], self.train_clean[idx]
        self.num_classes = data.num_classes
        self.image_shape = data.image_shape  # (C, H, W) the model sees
        self.info = data.info
        self.default_augment = data.augment

    def batches(self, batch_size: int, generator: torch.Generator, augment: Callable | None):
        """One epoch of ``(dataset indices, float images, noisy labels)``, all on the device:
        slices of one permutation from ``generator``; the last partial batch is dropped only if
        it has a single sample (batch statistics need two).

        An :class:`~tune_lnl.data.augment.Augmentation` draws its parameters for the whole epoch
        after the permutation, and the images are gathered, converted and augmented
        :data:`CHUNK` images (whole batches) at a time, each batch a slice of its chunk: the
        same images as batch by batch (each depends only on its own draws), but the
        augmentation no longer alternates with training every batch, which on one CPU core cost
        it about a third more time (``docs/benchmarks.md`` section 6).  Any other
        ``augment(x, generator)`` is called per batch."""
        n = self.n_train
        perm = torch.randperm(n, generator=generator, device=self.device)
        plan = (augment.draw(n, tuple(self.train_x.shape[1:]), generator, self.device)
                if isinstance(augment, Augmentation) else None)
        span = batch_size * max(1, CHUNK // batch_size) if plan is not None else batch_size
        for c0 in range(0, n, span):
            chunk = perm[c0:c0 + span]
            if chunk.numel() < 2:  # a last single sample makes no batch
                continue
            xs = to_float(self.train_x.index_select(0, chunk))
            if plan is not None:
                xs = augment.apply(xs, {k: v[c0:c0 + span] for k, v in plan.items()})
            elif augment is not None:
                xs = augment(xs, generator)
            ys = self.train_noisy.index_select(0, chunk)
            for start in range(0, chunk.numel(), batch_size):
                if min(batch_size, chunk.numel() - start) >= 2:
                    yield chunk[start:start + batch_size], xs[start:start + batch_size], ys[start:start + batch_size]

    def view_batches(self, plan, augments, generator):
        """``(idx, views, noisy)`` per index tensor of ``plan`` (see
        :meth:`tune_lnl.data.protocols.TrainingData.view_batches`): consecutive entries of the plan
        are gathered, converted and augmented together, about :data:`CHUNK` images at a time (each
        view a fresh augmentation on the device; None: the un-augmented images), and each entry's
        rows are yielded in turn: a few large operations instead of many small ones per batch."""
        sizes = [int(idx.numel()) for idx in plan]
        start = 0
        while start < len(plan):
            end, count = start, 0
            while end < len(plan) and (count == 0 or count + sizes[end] <= CHUNK):
                count += sizes[end]
                end += 1
            idx = torch.cat(list(plan[start:end])) if end - start > 1 else plan[start]
            x = to_float(self.train_x.index_select(0, idx))
            views = [x if aug is None else aug(x, generator) for aug in augments]
            noisy = self.train_noisy.index_select(0, idx)
            offset = 0
            for k in range(start, end):
                rows = slice(offset, offset + sizes[k])
                offset += sizes[k]
                yield plan[k], [v[rows] for v in views], noisy[rows]
            start = end

    def augmentation(self, value) -> Callable | None:
        """What a run config's ``augment`` means here (:func:`~tune_lnl.data.augment.resolve_augment`)."""
        return resolve_augment(value, self.default_augment)

    def splits(self) -> tuple[str, ...]:
        """``test``, then the proxies this run's data offers, in the registry's order: a noisy or
        clean validation split when it holds images, ``clean_intact`` when every training
        label's clean value is known."""
        offered = {"noisy_val": self.val_x.shape[0] > 0, "clean_val": self.cval_x.shape[0] > 0,
                   "clean_intact": self._clean_known}
        return ("test", *(p for p in PROXIES if offered[p]))

    def _split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return {"train": (self.train_x, self.train_noisy), "test": (self.test_x, self.test_y),
                "noisy_val": (self.val_x, self.val_noisy),
                "clean_val": (self.cval_x, self.cval_y), "clean_intact": (self.intact_x, self.intact_clean)}[split]

    def labels(self, split: str) -> torch.Tensor:
        """The labels a split is scored against (noisy for ``noisy_val``, clean otherwise)."""
        return self._split(split)[1]

    def logits(self, model: torch.nn.Module, split: str) -> torch.Tensor:
        """``model``'s float logits ``[n, C]`` over ``split`` (eval mode, chunked)."""
        return predict_logits(model, self._split(split)[0])

    def accuracy(self, model: torch.nn.Module, split: str) -> float:
        return logits_accuracy(self.logits(model, split), self.labels(split))

    def close(self) -> None:
        """Nothing to release (the tensors are freed with the last reference; the object may be
        shared by other methods of the process)."""

    @property
    def n_train(self) -> int:
        return self.train_x.shape[0]


def to_float(x_uint8: torch.Tensor) -> torch.Tensor:
    return x_uint8.float().div_(255.0)


@torch.no_grad()
def predict_logits(model: torch.nn.Module, x_uint8: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Float logits ``[n, C]`` of ``model`` over a uint8 image tensor, in chunks, eval mode."""
    was_training = model.training
    model.eval()
    out = [model(to_float(x_uint8[i:i + chunk])).float() for i in range(0, x_uint8.shape[0], chunk)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 0, device=x_uint8.device)


def predict(model: torch.nn.Module, x_uint8: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Arg-max predictions of ``model`` over a uint8 image tensor, in chunks, eval mode."""
    if x_uint8.shape[0] == 0:
        return torch.empty(0, dtype=torch.long, device=x_uint8.device)
    return predict_logits(model, x_uint8, chunk).argmax(1)


def logits_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of rows whose arg-max logit is the label; NaN for no rows."""
    return float((logits.argmax(1) == labels).float().mean()) if labels.numel() else float("nan")
