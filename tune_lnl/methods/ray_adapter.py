"""Thin Ray Tune adapter around a plain :class:`tune_lnl.methods.base.Method`.

``setup`` builds the method from ``{**base, **config}`` (``base``: the fixed part of the run
config, passed with ``tune.with_parameters``; ``config``: the values Optuna sampled), ``step``
is one epoch plus evaluation, and checkpoints are the method's complete ``state_dict``.
Importing this module works without Ray; only instantiating the Trainable needs it.
"""
from __future__ import annotations

import math
import os
import time
import traceback

from ..errors import CheckpointError

try:
    from ray.tune import Trainable
except ImportError:  # the training core must run where Ray is absent
    class Trainable:  # type: ignore[no-redef]
        def __init__(self, *args, **kwargs):
            raise ImportError("Ray Tune is not installed: use `python -m tune_lnl.train` to train without Ray")

CHECKPOINT_FILE = "state.pt"


def _node_id() -> str | None:
    import ray
    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


class MethodTrainable(Trainable):
    """The Trainable of every method: ``method_cls`` is set by each ``trainables/<method>.py``;
    left None (a user's method), the class is found from the run config's ``method`` spec."""
    method_cls = None

    def _make(self, cfg: dict):
        cls = self.method_cls
        if cls is None:
            from .registry import method_class
            cls = method_class(cfg["method"])
        return cls(cfg)

    def setup(self, config: dict, base: dict | None = None):
        self._base = dict(base or {})
        self.method, self._failure = None, None
        self._build({**self._base, **config})

    def _build(self, cfg: dict) -> None:
        """Build the method; an exception of its own (a plugin's ``build()``, an impossible model
        size) is deterministic like a divergence: kept, and reported by the first :meth:`step` as
        the trial's failure with its real message (retrying it would only fail again)."""
        try:
            self.method = self._make(cfg)
        except Exception as exc:  # noqa: BLE001 -- reported by step(), with its traceback
            self._failure = _failure(exc, 1)

    def step(self) -> dict:
        """One epoch. A failure of the method itself (divergence: a NaN/inf loss or proxy, or any
        exception it raises) is deterministic, so it is REPORTED, not raised: the result carries
        ``failed`` and ``error`` and ends the trial, which the searcher records as FAIL and the
        experiment's ``failures.jsonl`` lists. Only infrastructure faults (the worker process
        dying) reach Ray, which retries them from the last checkpoint (``max_failures``)."""
        metrics, failure = (None, self._failure) if self._failure is not None else self.method.try_step()
        where = {"end_time": time.time(), "node_id": _node_id()}  # when and on which node of the cluster
        if failure is not None:
            last = self.method.history[-1] if self.method is not None and self.method.history else {}
            return {"failed": 1, **failure, "proxy_best": last.get("proxy_best", -math.inf), "done": True, **where}
        return {**metrics, "failed": 0, "done": self.method.done, **where}

    def save_checkpoint(self, checkpoint_dir: str):
        if self.method is not None:
            self.method.save(os.path.join(checkpoint_dir, CHECKPOINT_FILE))
        return None

    def load_checkpoint(self, checkpoint):
        """A checkpoint that cannot be loaded (not written by tune_lnl, corrupt, another run's:
        :class:`~tune_lnl.errors.CheckpointError`, never unpickled) fails the trial with the
        message naming the file; it is not retried."""
        path = checkpoint if isinstance(checkpoint, str) else checkpoint.path
        if os.path.isdir(path):
            path = os.path.join(path, CHECKPOINT_FILE)
        if self.method is None:
            return
        try:
            self.method.load(path)
        except CheckpointError as exc:
            self._failure = _failure(exc, self.method.epoch + 1)

    def reset_config(self, new_config: dict) -> bool:
        if self.method is not None:
            self.method.close()
        self.method, self._failure = None, None
        self._build({**self._base, **new_config})
        return True

    def cleanup(self):
        if self.method is not None:
            self.method.close()


def _failure(exc: Exception, epoch: int) -> dict:
    """A failure as :meth:`~tune_lnl.methods.base.Method.try_step` reports one."""
    return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(), "epoch": epoch}
