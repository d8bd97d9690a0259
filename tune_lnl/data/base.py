"""The dataset base classes: what a dataset declares and what it must provide.

A dataset is a class; a space file names it by a built-in name (``mnist``), by an import path
(``"package.module:ClassName"``), by a name an installed package registers under the entry-point
group ``tune_lnl.datasets``, or as a mapping ``{type: <any of those>, <option>: value, ...}``
whose options go to the class's constructor (``{type: arrays, path: data.npz}``).

* :class:`InMemoryDataset`: implement :meth:`~InMemoryDataset.load` (uint8 images and labels as
  :class:`~tune_lnl.data.splits.Arrays`); the framework applies the noise, makes the splits and
  keeps everything as tensors on the training device (MNIST, CIFAR-10, ``arrays``).
* :class:`StreamedDataset`: implement :meth:`Dataset.noisy_data` returning a
  :class:`~tune_lnl.data.protocols.HostData` (an object with ``to_device(device)``) whose
  ``to_device`` returns a :class:`~tune_lnl.data.protocols.TrainingData` (Clothing1M).

The methods a subclass must implement are abstract (:mod:`abc`): a class that lacks one is
refused by name when a space file names it (:func:`tune_lnl.data.registry.dataset_class`).

Declared on the class (or set by the constructor, for datasets whose files tell):
``num_classes``, ``image_shape`` ``(C, H, W)`` the model sees, ``noise_types`` it allows
(synthetic ones and/or ``real``), ``has_clean_val`` (ships a trusted clean validation split),
``default_augment`` (what ``augment: true`` means), ``default_proxy``, ``asymmetric_map`` (the
class mapping of ``asymmetric`` noise: ``{source: target}``; ``None`` refuses that noise) and
``label_sets`` (the names of the human-annotated label sets ``load`` returns for ``human`` noise).
"""
from __future__ import annotations

import abc
import os
import pickle
from pathlib import Path

import torch

from ..errors import DataError
from .augment import AUGMENTS
from .data_config import DataConfig
from .noise import NOISE_TYPES, REAL_NOISE
from .protocols import HostData
from .splits import Arrays, make_noisy_data

#: the most classes a dataset may have: a label is a class index, and a run holds C x C transition
#: matrices and C outputs per image (10,000 classes: 800 MB per float64 matrix already)
MAX_CLASSES = 10_000


def resolve_data_root(cli_value: str | os.PathLike | None = None) -> Path:
    """``--data-root``, else ``$TUNE_LNL_DATA``, else ``./data``; always absolute.

    Absolute because Ray runs trials in other working directories."""
    value = cli_value or os.environ.get("TUNE_LNL_DATA") or "data"
    return Path(value).expanduser().resolve()


class Dataset(abc.ABC):
    """Base of every dataset (see the module's docstring)."""
    num_classes: int | None = None
    image_shape: tuple[int, int, int] | None = None
    #: the noise types a space file may ask for (``real``: the labels as given)
    noise_types: tuple[str, ...] = NOISE_TYPES
    #: the class mapping of ``asymmetric`` noise, ``{source class: target class}`` (each source
    #: flips to its target with probability r); ``None``: the dataset has none, ``asymmetric`` is refused
    asymmetric_map: dict[int, int] | None = None
    #: the human-annotated noisy label sets ``load`` returns (``noise: {type: human, labels: NAME}``)
    label_sets: tuple[str, ...] = ()
    #: ships its own trusted clean validation split (then ``clean_val_size`` is refused)
    has_clean_val = False
    #: held as tensors on the training device (every proxy cheap to evaluate every epoch)
    in_memory = True
    #: what ``augment: true`` means: a name of :data:`tune_lnl.data.augment.AUGMENTS`
    default_augment = "none"
    #: the proxy that selects when a space file names none: a name of :data:`tune_lnl.data.proxies.PROXIES`
    default_proxy = "noisy_val"
    #: whether ``train_subset`` / ``test_subset`` apply
    supports_subset = True
    #: the options a space file's ``dataset:`` mapping may give, with their defaults (the
    #: constructor receives them as keyword arguments)
    options: dict = {}

    def __init__(self, **options):
        self.opts = options

    def clean_labels_known(self, noise_type: str) -> bool:
        """Whether training labels' clean values are known under ``noise_type`` (needed by
        ``clean_intact`` and ``clean_val_size``): always for synthetic noise."""
        return noise_type != REAL_NOISE

    def check(self, root: Path) -> None:
        """Raise :class:`~tune_lnl.errors.DataError` (naming the folder or file and what to put
        there) if the files are absent or unusable; called once before any trial."""

    @abc.abstractmethod
    def noisy_data(self, cfg: DataConfig) -> HostData:
        """The data one run trains on (an object with ``to_device(device)``)."""

    def check_splits(self, val_fraction: float, clean_val_size: int, train_subset: int, proxy: str) -> None:
        """Raise :class:`~tune_lnl.errors.DataError` if the training images cannot fill the splits
        a space file asks for (:func:`~tune_lnl.data.splits.split_problem`); called when the file
        is loaded. Here: nothing, the size being known only once the data is loaded (then
        :func:`~tune_lnl.data.splits.make_noisy_data` refuses); a dataset that knows its size
        sooner (``arrays``) checks."""

    def augmentation(self):
        """The batched on-device augmentation ``augment: true`` means."""
        return AUGMENTS[self.default_augment]


class InMemoryDataset(Dataset):
    """A dataset that fits on the training device: implement :meth:`load`."""

    @abc.abstractmethod
    def load(self, root: Path) -> Arrays:
        """uint8 ``[N, C, H, W]`` train and test images, int64 labels (as the dataset has them),
        optionally the known clean training labels and a trusted clean subset."""

    def checked_load(self, root: Path) -> Arrays:
        """:meth:`load`, then :func:`check_arrays` against what the class declares."""
        arrays = self.load(Path(root))
        check_arrays(arrays, self)
        return arrays

    def check(self, root: Path) -> None:
        self.checked_load(root)

    def noisy_data(self, cfg: DataConfig) -> HostData:
        arrays = self.checked_load(Path(cfg.data_root))
        return make_noisy_data(arrays, int(self.num_classes), cfg, self.augmentation(), self.asymmetric_map)


def check_arrays(a: Arrays, ds: Dataset) -> None:
    """What :meth:`InMemoryDataset.load` returned must be what the dataset declares: uint8
    ``[N, C, H, W]`` images of ``image_shape``, one integer label per image in
    ``[0, num_classes)`` (clean labels: -1 for unknown; every declared human label set present,
    one label per training image), clean-val indices inside the training set. Raises
    :class:`~tune_lnl.errors.DataError` naming the dataset and the field."""
    name = f"dataset {type(ds).__module__}:{type(ds).__qualname__}"
    C = int(ds.num_classes)
    for field, x in (("train_x", a.train_x), ("test_x", a.test_x)):
        if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.dim() != 4:
            raise DataError(f"{name}: load() returned {field} of {_describe(x)}; it must be a uint8 tensor "
                            f"[N, C, H, W]")
        if tuple(x.shape[1:]) != tuple(ds.image_shape):
            raise DataError(f"{name}: load() returned {field} of image shape {tuple(x.shape[1:])}; the dataset "
                            f"declares image_shape {tuple(ds.image_shape)}")
    sets = a.label_sets or {}
    missing = [n for n in ds.label_sets if n not in sets]
    if missing:
        raise DataError(f"{name}: load() returned no label set {missing[0]!r}; the dataset declares label_sets "
                        f"{', '.join(ds.label_sets)} (Arrays(..., label_sets={{name: labels}}))")
    n_train = a.train_x.shape[0]
    for field, y, n, low in (("train_y", a.train_y, n_train, 0), ("test_y", a.test_y, a.test_x.shape[0], 0),
                             ("train_clean", a.train_clean, n_train, -1),
                             *((f"label_sets[{k!r}]", v, n_train, 0) for k, v in sets.items())):
        if y is None and field == "train_clean":
            continue
        if not isinstance(y, torch.Tensor) or y.dtype.is_floating_point or y.dtype == torch.bool or y.shape != (n,):
            raise DataError(f"{name}: load() returned {field} of {_describe(y)}; it must be an integer tensor of "
                            f"{n} labels (one per image)")
        if y.numel() and (int(y.min()) < low or int(y.max()) >= C):
            bad = int(y.min()) if int(y.min()) < low else int(y.max())
            raise DataError(f"{name}: load() returned {field} with label {bad} outside [{low}, {C}) "
                            f"(num_classes {C})")
    if a.clean_val_index is not None:
        idx = a.clean_val_index
        if idx.numel() == 0 or int(idx.min()) < 0 or int(idx.max()) >= a.train_x.shape[0]:
            raise DataError(f"{name}: load() returned clean_val_index outside [0, {a.train_x.shape[0]})")


def _describe(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"dtype {x.dtype}, shape {tuple(x.shape)}"
    return f"type {type(x).__name__}"


class StreamedDataset(Dataset):
    """A dataset streamed from disk by its own loader: implement :meth:`Dataset.noisy_data`."""
    in_memory = False


def open_torchvision(dataset_cls, root: Path, what: str, folder: Path, how_to_fill: str):
    """``(train, test)`` torchvision datasets from ``root``; downloads when the files are absent
    and the network allows, else raises :class:`~tune_lnl.errors.DataError` naming ``folder``.
    Files that are present but cannot be parsed (truncated, another dataset) are refused with a
    :class:`~tune_lnl.errors.DataError` naming the folder and each file's size."""
    try:
        return dataset_cls(str(root), train=True, download=False), dataset_cls(str(root), train=False, download=False)
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, IndexError, TypeError) as exc:
        sizes = ", ".join(f"{p.name} ({p.stat().st_size} bytes)" for p in sorted(folder.glob("*")) if p.is_file())
        raise DataError(f"{folder}: the {what} files cannot be read ({type(exc).__name__}: {exc}): truncated, of the "
                        f"wrong size or not the official release. Files there: {sizes or 'none'}. Replace them "
                        f"with the official ones.") from None
    except RuntimeError:  # a file is missing
        try:
            return dataset_cls(str(root), train=True, download=True), dataset_cls(str(root), train=False, download=True)
        except Exception as exc:  # no network, no write access, ...
            raise DataError(
                f"{what} not found in {folder} and downloading it failed ({type(exc).__name__}: {exc}). "
                f"{how_to_fill}, or point --data-root / TUNE_LNL_DATA at a folder holding "
                f"{folder.relative_to(root)}/.") from None
