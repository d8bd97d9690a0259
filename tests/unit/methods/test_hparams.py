"""Declared hyperparameters (tune_lnl.methods.hparams): the ``hp()`` field, ``declared()``
with a key that is no Python name (``lambda``), ``like()``, the ``build``/``as_dict`` round
trip, plugins of tune_lnl 0.1's ``defaults = {...}`` form, and the refusals of a class whose
``Hyper`` or abstract methods are wrong, or of a space file that sets a key the method does not
declare (each naming what is valid). Expectations are typed here by hand (the papers' values,
the rules as documented), never read back from the code under test. Fast: no search; one
single-epoch training on 1024 MNIST images."""
import dataclasses
import importlib
import math
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from method_helpers import tiny_cfg

import tune_lnl
from tune_lnl import plugins
from tune_lnl.config import load_experiment
from tune_lnl.errors import ConfigError
from tune_lnl.methods import method_class
from tune_lnl.methods import registry as method_registry
from tune_lnl.methods.constraints import NON_NEGATIVE, POSITIVE, RATE, OneOf
from tune_lnl.methods.hparams import Common, as_dict, build, declared, defaults, hp, like, rules
from tune_lnl.methods.label_table import LabelTable


@pytest.fixture(autouse=True)
def _isolated_registry(monkeypatch):
    """Whatever a test resolves (methods, plugin folders) is forgotten afterwards."""
    monkeypatch.setattr(method_registry, "_resolved", dict(method_registry._resolved))
    monkeypatch.setattr(plugins, "_roots", set(plugins._roots))


def _module(tmp_path: Path, monkeypatch, name: str, source: str) -> None:
    """``<tmp_path>/<name>.py`` importable for this test only."""
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    importlib.invalidate_caches()


def _refusal(fn) -> str:
    with pytest.raises(ConfigError) as info:
        fn()
    return str(info.value)


# -- hp(), declared(): a key that is no Python name -------------------------------------------------
@dataclass(frozen=True)
class Toy(Common):
    lambda_: float = hp(2.5, "step of the toy update", POSITIVE, key="lambda")
    mode: str = hp("a", "toy mode", OneOf(("a", "b")))
    count: int = hp(3, "toy count")


def test_hp_declares_key_type_default_rules_and_meaning():
    d = declared(Toy)
    # Common's ten come first, in declaration order, then the toy's own
    assert list(d)[:3] == ["model", "augment", "epochs"] and list(d)[-3:] == ["lambda", "mode", "count"]
    lam = d["lambda"]
    assert (lam.key, lam.attr, lam.type, lam.default, lam.meaning) == ("lambda", "lambda_", "float", 2.5,
                                                                       "step of the toy update")
    assert lam.rules == (POSITIVE,)
    assert "lambda_" not in d  # the attribute is not a key
    assert d["count"].rules == () and d["count"].type == "int"
    assert defaults(Toy)["lambda"] == 2.5 and defaults(Toy)["epochs"] == 200
    assert rules(Toy)["mode"] == (OneOf(("a", "b")),) and "count" not in rules(Toy)
    assert lam.describe() == {"default": 2.5, "type": "float", "meaning": "step of the toy update", "above": 0.0}
    assert d["mode"].describe()["choices"] == ["a", "b"]


def test_the_label_tables_lambda_is_read_as_lambda_():
    d = declared(LabelTable)
    assert d["lambda"].attr == "lambda_" and d["lambda"].default == 1000.0  # MLC paper, Table I sym-0.2
    assert LabelTable().lambda_ == 1000.0


# -- like(): a new default, the rules and the meaning kept -------------------------------------------
def test_like_keeps_rules_key_and_meaning():
    @dataclass(frozen=True)
    class Longer(Toy):
        epochs: int = like(Common, "epochs", 320)
        lambda_: float = like(Toy, "lambda", 100.0)
        count: int = like(Toy, "count", 5, "a new meaning")

    d = declared(Longer)
    assert (d["epochs"].default, d["epochs"].meaning, d["epochs"].rules) == (320, "training epochs", (POSITIVE,))
    assert (d["lambda"].attr, d["lambda"].default, d["lambda"].rules) == ("lambda_", 100.0, (POSITIVE,))
    assert d["lambda"].meaning == "step of the toy update"
    assert d["count"].meaning == "a new meaning" and d["count"].default == 5
    assert list(d) == list(declared(Toy))  # redeclaring keeps the place


# -- build(), as_dict() -------------------------------------------------------------------------------
def test_build_and_as_dict_round_trip():
    flat = {"lambda": 7.0, "mode": "b", "epochs": 3, "dataset": "mnist", "noise_rate": 0.2}  # data keys ignored
    h = build(Toy, flat)
    assert (h.lambda_, h.mode, h.epochs, h.count, h.lr) == (7.0, "b", 3, 3, 1e-3)  # missing: the defaults
    out = as_dict(h)
    assert out["lambda"] == 7.0 and "lambda_" not in out and "dataset" not in out
    assert set(out) == set(declared(Toy))
    assert build(Toy, out) == h
    with pytest.raises(dataclasses.FrozenInstanceError):
        h.lr = 1.0


# -- a plugin of tune_lnl 0.1's form --------------------------------------------------------------------
LEGACY = """
    import torch.nn.functional as F
    import tune_lnl

    class Legacy(tune_lnl.SingleNetwork):
        defaults = {**tune_lnl.SingleNetwork.defaults, "alpha": 0.5, "lambda": 2.0, "epochs": 7}
        constraints = {"alpha": tune_lnl.RATE}

        def loss(self, logits, labels):
            self.seen = (self.hp.alpha, self.hp.lambda_)
            return self.hp.alpha * F.cross_entropy(logits, labels, reduction="none")
"""


def test_a_legacy_plugin_gets_a_declared_hyper(tmp_path, monkeypatch, data_root):
    _module(tmp_path, monkeypatch, "legacymod", LEGACY)
    cls = method_class("legacymod:Legacy")
    assert dataclasses.is_dataclass(cls.Hyper) and issubclass(cls.Hyper, tune_lnl.SingleNetwork.Hyper)
    d = declared(cls.Hyper)
    assert (d["alpha"].default, d["alpha"].rules, d["alpha"].type) == (0.5, (RATE,), "float")
    assert d["alpha"].meaning == "(not described)"
    assert (d["lambda"].attr, d["lambda"].default) == ("lambda_", 2.0)
    # inherited keys keep their meaning and rules; a new default replaces the old one
    assert (d["epochs"].default, d["epochs"].rules, d["epochs"].meaning) == (7, (POSITIVE,), "training epochs")
    assert (d["lr"].meaning, d["lr"].rules) == ("learning rate", (POSITIVE,))
    assert d["weight_decay"].rules == (NON_NEGATIVE,)
    assert cls.defaults["alpha"] == 0.5 and cls.defaults["lr"] == 1e-3
    # its rule applies to a space file's values
    space = {"name": "legacy", "method": "legacymod:Legacy", "dataset": "mnist", "fixed": {"alpha": 1.0},
             "settings": {"clean": {"noise": {"type": "none"}}}}
    msg = _refusal(lambda: load_experiment(space))
    assert "fixed.alpha" in msg and "[0, 1)" in msg and "1.0" in msg, msg
    # and an instance reads typed values
    method = cls(tiny_cfg("legacymod:Legacy", data_root, alpha=0.25, epochs=1))
    assert method.hp.alpha == 0.25 and method.hp.lambda_ == 2.0 and method.hp.epochs == 1
    metrics = method.step()
    assert method.seen == (0.25, 2.0) and math.isfinite(metrics["train_loss"])


# -- refusals ---------------------------------------------------------------------------------------------
BAD_CLASSES = """
    from dataclasses import dataclass
    import torch.nn.functional as F
    import tune_lnl

    class Base(tune_lnl.SingleNetwork):
        def loss(self, logits, labels):
            return F.cross_entropy(logits, labels, reduction="none")

    class PlainHyper(Base):
        class Hyper:
            alpha = 0.1

    class NotCommon(Base):
        @dataclass(frozen=True)
        class Hyper:
            alpha: float = tune_lnl.hp(0.1, "a weight")

    class Undecorated(Base):
        class Hyper(tune_lnl.SingleNetwork.Hyper):
            alpha: float = tune_lnl.hp(0.1, "a weight")
            beta: float = tune_lnl.hp(1.0, "another weight")

    class Half(tune_lnl.Method):
        def build(self):
            pass

        def train_epoch(self):
            return {}

    class NoLoss(tune_lnl.SingleNetwork):
        pass
"""


@pytest.mark.parametrize("cls, expected", [
    ("PlainHyper", ["'Hyper'", "dataclass", "Common"]),
    ("NotCommon", ["'Hyper'", "dataclass", "Common"]),
    ("Undecorated", ["'Hyper'", "@dataclass(frozen=True)", "alpha, beta"]),
    ("Half", ["does not implement", "eval_models", "load_method_state", "method_state"]),
    ("NoLoss", ["does not implement loss", "loss(logits, labels)"]),
])
def test_a_class_with_a_wrong_hyper_or_missing_methods_is_refused(tmp_path, monkeypatch, cls, expected):
    _module(tmp_path, monkeypatch, "badhyper", BAD_CLASSES)
    msg = _refusal(lambda: method_class(f"badhyper:{cls}", "space.yaml: method"))
    assert msg.startswith("space.yaml: method") and f"badhyper:{cls}" in msg, msg
    for part in expected:
        assert part in msg, (part, msg)
    if cls == "Half":
        assert "build" not in msg.split("does not implement")[1].split(":")[0]  # implemented ones not named


def test_the_method_bases_are_abstract():
    for base in (tune_lnl.Method, tune_lnl.SingleNetwork, tune_lnl.TwoNetworks):
        with pytest.raises(TypeError):
            base({})


# GCE's keys (Common, Optimizer, LrSchedule and q), typed by hand
GCE_KEYS = ["model", "augment", "epochs", "batch_size", "lr", "pretrained", "num_workers", "amp", "channels_last",
            "compile", "optimizer", "momentum", "weight_decay", "lr_schedule", "q"]


@pytest.mark.parametrize("section, value", [
    ("fixed", {"qq": 0.5}),
    ("paper", {"qq": 0.5}),
    ("space", {"qq": {"low": 0.1, "high": 0.9}}),
])
def test_an_unknown_key_names_the_valid_ones(tmp_path, section, value):
    raw = {"name": "gce_typo", "method": "gce", "dataset": "mnist", section: value,
           "settings": {"clean": {"noise": {"type": "none"}}}}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(raw))
    msg = _refusal(lambda: load_experiment(path))
    assert msg.startswith(f"{path}: {section}.qq: unknown key"), msg
    allowed = msg.split("allowed:")[1].split("(got")[0]
    assert sorted(k.strip() for k in allowed.split(",")) == sorted(GCE_KEYS), msg


def test_an_attribute_name_is_not_a_key(tmp_path):
    """``lambda_`` is how MLC reads ``lambda``; a space file writes ``lambda``."""
    raw = {"name": "mlc_attr", "method": "mlc", "dataset": "mnist", "fixed": {"lambda_": 500.0},
           "space": {"lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True}},
           "settings": {"clean": {"noise": {"type": "none"}}}}
    msg = _refusal(lambda: load_experiment(raw))
    assert "fixed.lambda_: unknown key" in msg and " lambda," in msg, msg
    assert load_experiment({**raw, "fixed": {"lambda": 500.0}}).first.fixed["lambda"] == 500.0

