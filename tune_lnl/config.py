"""Search-space YAML: loading, validation, and the run configs it describes.

Data flow: YAML -> :class:`SpaceConfig` (validated here, before any work) -> run configs (flat
dicts, one per trial / final seed) -> method objects.

Every error names the file, the key (as a dotted path) and the offending value.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from .data import PROXIES, REAL_NOISE, open_dataset
from .data.noise import (
    HUMAN_NOISE,
    RATE_TYPES,
    asymmetric_matrix,
    check_matrix,
    expected_rate,
    file_sha256,
    read_matrix,
)
from .errors import ConfigError, DataError, shown
from .methods import RunConfig, defaults_of, method_class, rules_of
from .methods.base import device_problem
from .methods.constraints import OneOf, problems

TOP_KEYS = {"name", "method", "methods", "dataset", "proxy", "val_fraction", "clean_val_size", "train_subset",
            "noise_seed", "device", "search", "finals", "fixed", "space", "paper", "settings", "smoke"}
SEARCH_KEYS = {"num_samples": int, "seed": int, "grace_period": int, "reduction_factor": int,
               "cpus_per_trial": (int, float), "gpus_per_trial": (int, float), "pruner": str,
               "studies_at_once": bool, "max_concurrent_per_study": (int, str)}
#: ``search.pruner`` of the Ray-free Optuna backend: Optuna's SuccessiveHalvingPruner (ASHA's
#: rungs: ``grace_period``, ``reduction_factor``) or HyperbandPruner (several such brackets). The
#: Ray Tune backend always uses ASHA and ignores it.
PRUNERS = ("successive_halving", "hyperband")
FINALS_KEYS = {"seeds": int, "last_k": int}
SMOKE_KEYS = {"train_subset", "test_subset", "num_samples", "seeds", "grace_period", "reduction_factor", "fixed"}
SETTING_KEYS = {"noise", "fixed", "space", "paper"}
METHOD_KEYS = {"fixed", "space", "paper", "settings", "smoke"}
DIST_KEYS = {"low", "high", "log", "int", "choices"}
#: a name that becomes a folder inside ``--storage-path`` (the experiment, a setting): letters,
#: digits, '.', '_', '-', at most 100 characters, not starting with '.' (so never '.', '..', a
#: hidden folder, an absolute path or one with separators); :data:`METHOD_FOLDER` also allows ':'
#: (a plugin method's spec ``module:Class`` is its folder name: not portable to Windows)
FOLDER_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")
METHOD_FOLDER = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._:-]{0,99}")
#: ``kind`` of an exported ``best_configs.yaml`` (a file :func:`run_config` also reads)
BEST_KIND = "tune_lnl.best_configs"
# The value rules of a method's keys (rates, signs, choices) live with the method, on its class
# (``constraints``, :mod:`tune_lnl.methods.constraints`); this file applies them.


def milestones(grace: int, rf: int, epochs: int) -> list[int]:
    """The epochs at which the pruner compares trials (``grace, grace*rf, ...`` below
    ``epochs``), then ``epochs`` itself: where each segment of a trial's training ends. As Ray's
    ASHA and Optuna's successive halving place their rungs (``search.grace_period``,
    ``search.reduction_factor``; a factor below 2, which a space file cannot give, counts as 2)."""
    out, rung = [], grace
    while rung < epochs:
        out.append(rung)
        rung *= max(2, rf)
    return out + [epochs]


@dataclass(frozen=True)
class SearchOptions:
    """``search:`` of a space file (types: :data:`SEARCH_KEYS`)."""
    num_samples: int = 20              #: trials per (method, setting) study
    seed: int = 0                      #: the samplers' seed
    grace_period: int = 20             #: ASHA's first rung (epochs)
    reduction_factor: int = 3          #: ASHA's reduction factor
    cpus_per_trial: int | float = 1
    gpus_per_trial: int | float = 0.25
    pruner: str = "successive_halving"  #: the Optuna backend's pruner (:data:`PRUNERS`)
    #: every (method, setting) search at once, each setting's finals as soon as its search ends
    #: (False: one study after another, then the finals)
    studies_at_once: bool = True
    #: trials of one study at a time; "auto": see tune_lnl.search.studies.study_cap
    max_concurrent_per_study: int | str = "auto"


@dataclass(frozen=True)
class FinalsOptions:
    """``finals:`` of a space file: the retraining of each selected config."""
    seeds: int = 5     #: final runs (seeds 0..seeds-1)
    last_k: int = 10   #: the "last" column: mean test accuracy of the last k epochs


SEARCH_DEFAULTS = {f.name: f.default for f in dataclasses.fields(SearchOptions)}
FINALS_DEFAULTS = {f.name: f.default for f in dataclasses.fields(FinalsOptions)}


@dataclass
class Dist:
    """One searched hyperparameter: a float/int range (optionally log) or a list of choices."""
    low: float | None = None
    high: float | None = None
    log: bool = False
    int: bool = False
    choices: list | None = None

    def to_optuna(self):
        import optuna.distributions as od
        if self.choices is not None:
            return od.CategoricalDistribution(self.choices)
        if self.int:
            return od.IntDistribution(int(self.low), int(self.high), log=self.log)
        return od.FloatDistribution(float(self.low), float(self.high), log=self.log)

    def contains(self, v) -> bool:
        if self.choices is not None:
            return v in self.choices
        return self.low <= v <= self.high


@dataclass
class Setting:
    name: str
    noise_type: str
    noise_rate: float
    fixed: dict
    space: dict[str, Dist]
    paper: dict
    #: what the noise type needs beyond a rate: ``labels`` (human); ``matrix``, or ``path`` and ``sha256`` (matrix)
    noise_options: dict = field(default_factory=dict)


@dataclass
class SpaceConfig:
    path: Path
    name: str
    method: str
    dataset: str
    dataset_options: dict
    proxy: str
    val_fraction: float
    clean_val_size: int
    train_subset: int
    noise_seed: int
    device: str
    search: SearchOptions
    finals: FinalsOptions
    fixed: dict
    space: dict[str, Dist]
    paper: dict
    settings: dict[str, Setting]
    smoke: dict = field(default_factory=dict)
    is_smoke: bool = False
    raw: dict = field(default_factory=dict)

    # -- run configs --------------------------------------------------------------------------
    def space_for(self, setting: str) -> dict[str, Dist]:
        return {**self.space, **self.settings[setting].space}

    def base_config(self, setting: str, data_root: str) -> dict:
        """Everything a trial of ``setting`` gets before Optuna's sampled values."""
        s = self.settings[setting]
        cfg = dict(defaults_of(self.method))
        cfg.update(self.fixed)
        cfg.update(s.fixed)
        if self.is_smoke:
            cfg.update(self.smoke.get("fixed", {}))
        cfg.update(method=self.method, dataset=self.dataset, dataset_options=dict(self.dataset_options),
                   data_root=str(data_root), proxy=self.proxy,
                   val_fraction=self.val_fraction, clean_val_size=self.clean_val_size, noise_seed=self.noise_seed,
                   noise_type=s.noise_type, noise_rate=s.noise_rate, noise_options=copy.deepcopy(s.noise_options),
                   setting=setting, device=self.device, seed=0,
                   train_subset=self.smoke.get("train_subset", self.train_subset) if self.is_smoke
                   else self.train_subset,
                   test_subset=self.smoke.get("test_subset", 0) if self.is_smoke else 0)
        for k in self.space_for(setting):
            cfg.pop(k, None)
        return cfg

    def paper_point(self, setting: str) -> dict:
        """The paper's values of the searched hyperparameters: the first trial of each search."""
        defaults = defaults_of(self.method)
        s = self.settings[setting]
        return {k: s.paper.get(k, self.paper.get(k, defaults.get(k))) for k in self.space_for(setting)}

    def paper_config(self, setting: str, data_root: str) -> dict:
        """The run config of ``setting`` at the paper's values (serialised: a flat dict)."""
        return {**self.base_config(setting, data_root), **self.paper_point(setting)}

    def paper_run(self, setting: str, data_root: str) -> RunConfig:
        """:meth:`paper_config`, typed."""
        return self.typed_run(self.paper_config(setting, data_root))

    def epochs(self, setting: str) -> int:
        """How many epochs a run of ``setting`` trains (its paper config's; ``--smoke`` applied)."""
        return int(self.paper_run(setting, "").hp.epochs)

    def typed_run(self, flat: dict) -> RunConfig:
        """The typed form of a flat run config of this space's method (e.g. a trial's
        :meth:`base_config` plus its sampled values)."""
        return RunConfig.of(flat, method_class(self.method).Hyper, self.method)

    @property
    def num_samples(self) -> int:
        return int(self.smoke.get("num_samples", 3) if self.is_smoke else self.search.num_samples)

    @property
    def final_seeds(self) -> int:
        return int(self.smoke.get("seeds", 2) if self.is_smoke else self.finals.seeds)

    @property
    def reduction_factor(self) -> int:
        if self.is_smoke:
            return int(self.smoke.get("reduction_factor", self.search.reduction_factor))
        return int(self.search.reduction_factor)

    @property
    def grace_period(self) -> int:
        return int(self.smoke.get("grace_period", 1) if self.is_smoke else self.search.grace_period)


# -- validation ---------------------------------------------------------------------------------
def check_folder_name(value, where: str, plugin: bool = False) -> str:
    """``value`` when it can be a folder name (see :data:`FOLDER_NAME`; ``plugin``: a method's
    spec, :data:`METHOD_FOLDER`), else a :class:`ConfigError` naming ``where`` (the file and key,
    or ``--name``): the experiment's, settings' and methods' names are joined to
    ``--storage-path``, and none may lead a write outside it. The one check of every such name."""
    if not isinstance(value, str) or not (METHOD_FOLDER if plugin else FOLDER_NAME).fullmatch(value):
        chars = "'.', '_', '-' and ':'" if plugin else "'.', '_' and '-'"
        raise ConfigError(f"{where}: {shown(value)} is not a portable folder name: use letters, digits, {chars} "
                          f"(at most 100 characters), not starting with '.'")
    return value


class _Checker:
    """Validation helpers; ``path`` is the space file (None for a dict), ``label`` what errors
    name as the file, ``folder`` where relative paths inside the space are resolved."""

    def __init__(self, path: Path | None, label: str | None = None):
        self.path = path
        self.label = label or str(path)
        self.folder = path.resolve().parent if path is not None else Path.cwd()

    def fail(self, key: str, msg: str, value: Any = None):
        raise ConfigError(f"{self.label}: {shown(key, as_text=True)}: {msg} (got {shown(value)})")

    def where(self, key: str) -> str:
        return f"{self.label}: {key}"

    def mapping(self, key: str, value, allowed: set | None = None) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(key, "must be a mapping", value)
        if allowed is not None:
            for k in value:
                if k not in allowed:
                    self.fail(f"{key}.{k}" if key else str(k),
                              f"unknown key; allowed: {', '.join(sorted(allowed))}", k)
        return value

    def typed(self, key: str, value, typ):
        if isinstance(value, bool) and typ is not bool and bool not in (typ if isinstance(typ, tuple) else (typ,)):
            self.fail(key, f"must be {_tname(typ)}, not a boolean", value)
        if typ is float or typ == (int, float):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                self.fail(key, "must be a number", value)
            if not math.isfinite(value):
                self.fail(key, "must be finite", value)
            return value
        if not isinstance(value, typ):
            self.fail(key, f"must be {_tname(typ)}", value)
        return value

    def choice(self, key: str, value, allowed):
        if value not in allowed:
            self.fail(key, f"unknown value; allowed: {', '.join(map(str, allowed))}", value)
        return value

    def rate(self, key: str, value):
        self.typed(key, value, float)
        if not 0.0 <= value < 1.0:
            self.fail(key, "must lie in [0, 1)", value)
        return value


def _tname(typ) -> str:
    if isinstance(typ, tuple):
        return " or ".join(t.__name__ for t in typ)
    return {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}.get(
        typ.__name__, typ.__name__)


class _Keys(dict):
    """A method's run-config keys with their defaults, and its value rules (``.rules``)."""

    def __init__(self, method: str, where: str):
        super().__init__(defaults_of(method, where))
        self.rules = rules_of(method, where)


def _check_hparams(ck: _Checker, key: str, values: dict, defaults: _Keys, method: str | None = None) -> dict:
    """``method``: named in the error when a key shared by several methods is unknown to one."""
    if method is not None and isinstance(values, dict):
        for k in values:
            if k not in defaults:
                ck.fail(f"{key}.{k}", f"unknown key for method {method} (a shared key must be valid for every "
                        f"method); allowed: {', '.join(sorted(defaults))}", k)
    values = ck.mapping(key, values, set(defaults))
    out = {}
    for k, v in values.items():
        _check_value(ck, f"{key}.{k}", k, v, defaults)
        out[k] = float(v) if isinstance(defaults[k], float) and not isinstance(v, bool) else v
    return out


def _check_value(ck: _Checker, key: str, name: str, v, keys: _Keys, bound: bool = False):
    """The type the default has (unless the method lists the allowed values), then the
    method's rules for ``name``."""
    rules = keys.rules.get(name, ())
    default = keys[name]
    if any(isinstance(r, OneOf) for r in rules):
        pass  # the choices decide
    elif isinstance(default, bool):
        ck.typed(key, v, bool)
    elif isinstance(default, int):
        ck.typed(key, v, int)
    elif isinstance(default, float):
        ck.typed(key, v, float)
    elif isinstance(default, str):
        ck.typed(key, v, str)
    for problem in problems(rules, v, bound=bound):
        ck.fail(key, problem, v)


def _check_space(ck: _Checker, key: str, space, defaults: _Keys) -> dict[str, Dist]:
    space = ck.mapping(key, space, set(defaults))
    out = {}
    for name, spec in space.items():
        k = f"{key}.{name}"
        spec = ck.mapping(k, spec, DIST_KEYS)
        if "choices" in spec:
            choices = spec["choices"]
            if not isinstance(choices, list) or not choices:
                ck.fail(f"{k}.choices", "must be a non-empty list", choices)
            for c in choices:
                _check_value(ck, f"{k}.choices", name, c, defaults)
            out[name] = Dist(choices=list(choices))
            continue
        for bound in ("low", "high"):
            if bound not in spec:
                ck.fail(k, f"a range needs '{bound}' (or give 'choices')", spec)
            ck.typed(f"{k}.{bound}", spec[bound], float)
        lo, hi = spec["low"], spec["high"]
        log = ck.typed(f"{k}.log", spec.get("log", False), bool)
        is_int = ck.typed(f"{k}.int", spec.get("int", isinstance(defaults[name], int)
                                              and not isinstance(defaults[name], bool)), bool)
        if isinstance(defaults[name], (bool, str)):
            ck.fail(k, "a range is only possible for a numeric hyperparameter; use 'choices'", spec)
        if isinstance(defaults[name], int) and not is_int:
            ck.fail(f"{k}.int", "this hyperparameter is an integer", spec.get("int"))
        if is_int and (lo != int(lo) or hi != int(hi)):
            ck.fail(k, "an integer range needs integer bounds", spec)
        if not lo < hi:
            ck.fail(k, "empty or inverted range: low must be < high", spec)
        if log and lo <= 0:
            ck.fail(f"{k}.low", "a log range must stay above zero", lo)
        for bound, v in (("low", lo), ("high", hi)):
            for problem in problems(defaults.rules.get(name, ()), v, bound=True):
                ck.fail(f"{k}.{bound}", problem, v)
        out[name] = Dist(low=lo, high=hi, log=log, int=is_int)
    return out


@dataclass
class Experiment:
    """A search-space file (or dict): one or several methods over the same noise settings."""
    path: Path | None
    name: str
    dataset: str
    dataset_options: dict
    methods: dict[str, SpaceConfig]
    raw: dict

    @property
    def first(self) -> SpaceConfig:
        return next(iter(self.methods.values()))

    @property
    def settings(self) -> list[str]:
        return list(self.first.settings)

    @property
    def proxy(self) -> str:
        return self.first.proxy

    @property
    def finals(self) -> FinalsOptions:
        return self.first.finals


#: what errors name as the file when the space is a Python dict (tune_lnl.run(space={...}))
DICT_LABEL = "<space dict>"


#: how many values a YAML file's aliases (``*name``) may expand to in all: a few nested aliases
#: can stand for billions of values ("billion laughs"), which validation, messages and the
#: experiment's records would each expand
YAML_MAX_VALUES = 100_000


class _YamlLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (YAML would keep the
    last one silently) and aliases expanding to more than :data:`YAML_MAX_VALUES` values.
    ``label``: what its errors name as the file."""
    label = "<yaml>"
    aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
        return super().compose_node(parent, index)

    def compose_mapping_node(self, anchor):
        node = super().compose_mapping_node(anchor)
        first = {}
        for key, _ in node.value:  # (a merge key '<<' may repeat what it merges: that is its purpose)
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                seen = first.setdefault((key.tag, key.value), key)
                if seen is not key:
                    lines = sorted({seen.start_mark.line + 1, key.start_mark.line + 1})
                    raise ConfigError(f"{self.label}: key {shown(key.value)} is given twice (line"
                                      f"{'s' if len(lines) > 1 else ''} {' and '.join(map(str, lines))})")
        return node

    def compose_document(self):
        node = super().compose_document()
        if self.aliases and _expanded_size(node, {}) > YAML_MAX_VALUES:
            raise ConfigError(f"{self.label}: its aliases (*name) expand to more than {YAML_MAX_VALUES} values "
                              f"(or contain themselves); write the values out or use fewer aliases")
        return node


def _expanded_size(node, sizes: dict) -> int:
    """How many nodes ``node`` stands for with every alias expanded (``sizes``: memo by node;
    a node that contains itself counts as too many)."""
    if id(node) in sizes:
        return sizes[id(node)]
    sizes[id(node)] = YAML_MAX_VALUES + 1  # while counting: a cycle back to it is too many
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    sizes[id(node)] = min(total, YAML_MAX_VALUES + 1)
    return sizes[id(node)]


def read_yaml(path) -> Any:
    """The content of a user's YAML file (a space file, a ``best_configs.yaml``) by the rules
    of :class:`_YamlLoader`; :class:`ConfigError` naming the file when it cannot be read or
    parsed. The one reader of every YAML file a user gives."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    loader = _YamlLoader(text)
    loader.label = str(path)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: malformed YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: malformed YAML: nested too deeply") from None
    finally:
        loader.dispose()


def _source(value, what: str) -> Path | dict:
    """A space (or config) argument: a file's path or a dict, else :class:`ConfigError`."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise ConfigError(f"{what}: must be a YAML file's path or a dict (got {shown(value)})")
    return Path(value)


def _read(space) -> tuple[_Checker, dict]:
    space = _source(space, "space")
    if isinstance(space, dict):
        ck = _Checker(None, DICT_LABEL)
        raw = copy.deepcopy(space)
        raw.setdefault("name", "experiment")
    else:
        path = space
        if not path.is_file():
            raise ConfigError(f"{path}: no such file")
        raw = read_yaml(path)
        ck = _Checker(path)
    raw = ck.mapping("", raw, TOP_KEYS)
    if not raw:
        ck.fail("(top level)", "the file is empty", raw)
    return ck, raw


def load_experiment(space: str | Path | dict, smoke_mode: bool = False) -> Experiment:
    """Read and validate a search-space YAML file (or the same content as a dict) naming one
    method (``method: mlc`` with ``fixed``/``space``/``paper`` at the top and per setting) or
    several (``methods:`` mapping each method to its own ``fixed``/``space``/``paper``/
    ``settings``/``smoke``; top-level ``fixed`` and ``smoke.fixed`` then apply to every method).
    A method is a built-in name or an import path ``package.module:ClassName`` (or an installed
    entry point); so is a dataset. Raises :class:`ConfigError` (and
    :class:`~tune_lnl.errors.DataError` for a user's data file that is unusable)."""
    ck, raw = _read(space)
    path = ck.path
    if ("method" in raw) == ("methods" in raw):
        ck.fail("method", "give exactly one of 'method' (one method) or 'methods' (several)",
                raw.get("method", raw.get("methods")))
    for req in ("dataset", "settings"):
        if req not in raw:
            ck.fail(req, "required key missing", None)
    common = _common(ck, raw)
    if "method" in raw:
        method = raw["method"]
        if isinstance(method, str):  # (anything else: method_class says what a method is)
            check_folder_name(method, ck.where("method"), plugin=True)
        method_class(method, ck.where("method"))
        methods = {method: _method_space(ck, raw, common, method, "", raw, raw["settings"], raw.get("smoke"))}
    else:
        mraw_all = ck.mapping("methods", raw["methods"])
        for method in mraw_all:
            if isinstance(method, str):
                check_folder_name(method, ck.where("methods"), plugin=True)
            method_class(method, ck.where(f"methods.{method}"))
        if not mraw_all:
            ck.fail("methods", "name at least one method", raw["methods"])
        for k in ("space", "paper"):
            if k in raw:
                ck.fail(k, "with several methods, put 'space' and 'paper' under methods.<method>", k)
        methods = {}
        for method, mraw in mraw_all.items():
            prefix = f"methods.{method}."
            mraw = ck.mapping(prefix[:-1], mraw, METHOD_KEYS)
            msettings = ck.mapping(f"{prefix}settings", mraw.get("settings"), set(common["settings"]))
            methods[method] = _method_space(ck, raw, common, method, prefix, mraw, msettings, raw.get("smoke"),
                                            mraw.get("smoke"))
    exp = Experiment(path=path.resolve() if path else None, name=common["name"], dataset=common["dataset"],
                     dataset_options=common["dataset_options"], methods=methods, raw=copy.deepcopy(raw))
    for sc in methods.values():
        sc.is_smoke = smoke_mode
        _cross_check(ck, sc)
    return exp


def load_space(path: str | Path, smoke_mode: bool = False, method: str | None = None) -> SpaceConfig:
    """The :class:`SpaceConfig` of one method of a search-space file (``method`` may be omitted
    when the file names only one)."""
    exp = load_experiment(path, smoke_mode)
    if method is None:
        if len(exp.methods) > 1:
            raise ConfigError(f"{exp.path or DICT_LABEL}: names several methods ({', '.join(exp.methods)}); pick one")
        return exp.first
    if method not in exp.methods:
        raise ConfigError(f"{exp.path or DICT_LABEL}: method {shown(method)} is not in this file; it has: "
                          f"{', '.join(exp.methods)}")
    return exp.methods[method]


def _dataset(ck: _Checker, value) -> tuple[str, dict]:
    """``dataset:`` as (spec, options): a name or import path, or ``{type: ..., <option>: ...}``.
    A relative ``path`` option is taken relative to the space file's folder."""
    if isinstance(value, dict):
        options = dict(value)
        if "type" not in options:
            ck.fail("dataset", "a dataset mapping needs 'type' (a built-in name such as arrays, or an import path "
                    "'package.module:ClassName')", value)
        spec = options.pop("type")
    else:
        spec, options = value, {}
    if not isinstance(spec, str):
        ck.fail("dataset", "must be a name, an import path or a mapping with 'type'", spec)
    if isinstance(options.get("path"), str):
        options["path"] = str((ck.folder / Path(options["path"]).expanduser()).resolve())
    return spec, options


def _common(ck: _Checker, raw: dict) -> dict:
    """Top-level keys shared by every method of the file."""
    dataset, dataset_options = _dataset(ck, raw["dataset"])
    ds = open_dataset(dataset, dataset_options, ck.where("dataset"))
    proxy = ck.choice("proxy", raw.get("proxy", ds.default_proxy), PROXIES)
    clean_val_size = ck.typed("clean_val_size", raw.get("clean_val_size", 0), int)
    if ds.has_clean_val and clean_val_size:
        ck.fail("clean_val_size", f"dataset {dataset} ships its own clean validation split; clean_val_size is for "
                f"datasets without one", clean_val_size)
    if clean_val_size < 0:
        ck.fail("clean_val_size", "must be at least 0 (0: no clean validation subset)", clean_val_size)
    if proxy == "clean_val" and not ds.has_clean_val and clean_val_size < 1:
        ck.fail("proxy", f"clean_val on {dataset} needs clean_val_size: N (N training images, e.g. 500, kept out "
                "of training with their ORIGINAL labels: the small trusted set a practitioner can afford to label)",
                proxy)
    train_subset = ck.typed("train_subset", raw.get("train_subset", 0), int)
    if train_subset < 0 or (train_subset and not ds.supports_subset):
        ck.fail("train_subset", "a seeded random subset of the training images: 0 (all) or more"
                + ("" if ds.supports_subset else f"; dataset {dataset} takes none"), train_subset)
    if clean_val_size and train_subset and clean_val_size >= train_subset:
        ck.fail("clean_val_size", f"leaves no training image of the {train_subset} of train_subset", clean_val_size)
    val_fraction = ck.typed("val_fraction", raw.get("val_fraction", 0.1), float)
    if not 0.0 < val_fraction < 1.0:
        ck.fail("val_fraction", "must lie in (0, 1)", val_fraction)
    search = _search(ck, raw.get("search"))
    finals = {**FINALS_DEFAULTS}
    for k, v in ck.mapping("finals", raw.get("finals"), set(FINALS_KEYS)).items():
        finals[k] = ck.typed(f"finals.{k}", v, FINALS_KEYS[k])
        if finals[k] < 1:
            ck.fail(f"finals.{k}", "must be at least 1", finals[k])
    settings_raw = ck.mapping("settings", raw["settings"])
    if not settings_raw:
        ck.fail("settings", "at least one noise setting is required", settings_raw)
    noise = {}
    for sname, sraw in settings_raw.items():
        check_folder_name(str(sname), ck.where("settings"))  # search/<method>/<setting>/
        key = f"settings.{sname}"
        sraw = ck.mapping(key, sraw, SETTING_KEYS if "method" in raw else {"noise"})
        ntype, rate, options = _noise(ck, f"{key}.noise", sraw.get("noise"), ds, dataset)
        if not ds.clean_labels_known(ntype):
            if PROXIES[proxy].needs_clean_labels:
                ck.fail("proxy", f"{proxy} needs the clean training labels, which dataset {dataset} does not "
                        f"have under noise type {ntype} (setting {sname})", proxy)
            if clean_val_size:
                ck.fail("clean_val_size", f"needs the clean training labels, which dataset {dataset} does not have "
                        f"under noise type {ntype} (setting {sname})", clean_val_size)
        noise[str(sname)] = (ntype, rate, options)
    smoke = dict(ck.mapping("smoke", raw.get("smoke"), SMOKE_KEYS))
    for k in ("train_subset", "test_subset", "num_samples", "seeds", "grace_period", "reduction_factor"):
        if k in smoke:
            ck.typed(f"smoke.{k}", smoke[k], int)
            if smoke[k] < (2 if k == "reduction_factor" else 1):
                ck.fail(f"smoke.{k}", "too small", smoke[k])
    _check_splits(ck, ds, proxy, val_fraction, clean_val_size, train_subset, smoke)
    if "name" in raw:  # (the file's own name otherwise: checked where it becomes the folder, unless --name)
        check_folder_name(ck.typed("name", raw["name"], str), ck.where("name"))
    return {"name": raw.get("name", ck.path.stem if ck.path else "experiment"),
            "dataset": dataset, "dataset_options": dataset_options, "proxy": proxy,
            "val_fraction": float(val_fraction), "clean_val_size": int(clean_val_size),
            "train_subset": int(train_subset), "noise_seed": ck.typed("noise_seed", raw.get("noise_seed", 0), int),
            "device": _device(ck, raw.get("device", "auto")), "search": search, "finals": FinalsOptions(**finals),
            "settings": noise, "smoke": smoke}


def _search(ck: _Checker, value) -> SearchOptions:
    """``search:`` with its defaults. A trial's resources: ``cpus_per_trial`` above 0 (trials at
    a time are the CPUs divided by it), ``gpus_per_trial`` 0 (no GPU share) or more."""
    search = {**SEARCH_DEFAULTS}
    for k, v in ck.mapping("search", value, set(SEARCH_KEYS)).items():
        search[k] = ck.typed(f"search.{k}", v, SEARCH_KEYS[k])
    ck.choice("search.pruner", search["pruner"], PRUNERS)
    cap = search["max_concurrent_per_study"]
    if cap != "auto" and (isinstance(cap, str) or cap < 1):
        ck.fail("search.max_concurrent_per_study", "must be 'auto' or a whole number of at least 1", cap)
    for k in ("num_samples", "grace_period", "reduction_factor"):
        if search[k] < (2 if k == "reduction_factor" else 1):
            ck.fail(f"search.{k}", "too small", search[k])
    if not search["cpus_per_trial"] > 0:
        ck.fail("search.cpus_per_trial", "must be > 0 (the CPUs one trial asks for; fractions pack several trials "
                "on one CPU)", search["cpus_per_trial"])
    if not search["gpus_per_trial"] >= 0:
        ck.fail("search.gpus_per_trial", "must be >= 0 (the share of a GPU one trial asks for; 0: none)",
                search["gpus_per_trial"])
    return SearchOptions(**search)


def _check_splits(ck: _Checker, ds, proxy: str, val_fraction: float, clean_val_size: int, train_subset: int,
                  smoke: dict) -> None:
    """The training images (where the dataset knows their number before loading) must fill the
    splits, with and without ``--smoke`` (its own ``train_subset``)."""
    subsets = {train_subset, smoke.get("train_subset", train_subset)}
    for subset in sorted(subsets):
        try:
            ds.check_splits(val_fraction, clean_val_size, subset, proxy)
        except DataError as exc:
            raise DataError(f"{ck.where('dataset')}: {exc}"
                            + (f" (with --smoke's train_subset {subset})" if subset != train_subset else "")) from None


#: what each noise type takes besides ``type`` (the rate types require ``rate``; ``none`` and
#: ``real`` accept one; ``matrix`` takes one of its two keys)
NOISE_KEYS = {**{t: ("rate",) for t in RATE_TYPES}, "none": ("rate",), "matrix": ("matrix", "path"),
              HUMAN_NOISE: ("labels",), REAL_NOISE: ("rate",)}


def _noise(ck: _Checker, key: str, value, ds, dataset: str) -> tuple[str, float, dict]:
    """A setting's ``noise:`` as ``(type, rate, options)``: the type must be one the dataset
    allows, with what that type needs (see :data:`NOISE_KEYS`)."""
    nz = ck.mapping(key, value, {"type", "rate", "labels", "matrix", "path"})
    if "type" not in nz:
        ck.fail(key, "needs 'type'", nz)
    allowed = tuple(ds.noise_types) + ((HUMAN_NOISE,) if ds.label_sets and HUMAN_NOISE not in ds.noise_types else ())
    ntype = ck.choice(f"{key}.type", nz["type"], allowed)
    takes = NOISE_KEYS.get(ntype, ("rate",))  # a dataset's own noise type takes a rate, like the synthetic ones
    for k in nz:
        if k != "type" and k not in takes:
            ck.fail(f"{key}.{k}", f"does not apply to noise type {ntype}"
                    + (f" (it takes {', '.join(takes)})" if takes else ""), nz[k])
    if ntype == "asymmetric":
        if not ds.asymmetric_map:
            ck.fail(f"{key}.type", f"dataset {dataset} declares no asymmetric class mapping (asymmetric_map on its "
                    f"class); give the flips as a transition matrix instead (type: matrix)", ntype)
        try:
            asymmetric_matrix(ds.asymmetric_map, 0.0, int(ds.num_classes))
        except ValueError as exc:
            ck.fail(f"{key}.type", f"dataset {dataset} declares an unusable asymmetric_map: {exc}", ntype)
    if ntype in RATE_TYPES or ntype not in NOISE_KEYS:
        if "rate" not in nz:
            ck.fail(key, f"noise type {ntype} needs 'rate'", nz)
        return ntype, float(ck.rate(f"{key}.rate", nz["rate"])), {}
    if ntype in ("none", REAL_NOISE):  # (a rate is optional and drawn from nothing)
        return ntype, float(ck.rate(f"{key}.rate", nz.get("rate", 0.0))), {}
    if ntype == HUMAN_NOISE:
        if nz.get("labels") not in ds.label_sets:
            ck.fail(f"{key}.labels", f"names one of the dataset's human label sets: {', '.join(ds.label_sets)}",
                    nz.get("labels"))
        return ntype, 0.0, {"labels": nz["labels"]}
    return ntype, *_matrix(ck, key, nz, int(ds.num_classes))


def _matrix(ck: _Checker, key: str, nz: dict, num_classes: int) -> tuple[float, dict]:
    """``matrix: [[...], ...]`` or ``path: T.npy | T.csv`` (relative to the space file's folder):
    ``(its expected rate over uniform classes, options)`` with options ``{"matrix": rows}`` or
    ``{"path": absolute path, "sha256": the file's hash}``."""
    if ("matrix" in nz) == ("path" in nz):
        ck.fail(key, "type matrix needs either 'matrix' (a C x C list of rows) or 'path' (a .npy or .csv file), "
                "not both", nz)
    if "path" in nz:
        path = ck.typed(f"{key}.path", nz["path"], str)
        file = (ck.folder / Path(path).expanduser()).resolve()
        try:
            m, digest = read_matrix(file), file_sha256(file)
        except (OSError, ValueError) as exc:
            ck.fail(f"{key}.path", f"cannot read {file} as a {'.npy' if file.suffix == '.npy' else 'comma-separated'} "
                    f"matrix ({type(exc).__name__}: {exc})", path)
        problem = check_matrix(m, num_classes)
        if problem:
            ck.fail(f"{key}.path", f"{file}: {problem}", path)
        # the run config names the file and its content's hash (a C x C matrix inline in every
        # result line would be large); the loader refuses the file if it changed since
        options = {"path": str(file), "sha256": digest}
    else:
        m = nz["matrix"]
        if not isinstance(m, list):
            ck.fail(f"{key}.matrix", "must be a list of rows (in Python: a list of lists, e.g. array.tolist(); or "
                    "give 'path' to a .npy / .csv file)", type(m).__name__)
        problem = check_matrix(m, num_classes)
        if problem:
            ck.fail(f"{key}.matrix", problem, m if num_classes <= 10 else "...")
        options = {"matrix": np.asarray(m, dtype=np.float64).tolist()}
    return expected_rate(torch.tensor(np.asarray(m, dtype=np.float64))), options


def _device(ck: _Checker, value) -> str:
    """``device:`` must name a device (whether this machine has it: :func:`check_device`)."""
    ck.typed("device", value, str)
    problem = device_problem(value, here=False)
    if problem:
        ck.fail("device", problem, value)
    return value


def _method_space(ck: _Checker, raw: dict, common: dict, method: str, prefix: str, mraw: dict,
                  settings_raw, smoke_raw, method_smoke_raw=None) -> SpaceConfig:
    """One method's validated :class:`SpaceConfig`. ``prefix`` is where its sections sit in the
    file ('' for a one-method file, 'methods.<m>.' otherwise), so errors name the real key."""
    defaults = _Keys(method, ck.where(f"{prefix}method" if not prefix else prefix[:-1]))
    fixed = {}
    if prefix:  # several methods: top-level fixed applies to all of them
        fixed.update(_check_hparams(ck, "fixed", raw.get("fixed"), defaults, method))
    fixed.update(_check_hparams(ck, f"{prefix}fixed", mraw.get("fixed"), defaults))
    space = _check_space(ck, f"{prefix}space", mraw.get("space"), defaults)
    paper = _check_hparams(ck, f"{prefix}paper", mraw.get("paper"), defaults)
    settings = {}
    settings_raw = settings_raw or {}
    for sname, (ntype, nrate, noise_options) in common["settings"].items():
        key = f"{prefix}settings.{sname}"
        sraw = ck.mapping(key, settings_raw.get(sname), SETTING_KEYS - {"noise"} if prefix else SETTING_KEYS)
        settings[sname] = Setting(sname, ntype, nrate,
                                  _check_hparams(ck, f"{key}.fixed", sraw.get("fixed"), defaults),
                                  _check_space(ck, f"{key}.space", sraw.get("space"), defaults),
                                  _check_hparams(ck, f"{key}.paper", sraw.get("paper"), defaults),
                                  noise_options=noise_options)
    smoke = {k: v for k, v in common["smoke"].items() if k != "fixed"}
    smoke_fixed = _check_hparams(ck, "smoke.fixed", (smoke_raw or {}).get("fixed"), defaults,
                                 method if prefix else None)
    if method_smoke_raw is not None:
        msmoke = ck.mapping(f"{prefix}smoke", method_smoke_raw, {"fixed"})
        smoke_fixed.update(_check_hparams(ck, f"{prefix}smoke.fixed", msmoke.get("fixed"), defaults))
    smoke["fixed"] = smoke_fixed
    return SpaceConfig(path=ck.path.resolve() if ck.path else None, name=common["name"], method=method,
                       dataset=common["dataset"], dataset_options=common["dataset_options"],
                       proxy=common["proxy"], val_fraction=common["val_fraction"],
                       clean_val_size=common["clean_val_size"], train_subset=common["train_subset"],
                       noise_seed=common["noise_seed"], device=common["device"], search=common["search"],
                       finals=common["finals"], fixed=fixed, space=space, paper=paper, settings=settings,
                       smoke=smoke, raw=copy.deepcopy(raw))


def _cross_check(ck: _Checker, cfg: SpaceConfig) -> None:
    """Checks across sections, per setting, on the configs trials would really get."""
    where = f"methods.{cfg.method}." if "methods" in cfg.raw else ""
    for sname, s in cfg.settings.items():
        space = cfg.space_for(sname)
        if not space:
            ck.fail(f"{where}space", f"nothing is searched for setting {sname}: give at least one hyperparameter "
                    f"a range (or choices)", {})
        for k in space:
            if k in cfg.fixed or k in s.fixed:
                where = f"settings.{sname}.fixed.{k}" if k in s.fixed else f"fixed.{k}"
                ck.fail(where, "is both fixed and searched; remove one", k)
        for k, v in cfg.paper_point(sname).items():
            if v is not None and not space[k].contains(v):
                ck.fail(f"settings.{sname}.paper.{k}" if k in s.paper else f"paper.{k}",
                        f"the paper value lies outside the searched range [{space[k].low}, {space[k].high}]", v)
        for k in list(s.paper) + list(cfg.paper):
            if k not in space:
                ck.fail(f"settings.{sname}.paper.{k}" if k in s.paper else f"paper.{k}",
                        "a paper value is only meaningful for a searched hyperparameter", k)
        for mode in ([False, True] if cfg.smoke else [False]):
            run = dataclasses.replace(cfg, is_smoke=mode).paper_run(sname, "/")
            for problem, value in method_class(cfg.method).check_config(run.hp):  # the method's own relations
                ck.fail(f"settings.{sname}" + (" (smoke)" if mode else ""), problem, value)
            if run.hp.epochs < 1:
                ck.fail(f"settings.{sname}" + (" (smoke)" if mode else ""), "epochs must be at least 1",
                        run.hp.epochs)


# -- one run config, for a single training ----------------------------------------------------------
def _one_method(label, available: list[str], method: str | None) -> str:
    if method is None:
        if len(available) > 1:
            raise ConfigError(f"{label}: holds several methods ({', '.join(available)}): pick one with --method")
        return available[0]
    if method not in available:
        raise ConfigError(f"{label}: methods: no method {shown(method)}; available: {', '.join(available)}")
    return method


def run_config(source, setting: str, data_root, smoke: bool = False, method: str | None = None) -> dict:
    """The full run config of ONE training: from a search space (a file or dict: its fixed
    values and the paper's values of the searched ones) or from an exported
    ``best_configs.yaml`` (the selected config as it is)."""
    source = _source(source, "config")
    if isinstance(source, dict):
        doc, label = source, DICT_LABEL
    else:
        label = source
        doc = read_yaml(label)
    if isinstance(doc, dict) and doc.get("kind") == BEST_KIND:
        per_setting = doc["methods"][_one_method(label, list(doc["methods"]), method)]
        if setting not in per_setting:
            raise ConfigError(f"{label}: settings: no setting {shown(setting)}; available: {', '.join(per_setting)}")
        return {**per_setting[setting]["config"], "data_root": str(data_root)}
    exp = load_experiment(source, smoke_mode=smoke)
    space = exp.methods[_one_method(label, list(exp.methods), method)]
    if setting not in space.settings:
        raise ConfigError(f"{label}: settings: no setting {shown(setting)}; available: {', '.join(space.settings)}")
    return space.paper_config(setting, str(data_root))
