"""Search-space YAML: loading, validation, and the run configs it describes.

Data flow: YAML -> :class:`SpaceConfig` (validated here, before any work) -> run configs (flat
dicts, one per trial / final seed) -> method objects.

Every error names the file, the key (as a dotted path) and the offending value.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .data import DATASETS
from .method import PROXIES
from .methods import METHOD_NAMES, method_class
from .models import MODELS
from .noise import NOISE_TYPES

TOP_KEYS = {"name", "method", "dataset", "proxy", "val_fraction", "noise_seed", "device",
            "search", "finals", "fixed", "space", "paper", "settings", "smoke"}
SEARCH_KEYS = {"num_samples": int, "seed": int, "grace_period": int, "reduction_factor": int,
               "cpus_per_trial": (int, float), "gpus_per_trial": (int, float)}
FINALS_KEYS = {"seeds": int, "last_k": int}
SMOKE_KEYS = {"train_subset", "test_subset", "num_samples", "seeds", "grace_period", "reduction_factor", "fixed"}
SETTING_KEYS = {"noise", "fixed", "space", "paper"}
DIST_KEYS = {"low", "high", "log", "int", "choices"}
RATE_KEYS = {"forget_rate", "noise_rate", "val_fraction", "co_lambda"}  # must lie in [0, 1)
#: sign constraints of method hyperparameters (checked on fixed values and on both range bounds)
POSITIVE = {"lr", "lr2", "batch_size", "epochs", "K", "lambda", "xi", "num_gradual", "q"}
NON_NEGATIVE = {"alpha", "beta", "stage1", "stage2", "T"}
NON_POSITIVE = {"mu"}  # the paper: mu < 0 separates the networks; mu = 0 switches ld off
CHOICES = {"variant": ("paper", "official"), "model": tuple(MODELS)}
SEARCH_DEFAULTS = {"num_samples": 20, "seed": 0, "grace_period": 20, "reduction_factor": 3,
                   "cpus_per_trial": 1, "gpus_per_trial": 0.25}
FINALS_DEFAULTS = {"seeds": 5, "last_k": 10}


class ConfigError(ValueError):
    """A search-space file is invalid; the message names file, key and value."""


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


@dataclass
class SpaceConfig:
    path: Path
    name: str
    method: str
    dataset: str
    proxy: str
    val_fraction: float
    noise_seed: int
    device: str
    search: dict
    finals: dict
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
        cfg = dict(method_class(self.method).defaults)
        cfg.update(self.fixed)
        cfg.update(s.fixed)
        if self.is_smoke:
            cfg.update(self.smoke.get("fixed", {}))
        cfg.update(method=self.method, dataset=self.dataset, data_root=str(data_root), proxy=self.proxy,
                   val_fraction=self.val_fraction, noise_seed=self.noise_seed, noise_type=s.noise_type,
                   noise_rate=s.noise_rate, setting=setting, device=self.device, seed=0,
                   train_subset=self.smoke.get("train_subset", 0) if self.is_smoke else 0,
                   test_subset=self.smoke.get("test_subset", 0) if self.is_smoke else 0)
        for k in self.space_for(setting):
            cfg.pop(k, None)
        return cfg

    def paper_point(self, setting: str) -> dict:
        """The paper's values of the searched hyperparameters: the first trial of each search."""
        defaults = method_class(self.method).defaults
        s = self.settings[setting]
        return {k: s.paper.get(k, self.paper.get(k, defaults.get(k))) for k in self.space_for(setting)}

    def paper_config(self, setting: str, data_root: str) -> dict:
        return {**self.base_config(setting, data_root), **self.paper_point(setting)}

    @property
    def num_samples(self) -> int:
        return int(self.smoke.get("num_samples", 3) if self.is_smoke else self.search["num_samples"])

    @property
    def final_seeds(self) -> int:
        return int(self.smoke.get("seeds", 2) if self.is_smoke else self.finals["seeds"])

    @property
    def reduction_factor(self) -> int:
        if self.is_smoke:
            return int(self.smoke.get("reduction_factor", self.search["reduction_factor"]))
        return int(self.search["reduction_factor"])

    @property
    def grace_period(self) -> int:
        return int(self.smoke.get("grace_period", 1) if self.is_smoke else self.search["grace_period"])


# -- validation ---------------------------------------------------------------------------------
class _Checker:
    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, msg: str, value: Any = None):
        raise ConfigError(f"{self.path}: {key}: {msg} (got {value!r})")

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


def _check_hparams(ck: _Checker, key: str, values: dict, defaults: dict) -> dict:
    values = ck.mapping(key, values, set(defaults))
    out = {}
    for k, v in values.items():
        _check_value(ck, f"{key}.{k}", k, v, defaults[k])
        out[k] = float(v) if isinstance(defaults[k], float) else v
    return out


def _check_value(ck: _Checker, key: str, name: str, v, default):
    if name in CHOICES:
        ck.choice(key, v, CHOICES[name])
    elif isinstance(default, bool):
        ck.typed(key, v, bool)
    elif isinstance(default, int):
        ck.typed(key, v, int)
    elif isinstance(default, float):
        ck.typed(key, v, float)
    elif isinstance(default, str):
        ck.typed(key, v, str)
    if name in RATE_KEYS:
        ck.rate(key, v)
    _check_sign(ck, key, name, v)


def _check_sign(ck: _Checker, key: str, name: str, v) -> None:
    if name in POSITIVE and not v > 0:
        ck.fail(key, "must be > 0", v)
    if name in NON_NEGATIVE and not v >= 0:
        ck.fail(key, "must be >= 0", v)
    if name in NON_POSITIVE and not v <= 0:
        ck.fail(key, "must be <= 0", v)


def _check_space(ck: _Checker, key: str, space, defaults: dict) -> dict[str, Dist]:
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
                _check_value(ck, f"{k}.choices", name, c, defaults[name])
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
            if name in RATE_KEYS:
                ck.rate(f"{k}.{bound}", v)
            _check_sign(ck, f"{k}.{bound}", name, v)
        out[name] = Dist(low=lo, high=hi, log=log, int=is_int)
    return out


def load_space(path: str | Path, smoke_mode: bool = False) -> SpaceConfig:
    """Read and validate a search-space YAML file; raise :class:`ConfigError` on any problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: malformed YAML: {exc}") from None
    ck = _Checker(path)
    raw = ck.mapping("", raw, TOP_KEYS)
    if not raw:
        ck.fail("(top level)", "the file is empty", raw)
    for req in ("method", "dataset", "settings"):
        if req not in raw:
            ck.fail(req, "required key missing", None)
    method = ck.choice("method", raw["method"], METHOD_NAMES)
    dataset = ck.choice("dataset", raw["dataset"], DATASETS)
    proxy = ck.choice("proxy", raw.get("proxy", "noisy_val"), PROXIES)
    val_fraction = ck.typed("val_fraction", raw.get("val_fraction", 0.1), float)
    if not 0.0 < val_fraction < 1.0:
        ck.fail("val_fraction", "must lie in (0, 1)", val_fraction)
    noise_seed = ck.typed("noise_seed", raw.get("noise_seed", 0), int)
    device = ck.typed("device", raw.get("device", "auto"), str)
    name = ck.typed("name", raw.get("name", path.stem), str)
    search = {**SEARCH_DEFAULTS}
    for k, v in ck.mapping("search", raw.get("search"), set(SEARCH_KEYS)).items():
        search[k] = ck.typed(f"search.{k}", v, SEARCH_KEYS[k])
    for k in ("num_samples", "grace_period", "reduction_factor"):
        if search[k] < (2 if k == "reduction_factor" else 1):
            ck.fail(f"search.{k}", "too small", search[k])
    finals = {**FINALS_DEFAULTS}
    for k, v in ck.mapping("finals", raw.get("finals"), set(FINALS_KEYS)).items():
        finals[k] = ck.typed(f"finals.{k}", v, FINALS_KEYS[k])
        if finals[k] < 1:
            ck.fail(f"finals.{k}", "must be at least 1", finals[k])
    defaults = method_class(method).defaults
    fixed = _check_hparams(ck, "fixed", raw.get("fixed"), defaults)
    space = _check_space(ck, "space", raw.get("space"), defaults)
    paper = _check_hparams(ck, "paper", raw.get("paper"), defaults)
    settings_raw = ck.mapping("settings", raw["settings"])
    if not settings_raw:
        ck.fail("settings", "at least one noise setting is required", settings_raw)
    settings = {}
    for sname, sraw in settings_raw.items():
        key = f"settings.{sname}"
        sraw = ck.mapping(key, sraw, SETTING_KEYS)
        noise = ck.mapping(f"{key}.noise", sraw.get("noise"), {"type", "rate"})
        if "type" not in noise or "rate" not in noise:
            ck.fail(f"{key}.noise", "needs 'type' and 'rate'", noise)
        ntype = ck.choice(f"{key}.noise.type", noise["type"], NOISE_TYPES)
        nrate = ck.rate(f"{key}.noise.rate", noise["rate"])
        s = Setting(str(sname), ntype, float(nrate),
                    _check_hparams(ck, f"{key}.fixed", sraw.get("fixed"), defaults),
                    _check_space(ck, f"{key}.space", sraw.get("space"), defaults),
                    _check_hparams(ck, f"{key}.paper", sraw.get("paper"), defaults))
        settings[str(sname)] = s
    smoke_raw = ck.mapping("smoke", raw.get("smoke"), SMOKE_KEYS)
    smoke = dict(smoke_raw)
    for k in ("train_subset", "test_subset", "num_samples", "seeds", "grace_period", "reduction_factor"):
        if k in smoke:
            ck.typed(f"smoke.{k}", smoke[k], int)
            if smoke[k] < (2 if k == "reduction_factor" else 1):
                ck.fail(f"smoke.{k}", "too small", smoke[k])
    smoke["fixed"] = _check_hparams(ck, "smoke.fixed", smoke_raw.get("fixed"), defaults)
    cfg = SpaceConfig(path=path.resolve(), name=name, method=method, dataset=dataset, proxy=proxy,
                      val_fraction=float(val_fraction), noise_seed=noise_seed, device=device,
                      search=search, finals=finals, fixed=fixed, space=space, paper=paper,
                      settings=settings, smoke=smoke, is_smoke=smoke_mode, raw=copy.deepcopy(raw))
    _cross_check(ck, cfg)
    return cfg


def _cross_check(ck: _Checker, cfg: SpaceConfig) -> None:
    """Checks across sections, per setting, on the configs trials would really get."""
    for sname, s in cfg.settings.items():
        space = cfg.space_for(sname)
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
            full = dataclasses.replace(cfg, is_smoke=mode).paper_config(sname, "/")
            if not 0 <= full["stage1"] <= full["stage2"] <= full["epochs"] if "stage2" in full else False:
                ck.fail(f"settings.{sname}" + (" (smoke)" if mode else ""),
                        "needs 0 <= stage1 <= stage2 <= epochs",
                        {k: full[k] for k in ("stage1", "stage2", "epochs")})
            if full["epochs"] < 1:
                ck.fail(f"settings.{sname}" + (" (smoke)" if mode else ""), "epochs must be at least 1",
                        full["epochs"])
