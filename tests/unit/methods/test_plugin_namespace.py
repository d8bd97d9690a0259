"""The plugin author's namespace: ``tune_lnl`` itself. Every name of ``tune_lnl.__all__``
resolves; the names a method of one's own needs (listed here by hand) are among them; and a
two-network method written against ``tune_lnl.<name>`` alone (Co-teaching on a GCE loss) is
accepted by the registry and trains one epoch on 1024 MNIST images."""
import ast
import importlib
import math
import sys
import textwrap

import pytest
from method_helpers import tiny_cfg

import tune_lnl
from tune_lnl import plugins
from tune_lnl.methods import method_class
from tune_lnl.methods import registry as method_registry

#: what a plugin method needs (issue 27, item 4), typed by hand
NEEDED = ["Method", "SingleNetwork", "TwoNetworks", "hp", "like", "Common", "Optimizer", "LrSchedule", "SmallLoss",
          "SmallLossHyper", "LabelTable", "Range", "OneOf", "RATE", "POSITIVE", "NON_NEGATIVE", "NON_POSITIVE",
          "small_loss_selection", "cross_update", "forget_rate_at", "cross_entropy", "mae", "gce", "imae",
          "symmetric_kl", "symmetric_kl_log", "pencil_lc", "pencil_lo", "pencil_le", "pencil_lc_le", "LossMeter",
          "RunConfig", "ConfigError", "InMemoryDataset", "Arrays", "run", "train"]


def test_every_public_name_resolves():
    assert len(set(tune_lnl.__all__)) == len(tune_lnl.__all__)
    for name in tune_lnl.__all__:
        assert getattr(tune_lnl, name) is not None, name
        assert name in dir(tune_lnl)
    assert set(NEEDED) <= set(tune_lnl.__all__), set(NEEDED) - set(tune_lnl.__all__)
    with pytest.raises(AttributeError):
        tune_lnl.no_such_name  # noqa: B018


def test_the_public_names_are_the_definitions():
    from tune_lnl.methods import hparams, losses, selection
    from tune_lnl.methods.two_networks import TwoNetworks
    assert tune_lnl.cross_update is selection.cross_update and tune_lnl.gce is losses.gce
    assert tune_lnl.hp is hparams.hp and tune_lnl.Common is hparams.Common and tune_lnl.TwoNetworks is TwoNetworks


PLUGIN = '''
    """Co-teaching on a GCE loss: a two-network method written against tune_lnl.* alone."""
    from dataclasses import dataclass

    import tune_lnl


    class GCETeaching(tune_lnl.TwoNetworks):
        """Co-teaching whose small-loss ranking and training loss are GCE."""

        @dataclass(frozen=True)
        class Hyper(tune_lnl.SmallLossHyper):
            q: float = tune_lnl.hp(0.7, "GCE exponent", tune_lnl.POSITIVE, tune_lnl.Range(high=1.0))
            epochs: int = tune_lnl.like(tune_lnl.Common, "epochs", 3)

        def train_epoch(self) -> dict:
            rate = tune_lnl.forget_rate_at(self.epoch, self.hp.forget_rate, self.hp.num_gradual)
            meter = tune_lnl.LossMeter(self.device)
            kept = seen = 0
            for _, x, noisy in self.train_batches():
                loss_a = tune_lnl.gce(self.net_a(x), noisy, self.hp.q)
                loss_b = tune_lnl.gce(self.net_b(x), noisy, self.hp.q)
                train_a, train_b, keep_a, _ = tune_lnl.cross_update(loss_a, loss_b, rate)
                self.update_both(train_a + train_b)
                meter.add(train_a)
                kept, seen = kept + len(keep_a), seen + len(noisy)
            return {"train_loss": meter.mean, "forget_rate": rate, "kept_share": kept / seen}
'''


def test_a_plugin_written_against_tune_lnl_alone_trains(tmp_path, monkeypatch, data_root):
    source = textwrap.dedent(PLUGIN)
    tree = ast.parse(source)
    imported = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in n.names} | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported == {"tune_lnl", "dataclasses", "dataclass"}  # nothing from tune_lnl's submodules
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
            and n.value.id == "tune_lnl"}
    assert used <= set(tune_lnl.__all__), used - set(tune_lnl.__all__)

    (tmp_path / "gceteach.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "gceteach", raising=False)
    monkeypatch.setattr(method_registry, "_resolved", dict(method_registry._resolved))
    monkeypatch.setattr(plugins, "_roots", set(plugins._roots))
    importlib.invalidate_caches()
    spec = "gceteach:GCETeaching"
    cls = method_class(spec)
    assert cls.defaults["epochs"] == 3 and cls.defaults["q"] == 0.7 and cls.defaults["forget_rate"] == 0.2
    # num_gradual 1: the whole forget rate from the first epoch on; half of every batch is kept
    method = cls(tiny_cfg(spec, data_root, forget_rate=0.5, num_gradual=1, q=0.5, epochs=1, batch_size=64))
    assert method.hp.q == 0.5 and method.epochs == 1
    metrics = method.step()
    assert method.done and len(method.history) == 1
    assert metrics["forget_rate"] == 0.5 and 0.49 < metrics["kept_share"] <= 0.5
    assert math.isfinite(metrics["train_loss"]) and 0.0 <= metrics["test_acc"] <= 1.0
    assert {"test_acc_b", "divergence_test"} <= set(metrics)  # both networks evaluated
