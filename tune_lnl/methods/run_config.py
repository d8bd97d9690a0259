"""The typed run config: everything one training run (a trial, a final seed, ``tune_lnl.train``)
is built from.

    RunConfig
      method   the method spec (``mlc``, ``module:Class``, an entry point's name)
      hp       the method's hyperparameters: an object of its ``Hyper`` dataclass
               (:mod:`tune_lnl.methods.hparams`; backbone, budget, optimizer and speed switches included)
      data     :class:`~tune_lnl.data.data_config.DataConfig` (dataset, noise, proxy, splits)
      setting, seed, device

:mod:`tune_lnl.config` builds it from a space file and validates every value. Its serialised
form, :meth:`RunConfig.flat`, is one flat ``{key: value}`` dict: what Ray Tune and Optuna sample
into, what ``params.json``, ``best_configs.yaml`` and checkpoints hold, and what
:meth:`RunConfig.of` reads back.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..data.data_config import DataConfig
from . import hparams

#: the keys of a flat run config that are neither hyperparameters nor data
RUN_KEYS = ("method", "setting", "seed", "device")


@dataclass(frozen=True)
class RunConfig:
    method: str
    hp: Any
    data: DataConfig
    setting: str = ""
    seed: int = 0
    device: str = "auto"

    @classmethod
    def of(cls, cfg: RunConfig | dict, hyper: type, method: str = "") -> RunConfig:
        """``cfg`` itself, or the typed form of a flat run-config dict for a method whose
        hyperparameters are the dataclass ``hyper`` (keys it does not declare are ignored)."""
        if isinstance(cfg, RunConfig):
            return cfg
        return cls(method=str(cfg.get("method") or method), hp=hparams.build(hyper, cfg), data=DataConfig.of(cfg),
                   setting=str(cfg.get("setting") or ""), seed=int(cfg.get("seed") or 0),
                   device=str(cfg.get("device") or "auto"))

    def flat(self) -> dict:
        """The serialised form: one ``{key: value}`` dict (hyperparameters, data, run keys)."""
        return {**self.data.flat(), **hparams.as_dict(self.hp), "method": self.method, "setting": self.setting,
                "seed": self.seed, "device": self.device}

    def replace(self, **changes) -> RunConfig:
        """A copy with run keys (``seed=1``), ``hp=``/``data=`` objects replaced."""
        return dataclasses.replace(self, **changes)
