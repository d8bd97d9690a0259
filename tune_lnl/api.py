"""The Python API: :func:`run` (a whole experiment, as ``python -m tune_lnl.search``) and
:func:`train` (one training, as ``python -m tune_lnl.train``). Errors raise
:class:`~tune_lnl.errors.ConfigError` (bad input), :class:`~tune_lnl.errors.DataError` (data
absent or unusable) and :class:`~tune_lnl.errors.SearchError` (no result could be produced),
with the messages the command line prints.
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
from pathlib import Path
from typing import Callable

from .config import DICT_LABEL, run_config
from .data import resolve_data_root
from .errors import ConfigError, Interrupted, argument_error, shown, whole_number
from .methods import RunConfig, method_class
from .methods.base import device_problem
from .results.result import Result
from .results.trackers import check_tracker, tracking
from .search import run_experiment
from .search.interrupt import stop_signals


def run(space, *, data_root=None, storage_path="results", name=None, num_samples=None, methods=None,
        settings=None, seeds=None, resume=False, backend="auto", workers=None, address=None, paper_only=False,
        smoke=False, one_study_at_a_time=False, tracker=None, progress=None) -> Result:
    """Search every method and noise setting of ``space`` (a search-space file's path, or the
    same content as a dict), select by the proxy, retrain the winners with the final seeds and
    export everything into ``<storage_path>/<name>/``. The keyword arguments are the CLI's
    options (``methods``, ``settings``: a list of names, or one name as a string). Every
    argument is checked (by type, then by value) before anything is written: a refused call
    raises :class:`ConfigError` and leaves no folder behind. Returns a
    :class:`~tune_lnl.results.result.Result` (folder, best configs, finals as a DataFrame,
    report path). ``tracker="mlflow"``: every trial's and final seed's config and per-epoch
    metrics also go to MLflow (:mod:`tune_lnl.results.trackers`; ``pip install -e ".[mlflow]"``).
    ``progress``: a function called every few seconds with a
    :class:`~tune_lnl.search.progress.ProgressUpdate` (``percent``, ``eta_s``, per-study counts);
    None (default): a tqdm bar when a terminal or a notebook is attached; False: no bar. A status
    line with the ETA is printed every 30 s and at the end of each study either way.

    Ctrl-C (SIGINT; a notebook's "interrupt") stops the search cleanly: what runs is stopped
    (Ray saves each Tune run's state one last time), then :class:`~tune_lnl.errors.Interrupted`
    is raised, a ``KeyboardInterrupt`` (so it stops a script or a cell as Ctrl-C always does, and
    ``except Exception`` does not swallow it) whose message is the one line to go on with:
    ``interrupted: nothing lost; resume with: tune_lnl.run(..., resume=True)`` (this call's
    arguments). A second Ctrl-C only hurries the shutdown; it never raises inside it."""
    with stop_signals(), _interrupted_call(locals()), tracking(check_tracker(tracker)):
        return run_experiment(space, data_root=data_root, storage_path=storage_path, name=name,
                              num_samples=num_samples, methods=methods, settings=settings, seeds=seeds,
                              resume=resume, backend=backend, workers=workers, address=address,
                              paper_only=paper_only, smoke=smoke, one_study_at_a_time=one_study_at_a_time,
                              progress=progress)


def plan(space, *, data_root=None, storage_path="results", name=None, num_samples=None, methods=None,
         settings=None, seeds=None, resume=False, backend="auto", workers=None, address=None, paper_only=False,
         smoke=False, one_study_at_a_time=False, tracker=None, progress=None):
    """What :func:`run` with the same arguments would train, and how long that takes here:
    trains nothing, writes nothing (``tracker`` and ``progress`` are accepted and unused, so the
    same keyword arguments serve both). Returns an :class:`~tune_lnl.search.estimate.Estimate`
    (``studies``, ``trial_epochs``, ``slots``, ``seconds``, ``hours``; ``text()``: the table
    ``--plan`` prints; ``line()``: ``estimated: N trial-epochs, H h on S slots``). Seconds per
    epoch come from earlier runs under ``storage_path``, else a short calibration here."""
    from .search.experiment import plan_experiment
    return plan_experiment(space, data_root=data_root, storage_path=storage_path, name=name,
                           num_samples=num_samples, methods=methods, settings=settings, seeds=seeds, resume=resume,
                           backend=backend, workers=workers, address=address, paper_only=paper_only, smoke=smoke,
                           one_study_at_a_time=one_study_at_a_time)


def resume_call(args: dict) -> str:
    """The Python call that continues an interrupted :func:`run`: ``tune_lnl.run(...)`` with
    the arguments given (those that differ from their defaults) and ``resume=True``; a space
    given as a dict is shown as ``space`` (the caller's own variable)."""
    defaults = {k: p.default for k, p in inspect.signature(run).parameters.items()}
    shown_args = [repr(str(args["space"])) if isinstance(args["space"], (str, os.PathLike)) else "space"]
    shown_args += [f"{k}={args[k]!r}" for k in defaults  # (in the signature's order)
                   if k not in ("space", "resume") and k in args and args[k] != defaults[k]]
    return f"tune_lnl.run({', '.join(shown_args + ['resume=True'])})"


@contextlib.contextmanager
def _interrupted_call(args: dict):
    """A :class:`KeyboardInterrupt` out of :func:`run`: :class:`Interrupted` with the line to
    resume by (raised from None: the search's internal frames are not the user's business)."""
    try:
        yield
    except KeyboardInterrupt as exc:
        started = getattr(exc, "started", False)
        message = (f"interrupted: nothing lost; resume with: {resume_call(args)}" if started else
                   "interrupted before the experiment started: nothing to resume; run the same call again")
        raise Interrupted(message, signum=getattr(exc, "signum", 2), started=started) from None


def train(config, setting: str | None = None, *, method: str | None = None, data_root=None, seed: int | None = None,
          epochs: int | None = None, device: str | None = None, smoke: bool = False, checkpoint=None,
          on_start: Callable | None = None, on_epoch: Callable[[dict], None] | None = None,
          quiet: bool = False) -> list[dict]:
    """Train ONE run without Ray and return its metric history (one dict per epoch: the proxy,
    ``proxy_best``, ``test_acc``, the analytics, ...). ``config``: a search-space file or dict
    (its fixed values and the paper's values of the searched ones, for ``setting``), an exported
    ``best_configs.yaml``, or a full run config (a dict with ``method``, e.g.
    ``Result.best_config(m, s)``; ``setting`` then unused). ``checkpoint``: save the final state
    there (its folder must exist: checked before training); ``on_start(method)`` is called once
    the method object is built (its data loaded), ``on_epoch(metrics)`` after every epoch. Prints
    what it trains on and a line per epoch (the proxy, the test accuracy, the epoch's wall time),
    as ``python -m tune_lnl.train`` does, unless ``quiet``. Every argument is checked before any
    data is loaded (:class:`ConfigError`)."""
    _check_train_arguments(setting, method, data_root, smoke, checkpoint, on_start, on_epoch, quiet)
    overrides = {"seed": None if seed is None else whole_number("seed", seed),
                 "epochs": None if epochs is None else whole_number("epochs", epochs), "device": device}
    if overrides["seed"] is not None and overrides["seed"] < 0:
        raise ConfigError(f"--seed must be at least 0 (got {overrides['seed']})")
    if overrides["epochs"] is not None and overrides["epochs"] < 1:
        raise ConfigError(f"--epochs must be at least 1 (got {overrides['epochs']})")
    if checkpoint:
        _check_checkpoint(Path(checkpoint).expanduser())
    run = _typed_run(config, setting, method, data_root, smoke, overrides)
    problem = device_problem(run.device)
    if problem:
        where = "--device" if device is not None else f"{DICT_LABEL if isinstance(config, dict) else config}: device"
        raise ConfigError(f"{where}: {problem} (got {shown(run.device)})")
    m = method_class(run.method)(run)
    try:
        if not quiet:
            _print_start(m, run.setting or setting)
        if on_start is not None:
            on_start(m)
        while not m.done:
            metrics = m.step()
            if not quiet:
                _print_epoch(metrics, run.data.proxy)
            if on_epoch is not None:
                on_epoch(metrics)
        if checkpoint:
            m.save(checkpoint)
        return list(m.history)
    finally:
        m.close()


def _typed_run(config, setting, method, data_root, smoke, overrides: dict) -> RunConfig:
    """The run :func:`train` trains: ``config`` as a full run config (a dict with ``method`` and
    ``noise_type``) or read by :func:`~tune_lnl.config.run_config`, with ``data_root`` and the
    ``overrides`` (``seed``, ``epochs``, ``device``; None: kept) applied."""
    if isinstance(config, dict) and "method" in config and "noise_type" in config:
        cfg = dict(config)
        if data_root is not None:
            cfg["data_root"] = str(resolve_data_root(data_root))
    else:
        if setting is None:
            raise ConfigError("train: name the noise setting (setting='sym-0.2', ...)")
        cfg = run_config(config, setting, resolve_data_root(data_root), smoke, method)
    run = RunConfig.of(cfg, method_class(cfg["method"]).Hyper)
    if overrides["epochs"] is not None:
        run = run.replace(hp=dataclasses.replace(run.hp, epochs=overrides["epochs"]))
    return run.replace(**{k: overrides[k] for k in ("seed", "device") if overrides[k] is not None})


def _check_train_arguments(setting, method, data_root, smoke, checkpoint, on_start, on_epoch, quiet) -> None:
    """:func:`train`'s arguments by type (``config``: :func:`run_config`; the numbers: there)."""
    for key, value in (("setting", setting), ("method", method)):
        if value is not None and not isinstance(value, str):
            raise argument_error(key, "a name (a string) or None", value)
    for key, value in (("data_root", data_root), ("checkpoint", checkpoint)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise argument_error(key, "a path or None", value)
    for key, value in (("smoke", smoke), ("quiet", quiet)):
        if not isinstance(value, bool):
            raise argument_error(key, "True or False", value)
    for key, value in (("on_start", on_start), ("on_epoch", on_epoch)):
        if value is not None and not callable(value):
            raise argument_error(key, "a callable or None", value)


def _check_checkpoint(path: Path) -> None:
    """A checkpoint that could not be written is refused before training, not after it: its
    folder must exist and take a file (as :meth:`Method.save` writes, ``<path>.tmp`` first),
    and ``path`` must not be a folder."""
    if path.is_dir():
        raise ConfigError(f"--checkpoint: {path} is a folder; give a file's path in it (e.g. {path / 'final.pt'})")
    if not path.parent.exists():
        raise ConfigError(f"--checkpoint: {path.parent}: no such folder (create it first)")
    if not path.parent.is_dir():
        raise ConfigError(f"--checkpoint: {path.parent} is not a folder")
    probe = Path(f"{path}.tmp")
    try:
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"--checkpoint: cannot write {path} ({exc.strerror or exc})") from None


def _print_start(m, setting) -> None:
    info = m.data.info
    noise = info.get("noise_rate_realised")
    print(f"{m.run.method} on {m.run.data.dataset} {setting}: {info['n_train']} train, {info['n_val']} noisy-val, "
          f"{info['n_test']} test; realised noise {'real (unknown)' if noise is None else f'{noise:.4f}'}; "
          f"device {m.device}", flush=True)


def _print_epoch(metrics: dict, proxy: str) -> None:
    m = metrics
    print(f"epoch {m['epoch']:4d}  proxy({proxy}) {m['proxy']:.4f}  best {m['proxy_best']:.4f}"
          f"@{m['proxy_best_epoch']}  test {m['test_acc']:.4f}  time {m['epoch_time']:.2f}s", flush=True)
