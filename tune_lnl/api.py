"""The Python API: :func:`run` (a whole experiment, as ``python -m tune_lnl.search``) and
:func:`train` (one training, as ``python -m tune_lnl.train``). Errors raise
:class:`~tune_lnl.errors.ConfigError` (bad input), :class:`~tune_lnl.errors.DataError` (data
absent or unusable) and :class:`~tune_lnl.errors.SearchError` (no result could be produced),
with the messages the command line prints.
"""
from __future__ import annotations

from typing import Callable

from .config import run_config
from .data import resolve_data_root
from .errors import ConfigError
from .methods import method_class
from .results.result import Result
from .search import run_experiment


def run(space, *, data_root=None, storage_path="results", name=None, num_samples=None, methods=None,
        settings=None, seeds=None, resume=False, backend="auto", workers=None, address=None, paper_only=False,
        smoke=False, one_study_at_a_time=False) -> Result:
    """Search every method and noise setting of ``space`` (a search-space file's path, or the
    same content as a dict), select by the proxy, retrain the winners with the final seeds and
    export everything into ``<storage_path>/<name>/``. The keyword arguments are the CLI's
    options. Returns a :class:`~tune_lnl.results.result.Result` (folder, best configs, finals
    as a DataFrame, report path)."""
    return run_experiment(space, data_root=data_root, storage_path=storage_path, name=name,
                          num_samples=num_samples, methods=methods, settings=settings, seeds=seeds, resume=resume,
                          backend=backend, workers=workers, address=address, paper_only=paper_only, smoke=smoke,
                          one_study_at_a_time=one_study_at_a_time)


def train(config, setting: str | None = None, *, method: str | None = None, data_root=None, seed: int | None = None,
          epochs: int | None = None, device: str | None = None, smoke: bool = False, checkpoint=None,
          on_start: Callable | None = None, on_epoch: Callable[[dict], None] | None = None) -> list[dict]:
    """Train ONE run without Ray and return its metric history (one dict per epoch: the proxy,
    ``proxy_best``, ``test_acc``, the analytics, ...). ``config``: a search-space file or dict
    (its fixed values and the paper's values of the searched ones, for ``setting``), an exported
    ``best_configs.yaml``, or a full run config (a dict with ``method``, e.g.
    ``Result.best_config(m, s)``; ``setting`` then unused). ``checkpoint``: save the final state
    there; ``on_start(method)`` is called once the method object is built (its data loaded),
    ``on_epoch(metrics)`` after every epoch."""
    if isinstance(config, dict) and "method" in config and "noise_type" in config:
        cfg = dict(config)
        if data_root is not None:
            cfg["data_root"] = str(resolve_data_root(data_root))
    else:
        if setting is None:
            raise ConfigError("train: name the noise setting (setting='sym-0.2', ...)")
        cfg = run_config(config, setting, resolve_data_root(data_root), smoke, method)
    for key, value in (("seed", seed), ("epochs", epochs), ("device", device)):
        if value is not None:
            cfg[key] = value
    m = method_class(cfg["method"])(cfg)
    try:
        if on_start is not None:
            on_start(m)
        while not m.done:
            metrics = m.step()
            if on_epoch is not None:
                on_epoch(metrics)
        if checkpoint:
            m.save(checkpoint)
        return list(m.history)
    finally:
        m.close()
