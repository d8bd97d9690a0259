"""Clothing1M: 1M clothing photos from shopping sites, 14 classes, real (not synthetic) label noise.

The images do not fit on the training device, so unlike MNIST/CIFAR (:mod:`tune_lnl.data.device`)
they stream from disk: DataLoader workers decode JPEGs to uint8 256x256, the batch moves to the
device, and cropping to 224 (random crop + flip for training, centre crop otherwise) and the
conversion to float in [0, 1] happen there, batch-wise. ImageNet normalisation is the model's
first layer (:func:`resnet18_imagenet`).

Expected layout (the official release; ``<root>`` is ``--data-root`` / ``$TUNE_LNL_DATA``)::

    <root>/clothing1m/
        images/0/00/<name>.jpg ...        image folders (any layout: keys are paths relative to
                                          <root>/clothing1m/, exactly as the lists spell them)
        noisy_label_kv.txt                "<key> <label 0-13>" per line: the noisy (web) labels
        clean_label_kv.txt                "<key> <label 0-13>" per line: the human-checked labels
        noisy_train_key_list.txt          one key per line: the (noisy) training set
        clean_val_key_list.txt            one key per line: the clean validation set
        clean_test_key_list.txt           one key per line: the clean test set

(the release ships the five lists in an ``annotations/`` sub-folder: copy or link them up one
level, or leave them there: ``annotations/`` is searched when a list is absent at the top).

Splits: *train* = the noisy_train keys with their noisy labels (clean label where
``clean_label_kv`` has the key, else -1: never used by training, only for analytics and the
``clean_intact`` proxy); *clean_val* = the val keys with their clean labels; *test* = the test
keys with their clean labels. Order of operations (as for MNIST in :mod:`tune_lnl.data`):
1. optional seeded random ``train_subset`` of the training keys; 2. for the ``noisy_val`` proxy,
a hold-out of ``val_fraction`` stratified by the noisy label and seeded by ``noise_seed``,
removed from training. ``noise_type`` / ``noise_rate`` do not apply: the noise is the dataset's.

Run-config keys read by :func:`load_clothing1m`: ``data_root``, ``proxy`` (``clean_val`` default,
``noisy_val``, ``clean_intact`` = training images whose clean label is known), ``val_fraction``,
``noise_seed``, ``train_subset`` / ``test_subset`` (0 = all); optional ``clean_val_subset``,
``num_workers`` (absent or -1: ``min(8, os.cpu_count())``), ``eval_batch_size`` (256),
``prefetch_factor`` (2). The training batch size is an argument of ``batches``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..errors import ConfigError, DataError
from .augment import center_crop, random_crop_flip
from .base import StreamedDataset
from .data_config import DataConfig
from .device import logits_accuracy
from .noise import REAL_NOISE
from .proxies import PROXIES
from .splits import seeded_subset, stratified_holdout

NUM_CLASSES = 14
#: category names in label order (``category_names_eng.txt`` of the release); for display only
CLASS_NAMES = ("T-Shirt", "Shirt", "Knitwear", "Chiffon", "Sweater", "Hoodie", "Windbreaker",
               "Jacket", "Down Coat", "Suit", "Shawl", "Dress", "Vest", "Underwear")
FOLDER = "clothing1m"
LABEL_FILES = ("noisy_label_kv.txt", "clean_label_kv.txt")
KEY_FILES = ("noisy_train_key_list.txt", "clean_val_key_list.txt", "clean_test_key_list.txt")
LIST_FILES = LABEL_FILES + KEY_FILES
DECODE_SIZE = 256   #: side of the square uint8 images the workers produce
CROP_SIZE = 224     #: side of the images the model sees
#: every evaluation split, in the order ``splits()`` gives them (the proxies: the registry's)
SPLITS = ("test", *PROXIES)



class Clothing1MError(DataError, ValueError):
    """Clothing1M lists that exist but are inconsistent or malformed, or an unreadable image
    (a :class:`~tune_lnl.errors.DataError`; also a ``ValueError``, as it was before: callers catch that)."""


# ------------------------------------------------------------------------------------------------
# lists
# ------------------------------------------------------------------------------------------------

@dataclass
class Clothing1MLists:
    """The three splits of the official lists, labels as int64 tensors, keys as Python lists."""
    folder: Path
    train_keys: list[str]
    train_noisy: torch.Tensor   # int64 [N]
    train_clean: torch.Tensor   # int64 [N]; -1 where clean_label_kv has no entry
    val_keys: list[str]
    val_labels: torch.Tensor    # clean
    test_keys: list[str]
    test_labels: torch.Tensor   # clean


def _find_lists(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise DataError(
            f"Clothing1M not found: the folder {folder} does not exist. It must hold the image "
            f"folders and the lists {', '.join(LIST_FILES)} (see tune_lnl/clothing1m.py); point "
            f"--data-root / TUNE_LNL_DATA at the folder that contains '{FOLDER}/'.")
    found, missing = {}, []
    for name in LIST_FILES:
        for cand in (folder / name, folder / "annotations" / name):
            if cand.is_file():
                found[name] = cand
                break
        else:
            missing.append(name)
    if missing:
        raise DataError(
            f"Clothing1M in {folder} is incomplete: missing {', '.join(missing)} "
            f"(looked in {folder} and {folder / 'annotations'}).")
    return found


def _read_lines(path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """(line number, raw line, fields) for each non-blank line."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if parts:
                yield lineno, line.rstrip("\r\n"), parts


def read_label_kv(path: Path, num_classes: int = NUM_CLASSES) -> dict[str, int]:
    """``{key: label}`` from a ``<key> <label>`` file; a repeated key keeps its last label."""
    out: dict[str, int] = {}
    for lineno, line, parts in _read_lines(path):
        if len(parts) != 2:
            raise Clothing1MError(f"{path}, line {lineno}: malformed line {line!r} "
                                  f"(expected '<relative image path> <label 0-{num_classes - 1}>')")
        key, lab = parts
        try:
            label = int(lab)
        except ValueError:
            raise Clothing1MError(f"{path}, line {lineno}: malformed line {line!r} "
                                  f"(the label {lab!r} is not an integer)") from None
        if not 0 <= label < num_classes:
            raise Clothing1MError(f"{path}, line {lineno}: label {label} outside 0..{num_classes - 1} "
                                  f"in line {line!r}")
        out[key] = label
    return out


def read_key_list(path: Path) -> list[str]:
    keys = []
    for lineno, line, parts in _read_lines(path):
        if len(parts) != 1:
            raise Clothing1MError(f"{path}, line {lineno}: malformed line {line!r} "
                                  f"(expected one relative image path)")
        keys.append(parts[0])
    return keys


def _labels_of(keys: list[str], table: dict[str, int], key_file: Path, label_file: Path) -> torch.Tensor:
    try:
        return torch.tensor([table[k] for k in keys], dtype=torch.long)
    except KeyError as exc:
        key = exc.args[0]
        missing = [k for k in keys if k not in table]
        raise Clothing1MError(
            f"key {key!r} listed in {key_file} (line {keys.index(key) + 1}) has no label in "
            f"{label_file} ({len(missing)} keys of that list lack one)") from None


def parse_clothing1m(folder: str | os.PathLike) -> Clothing1MLists:
    """Read and cross-check the five lists of a Clothing1M folder (``<root>/clothing1m``)."""
    folder = Path(folder)
    files = _find_lists(folder)
    noisy_kv = read_label_kv(files["noisy_label_kv.txt"])
    clean_kv = read_label_kv(files["clean_label_kv.txt"])
    train_keys = read_key_list(files["noisy_train_key_list.txt"])
    val_keys = read_key_list(files["clean_val_key_list.txt"])
    test_keys = read_key_list(files["clean_test_key_list.txt"])
    train_noisy = _labels_of(train_keys, noisy_kv, files["noisy_train_key_list.txt"], files["noisy_label_kv.txt"])
    train_clean = torch.tensor([clean_kv.get(k, -1) for k in train_keys], dtype=torch.long)
    val_labels = _labels_of(val_keys, clean_kv, files["clean_val_key_list.txt"], files["clean_label_kv.txt"])
    test_labels = _labels_of(test_keys, clean_kv, files["clean_test_key_list.txt"], files["clean_label_kv.txt"])
    return Clothing1MLists(folder, train_keys, train_noisy, train_clean, val_keys, val_labels,
                           test_keys, test_labels)


# ------------------------------------------------------------------------------------------------
# decoding (runs in DataLoader workers)
# ------------------------------------------------------------------------------------------------

def decode_image(path: str | os.PathLike, size: int = DECODE_SIZE) -> torch.Tensor:
    """A JPEG (or any PIL-readable image) as uint8 ``[3, size, size]``.

    ``Image.draft`` lets libjpeg decode at 1/2, 1/4 or 1/8 scale when the image is at least
    2x larger than ``size`` on both sides; then RGB, bilinear resize to exactly ``size``."""
    from PIL import Image

    with Image.open(path) as im:
        im.draft("RGB", (size, size))
        im = im.convert("RGB")
        if im.size != (size, size):
            im = im.resize((size, size), Image.BILINEAR)
        arr = np.array(im)  # writable copy (torch.from_numpy warns on PIL's read-only view)
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


class Clothing1MImages(Dataset):
    """Row ``i`` → ``(uint8 [3, 256, 256], i)``. Keys are kept as one numpy byte-string array,
    not a list of Python strings, so forked workers do not copy them page by page (refcounts)."""

    def __init__(self, folder: str | os.PathLike, keys: np.ndarray, size: int = DECODE_SIZE):
        self.folder = os.fspath(folder)
        self.keys = keys
        self.size = size

    def __len__(self) -> int:
        return len(self.keys)

    def path(self, i: int) -> str:
        return os.path.join(self.folder, self.keys[i].decode("utf-8"))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path = self.path(i)
        try:
            return decode_image(path, self.size), i
        except FileNotFoundError:
            raise DataError(f"Clothing1M image {path} is listed but does not exist") from None
        except Exception as exc:
            raise Clothing1MError(f"cannot decode Clothing1M image {path}: "
                                  f"{type(exc).__name__}: {exc}") from None


class _BatchPlan:
    """The loader's ``batch_sampler``: a list of row-index batches, replaced before each pass
    (iterated in the main process, so persistent workers see every new plan)."""

    def __init__(self):
        self.batches: list[list[int]] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


# ------------------------------------------------------------------------------------------------
# on-device cropping
# ------------------------------------------------------------------------------------------------

def clothing1m_augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The standard Clothing1M training augmentation on the decoded 256x256 batch: per-sample
    random 224 crop + horizontal flip (p=1/2), drawn from ``generator`` on ``x.device`` (one
    gather; :func:`tune_lnl.data.augment.random_crop_flip`); any dtype."""
    return random_crop_flip(x, generator, CROP_SIZE, padding=0, flip=True)



def _to_float(x_uint8: torch.Tensor) -> torch.Tensor:
    return x_uint8.float().div_(255.0)


# ------------------------------------------------------------------------------------------------
# host side
# ------------------------------------------------------------------------------------------------

def default_num_workers() -> int:
    return min(8, os.cpu_count() or 1)


class Clothing1MData:
    """Clothing1M for one run: image keys and label tensors on the host (no pixels);
    :meth:`to_device` gives the streaming, device-side view methods train on.

    Rows: all images the run uses live in one table (``keys``); each split is a vector of rows
    into it (``train_rows``, ``split_rows[split]``)."""

    num_classes = NUM_CLASSES
    image_shape = (3, CROP_SIZE, CROP_SIZE)
    #: batched on-device training augmentation (float 256 batch -> 224 crop)
    augment = staticmethod(clothing1m_augment)

    def __init__(self, cfg: DataConfig):
        root = Path(cfg.data_root).expanduser().resolve()
        self.folder = root / FOLDER
        proxy = cfg.proxy
        if not isinstance(proxy, str) or proxy not in PROXIES:
            raise ConfigError(f"unknown proxy {proxy!r} for Clothing1M; allowed: {', '.join(PROXIES)}")
        self.proxy = proxy
        lists = parse_clothing1m(self.folder)
        seed = int(cfg.noise_seed)

        train_keys, noisy, clean = lists.train_keys, lists.train_noisy, lists.train_clean
        if cfg.train_subset:
            keep = seeded_subset(len(train_keys), int(cfg.train_subset), seed)
            train_keys, noisy, clean = [train_keys[i] for i in keep.tolist()], noisy[keep], clean[keep]
        test_keys, test_y = lists.test_keys, lists.test_labels
        if cfg.test_subset:
            keep = seeded_subset(len(test_keys), int(cfg.test_subset), seed + 1)
            test_keys, test_y = [test_keys[i] for i in keep.tolist()], test_y[keep]
        val_keys, val_y = lists.val_keys, lists.val_labels
        if cfg.clean_val_subset:
            keep = seeded_subset(len(val_keys), int(cfg.clean_val_subset), seed + 2)
            val_keys, val_y = [val_keys[i] for i in keep.tolist()], val_y[keep]
        if proxy == "noisy_val":
            tr, va = stratified_holdout(noisy, float(cfg.val_fraction), seed)
        else:
            tr, va = torch.arange(len(train_keys)), torch.empty(0, dtype=torch.long)

        # one row table: train, held-out noisy val, clean val, test
        parts = [[train_keys[i] for i in tr.tolist()], [train_keys[i] for i in va.tolist()], val_keys, test_keys]
        starts = np.cumsum([0] + [len(p) for p in parts])
        rows = [torch.arange(int(starts[i]), int(starts[i + 1])) for i in range(4)]
        all_keys = [k for p in parts for k in p]
        self.keys = np.array([k.encode("utf-8") for k in all_keys], dtype=np.bytes_) if all_keys \
            else np.empty(0, dtype="S1")
        self.train_rows, self.train_noisy, self.train_clean = rows[0], noisy[tr], clean[tr]
        self.split_rows: dict[str, torch.Tensor] = {"test": rows[3], "clean_val": rows[2]}
        self.split_labels: dict[str, torch.Tensor] = {"test": test_y, "clean_val": val_y}
        if proxy == "noisy_val":
            self.split_rows["noisy_val"], self.split_labels["noisy_val"] = rows[1], noisy[va]
        if proxy == "clean_intact":
            known = self.train_clean >= 0
            self.split_rows["clean_intact"] = self.train_rows[known]
            self.split_labels["clean_intact"] = self.train_clean[known]
        self._check_first_images()

        self.num_workers = default_num_workers() if int(cfg.num_workers) < 0 else int(cfg.num_workers)
        self.prefetch_factor = int(cfg.prefetch_factor)
        self.eval_batch_size = int(cfg.eval_batch_size)
        known = self.train_clean >= 0
        self.info = {
            "dataset": "clothing1m",
            "n_train": int(self.train_rows.numel()),
            "n_val": int(va.numel()),
            "n_clean_val": int(val_y.numel()),
            "n_test": int(test_y.numel()),
            "n_train_clean_known": int(known.sum()),
            # realised noise where the clean label is known (a biased sample of the training set)
            "noise_rate_realised_train": float((self.train_noisy[known] != self.train_clean[known]).float().mean())
            if known.any() else float("nan"),
        }

    def _check_first_images(self) -> None:
        """Fail at load time (not in epoch 1) if the keys do not resolve to files."""
        for split, rows in [("train", self.train_rows), *self.split_rows.items()]:
            if rows.numel():
                path = self.folder / self.keys[int(rows[0])].decode("utf-8")
                if not path.is_file():
                    raise DataError(
                        f"Clothing1M image {path} (first key of the {split} split) does not exist; "
                        f"keys are paths relative to {self.folder}")

    @property
    def n_train(self) -> int:
        return int(self.train_rows.numel())

    def splits(self) -> tuple[str, ...]:
        return tuple(s for s in SPLITS if s in self.split_rows)

    def split_keys(self, split: str) -> list[str]:
        rows = self.train_rows if split == "train" else self.split_rows[split]
        return [self.keys[i].decode("utf-8") for i in rows.tolist()]

    def dataset(self) -> Clothing1MImages:
        return Clothing1MImages(self.folder, self.keys)

    def to_device(self, device: torch.device | str) -> "Clothing1MDeviceData":
        return Clothing1MDeviceData(self, torch.device(device))


def check_clothing1m(root: str | os.PathLike) -> None:
    """Cheap presence check of ``<root>/clothing1m`` (folder, the five lists, the first training
    image): raises :class:`DataError` naming what is missing. No parsing."""
    folder = Path(root).expanduser().resolve() / FOLDER
    files = _find_lists(folder)
    with open(files["noisy_train_key_list.txt"], encoding="utf-8") as f:
        first = next((line.split()[0] for line in f if line.split()), None)
    if first is None:
        raise DataError(f"Clothing1M list {files['noisy_train_key_list.txt']} is empty")
    if not (folder / first).is_file():
        raise DataError(f"Clothing1M image {folder / first} (first training key) does not exist; "
                                f"keys are paths relative to {folder}")


def load_clothing1m(cfg: DataConfig | dict) -> Clothing1MData:
    """Clothing1M as a run config describes it (keys: data_root, proxy, val_fraction, noise_seed,
    train_subset, test_subset, num_workers, batch_size; optional: clean_val_subset,
    eval_batch_size, prefetch_factor)."""
    return Clothing1MData(cfg if isinstance(cfg, DataConfig) else DataConfig.of({"dataset": "clothing1m", **cfg}))


# ------------------------------------------------------------------------------------------------
# device side
# ------------------------------------------------------------------------------------------------


def _view(x: torch.Tensor, augment, generator: torch.Generator) -> torch.Tensor:
    """The float 224 view of a uint8 ``[B, 3, 256, 256]`` batch: the random crop + flip
    (:func:`clothing1m_augment`, on the uint8: cropping commutes with the conversion), any other
    ``augment(x, generator)`` of the float batch (it must return the 224 crop), the centre crop
    (None / False), or a pair ``(clothing1m_augment, f)``: the random crop + flip, then ``f``."""
    if isinstance(augment, tuple):
        first, then = augment
        return then(_view(x, first, generator), generator)
    if augment is clothing1m_augment:
        return _to_float(clothing1m_augment(x, generator))
    if augment:
        return augment(_to_float(x), generator)
    return _to_float(center_crop(x, CROP_SIZE))

class Clothing1MDeviceData:
    """The interface methods see (:class:`~tune_lnl.data.protocols.TrainingData`, as the
    in-memory datasets' :class:`~tune_lnl.data.device.DeviceData`): labels on the device,
    images streamed by DataLoader workers, cropped and made float on the device.

    One DataLoader (one set of persistent workers) serves training and every evaluation split;
    its batch plan is replaced before each pass. Call :meth:`close` to stop the workers early."""

    def __init__(self, data: Clothing1MData, device: torch.device):
        self.host = data
        self.device = device
        self.num_classes = data.num_classes
        self.image_shape = data.image_shape
        self.default_augment = data.augment
        self.in_memory = False
        self.info = data.info
        self.train_noisy = data.train_noisy.to(device)
        self.train_clean = data.train_clean.to(device)
        self._train_rows = data.train_rows  # host: positions -> dataset rows
        self._split_rows = data.split_rows
        self._split_labels = {k: v.to(device) for k, v in data.split_labels.items()}
        self._dataset = data.dataset()
        self._plan = _BatchPlan()
        self._loader = self._make_loader(self._plan, persistent=data.num_workers > 0)
        self._busy = False

    @property
    def n_train(self) -> int:
        return int(self._train_rows.numel())

    def _make_loader(self, plan: _BatchPlan, persistent: bool) -> DataLoader:
        nw = self.host.num_workers
        kwargs = dict(num_workers=nw, pin_memory=self.device.type == "cuda")
        if nw > 0:
            kwargs.update(persistent_workers=persistent, prefetch_factor=self.host.prefetch_factor)
        return DataLoader(self._dataset, batch_sampler=plan, **kwargs)

    def _stream(self, batches: list[list[int]]) -> Iterator[torch.Tensor]:
        """uint8 ``[B, 3, 256, 256]`` on the device for each batch of dataset rows, in order."""
        if self._busy:  # a pass is still open (e.g. evaluation inside a training epoch)
            plan = _BatchPlan()
            plan.batches = batches
            loader = self._make_loader(plan, persistent=False)
            for x, _ in loader:
                yield x.to(self.device, non_blocking=True)
            return
        self._busy = True
        try:
            self._plan.batches = batches
            for x, _ in self._loader:
                yield x.to(self.device, non_blocking=True)
        finally:
            self._busy = False

    def batches(self, batch_size: int, generator: torch.Generator,
                augment: bool | Callable | None = True) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """One epoch: ``(idx, x, noisy)`` per batch. ``idx`` are training positions
        (consecutive slices of one permutation drawn from ``generator``), ``x`` float
        ``[B, 3, 224, 224]`` in [0, 1], ``noisy`` the noisy labels. A final batch of one is
        dropped.

        ``augment``: a callable ``f(x, generator)`` gets the float ``[B, 3, 256, 256]`` batch
        in [0, 1] and must return the 224 crop (:attr:`default_augment` = random crop + flip);
        ``True`` means :attr:`default_augment`; ``None`` / ``False`` a centre crop."""
        if augment is True:
            augment = self.default_augment
        n = self.n_train
        perm = torch.randperm(n, generator=generator, device=self.device)
        perm_host = perm.cpu()
        slices = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size) if min(s + batch_size, n) - s > 1]
        rows = self._train_rows[perm_host]
        plan = [rows[a:b].tolist() for a, b in slices]
        stream = self._stream(plan)
        try:
            for (a, b), x in zip(slices, stream):
                idx = perm[a:b]
                yield idx, _view(x, augment, generator), self.train_noisy[idx]
        finally:
            stream.close()

    def view_batches(self, plan, augments, generator):
        """``(idx, views, noisy)`` per index tensor of ``plan`` (see
        :meth:`tune_lnl.data.protocols.TrainingData.view_batches`), each batch decoded once by the
        workers. A view's augmentation: :attr:`default_augment` (random 224 crop + flip), None (the
        centre crop), or any other ``f(x, generator)``, which gets the random crop + flip first
        (e.g. ``randaugment``: the strong view of FixMatch-style methods)."""
        rows = [self._train_rows[idx.cpu()].tolist() for idx in plan]
        stream = self._stream(rows)
        try:
            for idx, x in zip(plan, stream):
                views = [_view(x, aug if aug in (None, clothing1m_augment) else (clothing1m_augment, aug), generator)
                         for aug in augments]
                yield idx, views, self.train_noisy[idx]
        finally:
            stream.close()

    def splits(self) -> tuple[str, ...]:
        return self.host.splits()

    def augmentation(self, value) -> Callable | None:
        """The run config's ``augment``: ``true`` / ``crop_flip`` the random 224 crop + flip,
        ``false`` / ``none`` the centre crop."""
        if value in (True, "crop_flip"):
            return self.default_augment
        if value in (False, None, "none"):
            return None
        raise ConfigError(f"augment {value!r} is not available for Clothing1M; allowed: true (crop_flip), false (none)")

    def split_size(self, split: str) -> int:
        return int(self._split_rows[split].numel())

    @torch.no_grad()
    def logits(self, model: nn.Module, split: str) -> torch.Tensor:
        """Float logits ``[n, C]`` over ``split`` in its order (eval mode; restores ``model.training``)."""
        rows = self._train_rows if split == "train" else self._split_rows.get(split)
        if rows is None:
            available = ", ".join(("train", *self.splits()))
            raise ConfigError(f"no split {split!r} in this Clothing1M run; available: {available}")
        bs = self.host.eval_batch_size
        plan = [rows[s:s + bs].tolist() for s in range(0, rows.numel(), bs)]
        was_training = model.training
        model.eval()
        stream = self._stream(plan)
        try:
            out = [model(_to_float(center_crop(x, CROP_SIZE))).float() for x in stream]
        finally:
            stream.close()
            model.train(was_training)
        return torch.cat(out) if out else torch.empty(0, 0, device=self.device)

    def labels(self, split: str) -> torch.Tensor:
        """The labels a split is scored against (noisy for ``noisy_val`` and ``train``, clean otherwise)."""
        return self.train_noisy if split == "train" else self._split_labels[split]

    def accuracy(self, model: nn.Module, split: str) -> float:
        return logits_accuracy(self.logits(model, split), self.labels(split))

    def close(self) -> None:
        """Stop the persistent workers (they also stop when this object is garbage collected)."""
        self._loader = self._make_loader(self._plan, persistent=False)


class Clothing1M(StreamedDataset):
    """Clothing1M (``<root>/clothing1m/``): real noise, streamed, its own clean validation split."""
    num_classes = NUM_CLASSES
    image_shape = (3, CROP_SIZE, CROP_SIZE)
    noise_types = (REAL_NOISE,)
    has_clean_val = True
    default_proxy = "clean_val"
    supports_subset = False

    def clean_labels_known(self, noise_type: str) -> bool:
        return True  # for the training images human-checked in clean_label_kv.txt

    def check(self, root: Path) -> None:
        check_clothing1m(root)

    def noisy_data(self, cfg: DataConfig) -> Clothing1MData:
        return load_clothing1m(cfg)

    def augmentation(self):
        return clothing1m_augment
