"""Per-process cache of device-resident data: the trials a worker runs one after another load
and upload their dataset once."""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path

import torch

from .data_config import DataConfig
from .registry import dataset_of, load_noisy_data, options_key

#: how many device-resident datasets a process keeps (the latest ones): a worker runs the trials
#: of one noise setting one after another, and a long-lived process must not accumulate copies
DATA_CACHE_SIZE = 1
_cache: OrderedDict[tuple, object] = OrderedDict()
_cache_lock = threading.Lock()


def _device_key(device: torch.device) -> str:
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return str(device)


def data_key(cfg: DataConfig | dict, device: torch.device) -> tuple | None:
    """Everything :func:`load_noisy_data` reads, normalised, plus the device; ``None`` for a
    dataset that is not cached (streamed ones such as Clothing1M: their device view holds
    DataLoader workers that :meth:`~tune_lnl.methods.base.Method.close` stops)."""
    cfg = DataConfig.of(cfg)
    if not dataset_of(cfg).in_memory:
        return None
    holdout = cfg.proxy != "clean_intact"  # val_fraction read only then
    return (cfg.dataset, options_key(cfg.dataset_options), str(Path(cfg.data_root).expanduser().resolve()),
            cfg.noise_type, json.dumps(cfg.noise_options, sort_keys=True),
            float(cfg.noise_rate), int(cfg.noise_seed), holdout, float(cfg.val_fraction) if holdout else None,
            int(cfg.clean_val_size), int(cfg.train_subset), int(cfg.test_subset), _device_key(device))


def cached_noisy_data(cfg: DataConfig | dict, device: torch.device):
    """``load_noisy_data(cfg).to_device(device)``, shared by every caller of this process asking
    for the same data (same :func:`data_key`): the trials a worker runs one after another load
    and upload the dataset once. Only the device copy is kept (for CUDA the host tensors are
    freed after the upload), and only the :data:`DATA_CACHE_SIZE` latest datasets; an older one
    lives on only while a method still holds it. Callers must treat the tensors as read-only
    (no method writes into its data). Streamed datasets are never cached: each call loads afresh."""
    cfg = DataConfig.of(cfg)
    key = data_key(cfg, device)
    if key is None:
        return load_noisy_data(cfg).to_device(device)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        while _cache and len(_cache) >= DATA_CACHE_SIZE:  # drop before loading: no two copies at the peak
            _cache.popitem(last=False)
        data = load_noisy_data(cfg).to_device(device)
        if DATA_CACHE_SIZE > 0:
            _cache[key] = data
        return data


def clear_data_cache() -> None:
    """Forget every cached dataset (the tensors are freed once no method holds them)."""
    with _cache_lock:
        _cache.clear()
