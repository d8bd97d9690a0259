"""Checkpoint files that never run code: :meth:`tune_lnl.methods.base.Method.save` writes only
weights-only-loadable values (:func:`plain`), and :meth:`~tune_lnl.methods.base.Method.load`
reads them with ``torch.load(weights_only=True)`` (:func:`read_checkpoint`), which refuses any
pickled global outside PyTorch's allow-list (tensors, containers, numbers) instead of calling it:
a pickle planted in a run folder is an error on ``--resume``, not code run by it."""
from __future__ import annotations

import os
from collections import Counter, OrderedDict

import numpy as np
import torch

from ..errors import CheckpointError

#: values stored as they are (torch.load(weights_only=True) rebuilds each of them)
_LEAVES = (type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.device, torch.Size)
#: dict types stored as they are (a model's state dict is an OrderedDict with ``_metadata``)
_DICTS = (dict, OrderedDict, Counter)
#: the longest reason a CheckpointError quotes from the loader's message
REASON_CHARS = 200


def plain(value, where: str = "checkpoint"):
    """``value`` with only what ``torch.load(weights_only=True)`` rebuilds: tensors, numbers,
    strings, bools, None, dtypes, devices, and dicts, lists, tuples, sets of them. NumPy scalars
    (a searcher's sample, a method's statistic) become Python numbers, subclasses of the builtin
    types (``np.float64``, an ``IntEnum``) their base type, paths strings; a container nothing in
    which changes is returned as it is (no copy: a model's state dict keeps its ``_metadata``).
    Anything else raises ``TypeError`` naming ``where`` (its place in the state), so that a
    checkpoint that no resume could load is never written."""
    if isinstance(value, torch.Tensor) or type(value) in _LEAVES:
        return value
    if isinstance(value, np.generic):
        return value.item()
    for base in (bool, int, float, str):
        if isinstance(value, base):
            return str.__str__(value) if base is str else base(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        pairs = [(plain(k, f"{where} key {k!r}"), plain(v, f"{where}/{k}")) for k, v in value.items()]
        same = all(pk is k and pv is v for (pk, pv), (k, v) in zip(pairs, value.items()))
        return value if same and type(value) in _DICTS else dict(pairs)
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [plain(v, f"{where}/{i}") for i, v in enumerate(value)]
        if type(value) in (list, tuple, set) and all(a is b for a, b in zip(items, value)):
            return value
        if isinstance(value, (set, frozenset)):
            return set(items)
        return tuple(items) if isinstance(value, tuple) else items
    raise TypeError(f"{where} is a {type(value).__module__}.{type(value).__qualname__}: a checkpoint holds only "
                    f"tensors, numbers, strings, bools, None and dicts, lists, tuples and sets of them "
                    f"(store a NumPy array as torch.as_tensor(...), an object as its numbers)")


def _reason(exc: Exception) -> str:
    """The loader's one-line why (e.g. ``Unsupported global: GLOBAL posix.system ...``), without
    its advice to retry with ``weights_only=False`` or to allow-list the global."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    text = " ".join(text.split())
    for advice in (". Please use", ". This is an internal", "Check the documentation"):
        text = text.split(advice, 1)[0].strip()
    reason = f"{type(exc).__name__}: {text or 'the file is empty or ends early'}"
    return reason if len(reason) <= REASON_CHARS else reason[: REASON_CHARS - 3] + "..."


def read_checkpoint(path):
    """The object stored at ``path``, read with ``torch.load(weights_only=True)`` on the CPU.
    A file that does not load that way (a pickle of anything beyond tensors and plain values,
    garbage, truncated, empty) raises :class:`~tune_lnl.errors.CheckpointError` naming it; a
    missing or unreadable file raises the ``OSError``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 -- whatever the loader refuses, the file is not resumable
        raise CheckpointError(
            f"{path} is not a loadable tune_lnl checkpoint ({_reason(exc)}): it was not written by tune_lnl, "
            f"or is corrupt or truncated; it was NOT unpickled (nothing in it was run). Delete it to restart "
            f"this run from scratch.") from None
