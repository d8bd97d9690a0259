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
        self.method = self._make({**self._base, **config})

    def step(self) -> dict:
        """One epoch. A failure of the method itself (divergence: a NaN/inf loss or proxy, or any
        exception it raises) is deterministic, so it is REPORTED, not raised: the result carries
        ``failed`` and ``error`` and ends the trial, which the searcher records as FAIL and the
        experiment's ``failures.jsonl`` lists. Only infrastructure faults (the worker process
        dying) reach Ray, which retries them from the last checkpoint (``max_failures``)."""
        metrics, failure = self.method.try_step()
        where = {"end_time": time.time(), "node_id": _node_id()}  # when and on which node of the cluster
        if failure is not None:
            last = self.method.history[-1] if self.method.history else {}
            return {"failed": 1, **failure, "proxy_best": last.get("proxy_best", -math.inf), "done": True, **where}
        return {**metrics, "failed": 0, "done": self.method.done, **where}

    def save_checkpoint(self, checkpoint_dir: str):
        self.method.save(os.path.join(checkpoint_dir, CHECKPOINT_FILE))
        return None

    def load_checkpoint(self, checkpoint):
        path = checkpoint if isinstance(checkpoint, str) else checkpoint.path
        if os.path.isdir(path):
            path = os.path.join(path, CHECKPOINT_FILE)
        self.method.load(path)

    def reset_config(self, new_config: dict) -> bool:
        self.method.close()
        self.method = self._make({**self._base, **new_config})
        return True

    def cleanup(self):
        self.method.close()
