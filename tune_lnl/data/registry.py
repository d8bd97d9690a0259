"""Which dataset class a space file's ``dataset:`` names, and its instance for given options.

``dataset:`` is a built-in name (``mnist``, ``fashionmnist``, ``cifar10``, ``cifar100``, ``cifar10n``,
``cifar100n``, ``clothing1m``, ``arrays``), an import
path ``"package.module:ClassName"``, a name registered by an installed package under the
entry-point group ``tune_lnl.datasets``, or a mapping ``{type: <one of those>, <option>: value}``
(the options go to the class's constructor). In a run config the dataset is two keys:
``dataset`` (the spec string: its identity) and ``dataset_options`` (a mapping, maybe empty).
"""
from __future__ import annotations

import inspect
import json
import os

from ..errors import ConfigError, DataError, shown
from ..plugins import resolve
from .base import MAX_CLASSES, Dataset, InMemoryDataset, StreamedDataset
from .data_config import DataConfig
from .proxies import PROXIES

#: the built-in datasets: name -> import path of their class
BUILTIN = {
    "mnist": "tune_lnl.data.mnist:MNIST",
    "fashionmnist": "tune_lnl.data.fashionmnist:FashionMNIST",
    "cifar10": "tune_lnl.data.cifar10:CIFAR10Dataset",
    "cifar100": "tune_lnl.data.cifar100:CIFAR100Dataset",
    "cifar10n": "tune_lnl.data.cifar_n:CIFAR10N",
    "cifar100n": "tune_lnl.data.cifar_n:CIFAR100N",
    "clothing1m": "tune_lnl.data.clothing1m:Clothing1M",
    "arrays": "tune_lnl.data.arrays:ArraysDataset",
}
DATASETS = tuple(BUILTIN)
GROUP = "tune_lnl.datasets"

_instances: dict[tuple, Dataset] = {}


def dataset_class(spec: str, where: str = "dataset") -> type[Dataset]:
    cls = resolve(spec, BUILTIN, GROUP, "dataset", where)
    if not inspect.isclass(cls) or not issubclass(cls, Dataset):
        raise ConfigError(f"{where}: {spec!r} is not a dataset: it must subclass tune_lnl.InMemoryDataset or "
                          f"tune_lnl.StreamedDataset (got {cls!r})")
    if inspect.isabstract(cls):
        missing = sorted(cls.__abstractmethods__)
        base = next(f"tune_lnl.{b.__name__}" for b in (InMemoryDataset, StreamedDataset, Dataset) if issubclass(cls, b))
        raise ConfigError(f"{where}: {spec!r} subclasses {base} but does not implement "
                          f"{', '.join(_SIGNATURES.get(m, f'{m}()') for m in missing)}")
    return cls


#: how the abstract methods of a dataset class are called, for the error naming the missing ones
_SIGNATURES = {
    "load": "load(root) (returning tune_lnl.Arrays)",
    "noisy_data": "noisy_data(cfg) (or subclass tune_lnl.InMemoryDataset and implement load(root))",
}


def options_key(options: dict | None) -> str:
    """``options`` as a cache key; a ``path`` option that names a file adds the file's size and
    modification time, so that a rewritten file is read again."""
    options = dict(options or {})
    path = options.get("path")
    if isinstance(path, str) and os.path.isfile(path):
        st = os.stat(path)
        options["path"] = f"{path}@{st.st_size}:{st.st_mtime_ns}"
    return json.dumps(options, sort_keys=True, default=str)


def open_dataset(spec: str, options: dict | None = None, where: str = "dataset") -> Dataset:
    """The dataset instance of ``spec`` with ``options`` (one per process, arguments and file
    version)."""
    options = dict(options or {})
    key = (spec, options_key(options))
    if key in _instances:
        return _instances[key]
    cls = dataset_class(spec, where)
    for k, v in options.items():
        if k not in cls.options:
            raise ConfigError(f"{where}.{k}: unknown option of dataset {spec!r}; allowed: "
                              f"{', '.join(sorted(cls.options)) or 'none'} (got {k}: {shown(v)})")
        default = cls.options[k]
        typ = str if default is None else type(default)
        if not isinstance(v, typ) or (isinstance(v, bool) and typ is not bool):
            raise ConfigError(f"{where}.{k}: must be {'a string' if typ is str else typ.__name__} (got {shown(v)})")
    try:
        ds = cls(**options)
    except (ConfigError, DataError) as exc:  # the constructor read the user's files: say where it was named
        raise type(exc)(f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: dataset {spec!r} cannot be made with options {options}: {exc}") from None
    for attr in ("num_classes", "image_shape"):
        if getattr(ds, attr, None) is None:
            raise ConfigError(f"{where}: dataset {spec!r} declares no '{attr}' (set it on the class or in its "
                              f"constructor)")
    C = ds.num_classes
    if isinstance(C, bool) or not hasattr(C, "__index__") or not 2 <= C <= MAX_CLASSES:
        raise ConfigError(f"{where}: dataset {spec!r} declares num_classes {shown(ds.num_classes)}; it must lie in "
                          f"[2, {MAX_CLASSES}]")
    if not isinstance(ds.default_proxy, str) or ds.default_proxy not in PROXIES:
        raise ConfigError(f"{where}: dataset {spec!r} declares default_proxy {shown(ds.default_proxy)}; allowed: "
                          f"{', '.join(PROXIES)}")
    _instances[key] = ds
    return ds


def dataset_of(cfg: DataConfig | dict) -> Dataset:
    """The dataset a run config names."""
    cfg = DataConfig.of(cfg)
    return open_dataset(cfg.dataset, cfg.dataset_options)


def load_noisy_data(cfg: DataConfig | dict):
    """The noisy data a run config describes (a :class:`~tune_lnl.data.data_config.DataConfig`,
    or a flat run-config dict holding its keys); an object with ``to_device(device)``."""
    cfg = DataConfig.of(cfg)
    return dataset_of(cfg).noisy_data(cfg)


def check_data(spec: str, root, options: dict | None = None) -> None:
    """Raise :class:`~tune_lnl.errors.DataError` (naming the folder to fill) if the data is absent."""
    from pathlib import Path
    open_dataset(spec, options).check(Path(root))
