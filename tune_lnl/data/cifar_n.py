"""CIFAR-10N and CIFAR-100N: real human label noise on the CIFAR training images (Wei et al.
2022, "Learning with noisy labels revisited: a study using real-world human annotations").

The user puts the label files published with the CIFAR-N paper into the data root, beside the
CIFAR folders:

* ``CIFAR-10_human.pt``: a dict of 50,000-long integer arrays ``clean_label``, ``aggre_label``,
  ``worse_label``, ``random_label1``, ``random_label2``, ``random_label3``;
* ``CIFAR-100_human.pt``: ``clean_label``, ``noisy_label``, ``clean_coarse_label``,
  ``noisy_coarse_label`` (the fine labels are used),

both in torchvision's training order. A setting picks the label set: ``noise: {type: human,
labels: worse}`` (CIFAR-10N: ``aggre``, ``worse``, ``random1``, ``random2``, ``random3``;
CIFAR-100N: ``noisy``). The file's clean labels must equal the CIFAR training labels (else a
:class:`~tune_lnl.errors.DataError` naming the file): they feed ``clean_intact`` and the analytics,
never the loss. The realised noise rate is recorded with every result (the paper: about 9% aggre,
17% random1, 40% worse, 40% CIFAR-100N).

The files are read with ``torch.load(weights_only=True)``, allowing only NumPy's array
reconstruction (the published files hold NumPy arrays): no code in a label file runs.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .cifar10 import CIFAR10Dataset
from .cifar100 import CIFAR100Dataset
from .noise import HUMAN_NOISE
from .splits import Arrays


def _numpy_globals() -> list:
    """The NumPy names a pickled array needs (under NumPy 1's and 2's module paths)."""
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # NumPy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    allowed = [_reconstruct, scalar, np.ndarray, np.dtype]
    for name in ("numpy.core.multiarray", "numpy._core.multiarray"):  # files written under either NumPy
        allowed += [(_reconstruct, f"{name}._reconstruct"), (scalar, f"{name}.scalar")]
    dtypes = getattr(np, "dtypes", None)
    allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")] if dtypes else []
    return allowed


def read_human_labels(path: Path, keys: dict[str, str], clean_key: str, clean: torch.Tensor,
                      num_classes: int) -> dict[str, torch.Tensor]:
    """The label sets ``{name: labels}`` (``keys``: name -> the file's key) of a CIFAR-N file,
    checked: every array holds one label in ``[0, num_classes)`` per training image, and the file's
    ``clean_key`` array equals ``clean`` (the dataset's training labels)."""
    if not path.is_file():
        raise DataError(f"{path}: no such file. Put the label file published with the CIFAR-N paper "
                        f"({path.name}) into {path.parent}, or point --data-root / TUNE_LNL_DATA at the folder "
                        f"holding it")
    allowed = _numpy_globals()
    try:
        with torch.serialization.safe_globals(allowed):
            doc = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 -- empty, truncated, not a torch file, or holding other objects
        raise DataError(f"{path}: not a CIFAR-N label file ({type(exc).__name__}: "
                        f"{str(exc).partition(chr(10))[0] or 'unreadable'})") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path}: holds a {type(doc).__name__}; a CIFAR-N label file is a dict of label arrays")
    n = clean.numel()

    def labels(key: str) -> torch.Tensor:
        if key not in doc:
            raise DataError(f"{path}: no key {key!r}; the file has {', '.join(map(str, doc)) or 'no keys'}")
        a = np.asarray(doc[key].cpu() if isinstance(doc[key], torch.Tensor) else doc[key])
        if not np.issubdtype(a.dtype, np.integer) or a.shape != (n,):
            raise DataError(f"{path}: {key}: {a.dtype} array of shape {a.shape}; must be {n} integer labels (one per "
                            f"CIFAR training image, in torchvision's order)")
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            raise DataError(f"{path}: {key}: label {a.min() if a.min() < 0 else a.max()} outside [0, {num_classes})")
        return torch.from_numpy(a.astype(np.int64))

    given_clean = labels(clean_key)
    if not torch.equal(given_clean, clean):
        bad = int(torch.nonzero(given_clean != clean)[0])
        raise DataError(f"{path}: {clean_key} differs from the CIFAR training labels at "
                        f"{int((given_clean != clean).sum())} images (the first: image {bad}, file "
                        f"{int(given_clean[bad])}, CIFAR {int(clean[bad])}): "
                        f"not the label file of these CIFAR files, or not in torchvision's training order")
    return {name: labels(key) for name, key in keys.items()}


class HumanLabels:
    """Mixin before a CIFAR dataset class: its arrays plus the human label sets of ``human_file``
    (``human_keys``: label-set name -> the file's key)."""
    human_file: str
    human_keys: dict[str, str]
    noise_types = (HUMAN_NOISE, "none")
    asymmetric_map = None

    def load(self, root: Path) -> Arrays:
        arrays = super().load(root)
        sets = read_human_labels(Path(root) / self.human_file, self.human_keys, "clean_label", arrays.train_y,
                                 int(self.num_classes))
        return dataclasses.replace(arrays, label_sets=sets)


class CIFAR10N(HumanLabels, CIFAR10Dataset):
    """CIFAR-10 images with the CIFAR-10N human labels (``<root>/CIFAR-10_human.pt``)."""
    human_file = "CIFAR-10_human.pt"
    human_keys = {"aggre": "aggre_label", "worse": "worse_label", "random1": "random_label1",
                  "random2": "random_label2", "random3": "random_label3"}
    label_sets = tuple(human_keys)


class CIFAR100N(HumanLabels, CIFAR100Dataset):
    """CIFAR-100 images with the CIFAR-100N human fine labels (``<root>/CIFAR-100_human.pt``)."""
    human_file = "CIFAR-100_human.pt"
    human_keys = {"noisy": "noisy_label"}
    label_sets = tuple(human_keys)
