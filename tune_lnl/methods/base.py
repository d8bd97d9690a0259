"""The plain-PyTorch training object every method derives from (no Ray here).

A method is built from one flat *run config* (see :meth:`tune_lnl.config.SpaceConfig.base_config`), owns its data on
the training device, and advances one epoch per :meth:`Method.step`, which returns that epoch's
metrics: the configured proxy (the only thing that selects), test accuracy (logged, never
selects), and method-specific statistics. :meth:`state_dict` / :meth:`load_state_dict` capture
everything needed to continue identically: models, optimizers, per-sample tables, epoch, RNG
and generator states and the metric history.

Speed switches of every run config (:data:`SPEED_DEFAULTS`, all off by
default), applied here so that no method needs to know them: ``amp: bf16`` runs
:meth:`Method.train_epoch` and :meth:`Method.evaluate` under bf16 autocast, ``channels_last``
converts the models (and every 4-D input batch) to NHWC, ``compile`` compiles each model in
place (``nn.Module.compile``: attribute references and state-dict keys unchanged). None of them
is part of a checkpoint's :meth:`Method.identity`.
"""
from __future__ import annotations

import abc
import contextlib
import dataclasses
import math
import os
import re
import time
import traceback

import torch

from ..data import PROXIES, NoisyData, TrainingData, cached_noisy_data, logits_accuracy
from ..errors import CheckpointError, ConfigError, disk_full_cause, shown
from ..files import open_no_follow
from . import hparams
from .analytics import SelectionMeter, divergence, label_correction
from .checkpoint import plain, read_checkpoint
from .hparams import AMP_MODES
from .run_config import RunConfig

#: hyperparameters every method has that change how, not what, it computes (all off by
#: default; see README "Speed switches"; declared in :class:`tune_lnl.methods.hparams.Common`).
#: Not part of a checkpoint's identity.
SPEED_DEFAULTS = {k: hparams.defaults(hparams.Common)[k] for k in ("amp", "channels_last", "compile")}


#: the training devices a space file's ``device``, ``--device`` and ``tune_lnl.train(device=)`` name
DEVICES = "auto (a GPU when there is one), cpu, cuda, cuda:N"


def device_problem(name, here: bool = True) -> str | None:
    """Why ``name`` names no training device (None: it does): not one of :data:`DEVICES`, or
    (``here``) a CUDA device this machine does not have. The one check of a device name; a space
    file is checked without ``here`` when loaded (its trials may run on other machines)."""
    if not isinstance(name, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", name):
        return f"allowed: {DEVICES}"
    if here and name.startswith("cuda"):
        if not torch.cuda.is_available():
            return "this machine has no usable CUDA GPU; use 'auto' (GPU when there is one) or 'cpu'"
        count = torch.cuda.device_count()
        if int(name.partition(":")[2] or 0) >= count:
            return f"this machine has {count} CUDA GPU{'s' if count > 1 else ''} (cuda:0 to cuda:{count - 1})"
    return None


def pick_device(name: str = "auto") -> torch.device:
    """The torch device ``name`` (see :func:`device_problem`) names here; ConfigError if none."""
    problem = device_problem(name)
    if problem:
        raise ConfigError(f"device: {problem} (got {shown(name)})")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_optimizer(params, hp) -> torch.optim.Optimizer:
    """The optimizer of the hyperparameters ``hp`` (a method's ``Hyper`` object): Adam, unless
    they declare :class:`~tune_lnl.methods.hparams.Optimizer` with ``optimizer: sgd`` (SGD with
    ``momentum`` and ``weight_decay``: the IMAE paper's CIFAR-10 setup, He et al.). Both fused:
    one kernel for all tensors (on CPU about 2x faster steps)."""
    opt = hp if isinstance(hp, hparams.Optimizer) else hparams.Optimizer()
    if opt.optimizer == "adam":
        return torch.optim.Adam(params, lr=hp.lr, weight_decay=float(opt.weight_decay), fused=True)
    if opt.optimizer == "sgd":
        return torch.optim.SGD(params, lr=hp.lr, momentum=float(opt.momentum), weight_decay=float(opt.weight_decay),
                               fused=True)
    raise ConfigError(f"optimizer: unknown value {opt.optimizer!r}; allowed: adam, sgd")


def step_lr(epoch: int, hp, start: int = 0, end: int | None = None) -> float:
    """``lr_schedule: constant`` (or none declared) keeps ``lr``; ``step`` divides it by 10 at
    50% and 75% of the epochs (He et al.'s 32k and 48k of 64k iterations, the IMAE paper's
    CIFAR-10 schedule); :class:`~tune_lnl.methods.hparams.AnnealedLrSchedule`'s ``half`` divides it by
    10 from 50% on, its ``cosine`` anneals it to ``lr * lr_final`` (torch's ``CosineAnnealingLR``) --
    over the whole run, or over the phase ``[start, end)`` of a method whose phases each run their own
    schedule (Forward-T, T-Revision, PES)."""
    lr = float(hp.lr)
    schedule = hp.lr_schedule if isinstance(hp, hparams.LrSchedule) else "constant"
    e, length = epoch - start, (int(hp.epochs) if end is None else end) - start
    if schedule == "step":
        lr /= 10 ** ((e >= length // 2) + (e >= (3 * length) // 4))
    elif schedule == "half":
        lr /= 10 ** (e >= length // 2)
    elif schedule == "cosine":  # torch's CosineAnnealingLR(T_max=length, eta_min=lr * lr_final), epoch by epoch
        low = lr * float(hp.lr_final)
        lr = low + (lr - low) * (1.0 + math.cos(math.pi * e / max(1, length))) / 2.0
    return lr


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def autocast_context(device: torch.device, amp: str = "none"):
    """The context of the run config's ``amp``: nothing (``none``) or bf16 autocast on
    ``device`` (``bf16``; on CPU as well). Refuses ``bf16`` on a GPU without bf16 support."""
    if amp == "none":
        return contextlib.nullcontext()
    if amp == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError(f"amp: bf16 needs a GPU with bfloat16 support; {device} has none (use amp: none)")
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    raise ConfigError(f"amp: unknown value {amp!r}; allowed: {', '.join(AMP_MODES)}")


def _channels_last_input(module: torch.nn.Module, args: tuple):
    """Forward pre-hook of ``channels_last`` models: a 4-D input tensor becomes NHWC (a no-op for
    one that already is), whichever path it comes from (training batches, any evaluation)."""
    if args and isinstance(args[0], torch.Tensor) and args[0].dim() == 4:
        return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
    return None


class LossMeter:
    """Mean of per-batch losses, accumulated on the device (no host sync per batch)."""

    def __init__(self, device: torch.device):
        self.total = torch.zeros((), device=device)
        self.n = 0

    def add(self, loss: torch.Tensor) -> None:
        self.total += loss.detach()
        self.n += 1

    @property
    def mean(self) -> float:
        return float(self.total) / max(1, self.n)


class CheckpointMismatch(CheckpointError):
    """A checkpoint that loads but is not of this run: no tune_lnl checkpoint (no ``format``), or
    another run's (another :meth:`Method.identity`). A :class:`~tune_lnl.errors.CheckpointError`."""


class Method(abc.ABC):
    """Subclass this (or :class:`~tune_lnl.methods.single_network.SingleNetwork`,
    :class:`~tune_lnl.methods.two_networks.TwoNetworks`) for a method of your own; see
    "Write your own method" in docs/extending.md. Declare:

    * ``Hyper``: the method's hyperparameters, a frozen dataclass deriving from the base's
      ``Hyper`` with one :func:`~tune_lnl.methods.hparams.hp` field each (default, rules,
      meaning; see :mod:`tune_lnl.methods.hparams`); the method reads them as ``self.hp.<name>``;
    * optionally :meth:`check_config` for relations between hyperparameters;
    * the abstract methods: :meth:`build`, :meth:`train_epoch`, :meth:`eval_models`,
      :meth:`method_state`, :meth:`load_method_state`.

    A class of tune_lnl 0.1's form (``defaults = {key: default}`` and ``constraints = {key:
    rule}``) still works: its ``Hyper`` is made from them (:func:`~tune_lnl.methods.hparams.from_legacy`).
    """
    name = "base"
    #: the hyperparameters (see :mod:`tune_lnl.methods.hparams`): every method's
    #: :class:`~tune_lnl.methods.hparams.Common`
    Hyper = hparams.Common
    defaults = hparams.defaults(hparams.Common)
    #: names of per-sample tensors (e.g. PENCIL's / MLC's label table ``ytilde``) that belong to
    #: the checkpoint besides :meth:`method_state`
    tables: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        legacy = vars(cls).get("defaults")
        if isinstance(legacy, dict) and "Hyper" not in vars(cls):
            cls.Hyper = hparams.from_legacy(cls.__name__, legacy, dict(vars(cls).get("constraints") or {}), cls.Hyper)
        #: ``{key: default}`` of ``Hyper`` (read-only view, for plugins of tune_lnl 0.1's form); a
        #: ``Hyper`` that is no dataclass is refused by name when the class is resolved (registry)
        if dataclasses.is_dataclass(cls.Hyper):
            cls.defaults = hparams.defaults(cls.Hyper)

    def __init__(self, config: RunConfig | dict, data: NoisyData | None = None):
        #: the typed run config (:class:`~tune_lnl.methods.run_config.RunConfig`)
        self.run = RunConfig.of(config, self.Hyper, self.name)
        #: this run's hyperparameters: an object of the class's ``Hyper``
        self.hp = self.run.hp
        #: the run config's serialised (flat dict) form, as checkpoints and result files hold it
        self.cfg = self.run.flat()
        self.device = pick_device(self.run.device)
        self.amp = str(self.hp.amp)
        autocast_context(self.device, self.amp)  # refuse a bad amp before loading anything
        self.channels_last = bool(self.hp.channels_last)
        # the in-memory datasets are shared by every method of this process with the same data
        # keys (read-only); Clothing1M is loaded afresh (its workers are stopped by close())
        self.data: TrainingData = (data.to_device(self.device) if data is not None
                                   else cached_noisy_data(self.run.data, self.device))
        #: batched on-device augmentation ``f(x, generator)`` (the dataset's own), None if off
        self.augment = self.data.augmentation(self.hp.augment)
        self.gen = torch.Generator(device=self.device).manual_seed(self.run.seed)
        self.epoch = 0
        self.history: list[dict] = []
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(self.run.seed)
            self.build()
        self.prepare_models()

    @classmethod
    def check_config(cls, hp) -> list[tuple[str, object]]:
        """Relations between hyperparameters (``hp``: an object of ``cls.Hyper``) this method
        needs, as ``(problem, offending values)`` pairs (empty: fine). Called on every setting's
        paper config (and its smoke version) when a space file is loaded; the error names the
        setting."""
        return []

    # -- to implement -------------------------------------------------------------------------
    @abc.abstractmethod
    def build(self) -> None:
        """Create models, optimizers and per-sample state (global RNG seeded with ``seed``)."""

    @abc.abstractmethod
    def train_epoch(self) -> dict:
        """Train one epoch (``self.epoch`` is the 0-based index of it); return statistics."""

    @abc.abstractmethod
    def eval_models(self) -> dict[str, torch.nn.Module]:
        """Models to evaluate; the first one is *the* model whose accuracy is the proxy."""

    @abc.abstractmethod
    def method_state(self) -> dict:
        """The method's own checkpoint state (models, optimizers, anything per run)."""

    @abc.abstractmethod
    def load_method_state(self, state: dict) -> None:
        """Restore :meth:`method_state`."""

    # -- shared -------------------------------------------------------------------------------
    def prepare_models(self) -> None:
        """Apply ``channels_last`` and ``compile`` to every model of :meth:`eval_models` (after
        :meth:`build`; the optimizers keep their parameters: both act in place)."""
        for model in self.eval_models().values():
            if self.channels_last:
                model.to(memory_format=torch.channels_last)
                model.register_forward_pre_hook(_channels_last_input)
            if self.hp.compile:
                model.compile()

    def autocast(self):
        """The run's ``amp`` context (see :func:`autocast_context`)."""
        return autocast_context(self.device, self.amp)

    @property
    def epochs(self) -> int:
        return int(self.hp.epochs)

    @property
    def done(self) -> bool:
        return self.epoch >= self.epochs

    def train_batches(self):
        """Put the models in train mode; yield ``(dataset indices, images, noisy labels)`` for
        each batch of one epoch (a permutation from the run's generator, augmented on device)."""
        for model in self.eval_models().values():
            model.train()
        batches = self.data.batches(int(self.hp.batch_size), self.gen, self.augment)
        if not self.channels_last:
            yield from batches
            return
        with contextlib.closing(batches):
            for idx, x, noisy in batches:
                if x.dim() == 4:  # once per batch (the models' hook then finds it NHWC already)
                    x = x.contiguous(memory_format=torch.channels_last)
                yield idx, x, noisy

    def view_batches(self, plan: list[torch.Tensor], augments):
        """Put the models in train mode; yield ``(idx, views, noisy)`` for each index tensor of ``plan``:
        one view of the images per entry of ``augments`` (a batched augmentation, None:
        un-augmented), drawn from the run's generator (``TrainingData.view_batches``; the index
        batches of a semi-supervised epoch: :func:`tune_lnl.methods.semi.labeled_unlabeled_plan`)."""
        for model in self.eval_models().values():
            model.train()
        batches = self.data.view_batches(plan, list(augments), self.gen)
        with contextlib.closing(batches):
            for idx, views, noisy in batches:
                if self.channels_last:
                    views = [v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v for v in views]
                yield idx, views, noisy

    def evaluate(self) -> dict:
        """Test accuracy (logged, never selects) and every proxy the data offers (all are logged,
        the configured one selects; :data:`tune_lnl.data.proxies.PROXIES` says which are scored
        when): ``noisy_val``, ``clean_val`` and, for the in-memory datasets, ``clean_intact``
        (Clothing1M: a pass over its streamed training set, only when it is the proxy). With two
        networks also their divergence (:func:`tune_lnl.methods.analytics.divergence`, MLC Eq. 1) on each
        held-out split: ``divergence_test``, ``divergence_noisy_val``, ``divergence_clean_val``."""
        d = self.data
        offered, selecting = d.splits(), self.run.data.proxy
        splits = [s for s in ("test", *PROXIES) if s in offered
                  and (s == "test" or PROXIES[s].evaluated(d.in_memory, s == selecting))]
        models = self.eval_models()
        out: dict[str, float] = {}
        for split in splits:
            labels = d.labels(split)
            logits = {tag: d.logits(model, split) for tag, model in models.items()}
            for i, (tag, z) in enumerate(logits.items()):
                suffix = "" if i == 0 else f"_{tag}"
                out[f"{split}_acc{suffix}"] = logits_accuracy(z, labels)
            if len(logits) == 2 and (split == "test" or PROXIES[split].held_out):
                out[f"divergence_{split}"] = divergence(*logits.values())
        return out

    def selection_meter(self) -> SelectionMeter:
        """A fresh :class:`~tune_lnl.methods.analytics.SelectionMeter` over this run's training labels."""
        return SelectionMeter(self.data.train_noisy, self.data.train_clean)

    def label_correction(self, table: torch.Tensor) -> dict[str, float]:
        """Label-correction analytics of a label table (:func:`tune_lnl.methods.analytics.label_correction`
        of its arg-max): ``label_acc``, ``label_acc_clean``, ``label_acc_noisy``. Never selects."""
        return label_correction(table.argmax(1), self.data.train_noisy, self.data.train_clean)

    def step(self) -> dict:
        """One epoch of training plus evaluation; returns (and records) the epoch's metrics."""
        t0 = time.perf_counter()
        with self.autocast():
            stats = self.train_epoch()
        if not math.isfinite(stats.get("train_loss", 0.0)):
            raise FloatingPointError(f"training loss is {stats['train_loss']} at epoch {self.epoch + 1}: diverged")
        self.epoch += 1
        t_train = time.perf_counter() - t0
        with self.autocast():
            evaluation = self.evaluate()
        metrics = {"epoch": self.epoch, **stats, **evaluation}
        proxy = metrics[f"{self.run.data.proxy}_acc"]
        if math.isnan(proxy):
            raise FloatingPointError(f"proxy {self.run.data.proxy} is NaN at epoch {self.epoch}")
        prev = self.history[-1] if self.history else None
        if prev is None or proxy > prev["proxy_best"]:  # first maximum wins ties: earliest epoch
            best, best_epoch = proxy, self.epoch
        else:
            best, best_epoch = prev["proxy_best"], prev["proxy_best_epoch"]
        metrics.update(proxy=proxy, proxy_best=best, proxy_best_epoch=best_epoch,
                       epoch_time=time.perf_counter() - t0, train_time=t_train)
        realised = self.data.info.get("noise_rate_realised")  # the noise this run trains on, as drawn
        if realised is not None:
            metrics["noise_rate_realised"] = float(realised)
        self.history.append(metrics)
        return metrics

    def try_step(self) -> tuple[dict | None, dict | None]:
        """:meth:`step`, for the search backends: ``(metrics, None)``, or ``(None, failure)`` when
        the method itself fails (divergence: a NaN/inf loss or proxy, or any exception it raises).
        Such a failure is deterministic, so it is reported (``failure``: ``error``, ``traceback``,
        ``epoch``), never retried; only infrastructure faults (a dying process) are."""
        try:
            metrics = self.step()
        except Exception as exc:  # noqa: BLE001 -- reported, with its traceback
            return None, {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
                          "epoch": self.epoch + 1}
        # the seeds travel with every result: result.json alone says how to rerun the run
        metrics.update(seed=self.run.seed, noise_seed=int(self.run.data.noise_seed))
        return metrics, None

    def state_dict(self) -> dict:
        """Everything :meth:`load_state_dict` needs, as values ``torch.load(weights_only=True)``
        rebuilds (:func:`~tune_lnl.methods.checkpoint.plain`: NumPy scalars become numbers, paths
        strings; any other object raises ``TypeError``)."""
        return plain({
            "format": "tune_lnl.checkpoint/1",
            "method": self.run.method or self.name,
            "identity": self.identity(),
            "config": dict(self.cfg),
            "epoch": self.epoch,
            "history": list(self.history),
            "generator": self.gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "method_state": self.method_state(),
            "tables": {name: getattr(self, name).clone() for name in self.tables},
        })

    def identity(self) -> dict:
        """What a checkpoint must agree on to be loadable into this object."""
        return self.identity_of(self.run)

    @staticmethod
    def identity_of(run: RunConfig) -> dict:
        """:meth:`identity` of the run config ``run`` (the same dict, key for key, as earlier
        versions wrote: their checkpoints still load)."""
        d = run.data
        out = {"method": run.method or None, "variant": getattr(run.hp, "variant", None), "dataset": d.dataset,
               "noise_type": d.noise_type, "noise_rate": d.noise_rate, "noise_seed": d.noise_seed, "proxy": d.proxy,
               "val_fraction": d.val_fraction, "train_subset": d.train_subset, "model": run.hp.model}
        if d.dataset_options:  # (absent when empty: checkpoints of earlier versions still load)
            out["dataset_options"] = dict(d.dataset_options)
        if d.noise_options:  # (likewise)
            out["noise_options"] = dict(d.noise_options)
        return out

    def load_state_dict(self, state: dict) -> None:
        if not isinstance(state, dict) or state.get("format") != "tune_lnl.checkpoint/1":
            raise CheckpointMismatch("not a tune_lnl checkpoint (missing or unknown 'format')")
        if state.get("identity") != plain(self.identity()):  # as saved (a path: its string)
            raise CheckpointMismatch(
                f"checkpoint is of another run: checkpoint {state.get('identity')} vs this run {self.identity()}")
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])
        self.gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.load_method_state(state["method_state"])
        self._match_optimizer_layouts()
        for name in self.tables:
            setattr(self, name, state["tables"][name].to(self.device).clone())

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        return [v for v in vars(self).values() if isinstance(v, torch.optim.Optimizer)]

    def _match_optimizer_layouts(self) -> None:
        """Give every per-parameter optimizer state tensor (Adam's moments, SGD's momentum) its
        parameter's memory layout: a checkpoint of a ``channels_last`` run loaded into a run
        without it (or the reverse) restores NHWC moments next to NCHW parameters, and the fused
        optimizers pair elements by position in memory, not by index."""
        for opt in self._optimizers():
            for p, st in opt.state.items():
                for k, v in st.items():
                    if isinstance(v, torch.Tensor) and v.shape == p.shape and v.stride() != p.stride():
                        st[k] = torch.empty_like(p, dtype=v.dtype).copy_(v)

    def close(self) -> None:
        """Release what the data holds open (Clothing1M's decoding workers; never cached, so no
        other method shares what this closes)."""
        close = getattr(self.data, "close", None)
        if close is not None:
            close()

    def save(self, path) -> None:
        """Atomic write: a crash never leaves a half-written checkpoint at ``path``. A write
        that fails removes the temporary file; a full disk raises the ``OSError`` (ENOSPC,
        naming that file) that torch re-raises as a bare ``RuntimeError``."""
        tmp = f"{path}.tmp"
        state = self.state_dict()
        try:
            with open_no_follow(tmp, "wb") as f:  # a link planted there is refused, not written through
                torch.save(state, f)
            os.replace(tmp, path)
        except Exception as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            full = disk_full_cause(exc)
            if full is None:
                raise
            if full.filename is None:
                full.filename = tmp
            raise full from None

    def load(self, path) -> None:
        """Continue from the checkpoint at ``path``, read with ``torch.load(weights_only=True)``:
        nothing in the file is ever run. A file that does not load that way (planted, corrupt,
        truncated, empty) or is of another run raises :class:`~tune_lnl.errors.CheckpointError`
        (:class:`CheckpointMismatch`) naming it, with nothing loaded; a missing file ``OSError``."""
        state = read_checkpoint(path)
        try:
            self.load_state_dict(state)
        except CheckpointMismatch as exc:
            raise CheckpointMismatch(f"{path}: {exc}; delete it to restart this run from scratch") from None
