"""What a run needs to know about its data: :class:`DataConfig`, the typed part of a run config
that the data layer reads (dataset, noise, proxy, splits, subsets, the streamed data's loader
options). Built by :mod:`tune_lnl.config` (through :class:`tune_lnl.methods.RunConfig`); its
serialised form is the flat run-config dict that Ray, JSON files and checkpoints carry.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError


@dataclass(frozen=True)
class DataConfig:
    dataset: str                   #: a built-in name, ``module:Class`` or an entry point
    data_root: str = ""            #: the folder holding every dataset's own folder
    noise_type: str = "none"       #: see :data:`tune_lnl.data.NOISE_TYPES`
    noise_rate: float = 0.0
    noise_seed: int = 0            #: draws the noise, the splits and the subsets
    proxy: str = "noisy_val"       #: the held-out accuracy that selects (see :mod:`tune_lnl.data.proxies`)
    val_fraction: float = 0.1      #: the noisy hold-out's share of the training set (``noisy_val``)
    clean_val_size: int = 0        #: training images set aside with their clean labels (``clean_val``)
    train_subset: int = 0          #: 0: the whole training set
    test_subset: int = 0           #: 0: the whole test set
    dataset_options: dict = field(default_factory=dict)
    noise_options: dict = field(default_factory=dict)
    num_workers: int = -1          #: decoding workers of a streamed dataset; -1: min(8, CPUs)
    clean_val_subset: int = 0      #: streamed datasets: a seeded subset of their own clean validation split
    prefetch_factor: int = 2       #: streamed datasets: batches each worker prepares ahead
    eval_batch_size: int = 256     #: streamed datasets: evaluation batch size

    @classmethod
    def of(cls, cfg: DataConfig | dict) -> DataConfig:
        """``cfg`` itself, or the data part of a flat run-config dict (other keys ignored; a
        missing or empty optional key takes its default)."""
        if isinstance(cfg, DataConfig):
            return cfg
        if "dataset" not in cfg:
            raise ConfigError("run config: no 'dataset' (the data it trains on)")
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            v = cfg.get(f.name)
            if v is None or (v == 0 and f.name in ("clean_val_subset", "prefetch_factor", "eval_batch_size")):
                continue
            values[f.name] = dict(v) if isinstance(v, dict) else v
        values["data_root"] = str(values.get("data_root", ""))
        return cls(**values)

    def flat(self) -> dict:
        """The serialised form: ``{key: value}`` (dicts copied)."""
        return {f.name: (dict(v) if isinstance(v := getattr(self, f.name), dict) else v)
                for f in dataclasses.fields(self)}
