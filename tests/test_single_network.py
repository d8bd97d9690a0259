"""Single-network baselines (CE, MAE, GCE, IMAE): exact checkpoint resume, learning, config keys."""
import pytest

from tune_lnl.config import ConfigError, load_space
from tune_lnl.data import load_noisy_data
from tune_lnl.methods import method_class

from resume_check import assert_exact_resume

METHODS = ["ce", "mae", "gce", "imae"]


def _cfg(data_root, method, **kw):
    cfg = dict(method_class(method).defaults)
    cfg.update(method=method, dataset="mnist", data_root=str(data_root), proxy="noisy_val", val_fraction=0.1,
               noise_seed=0, noise_type="symmetric", noise_rate=0.2, seed=3, device="cpu",
               train_subset=1024, test_subset=512, epochs=4)
    cfg.update(kw)
    return cfg


@pytest.fixture(scope="module")
def data(data_root):
    return load_noisy_data(_cfg(data_root, "ce"))


@pytest.mark.parametrize("method", METHODS)
def test_resume_is_exact(method, data, data_root, tmp_path):
    cls = method_class(method)
    assert_exact_resume(lambda: cls(_cfg(data_root, method), data), tmp_path / "c.pt")


@pytest.mark.parametrize("method", ["ce", "imae"])
def test_learns_above_chance(method, data, data_root):
    m = method_class(method)(_cfg(data_root, method, augment=False), data)
    for _ in range(3):
        metrics = m.step()
    assert metrics["test_acc"] > 0.5  # chance is 0.1


def test_method_specific_keys_are_validated(tmp_path):
    base = ("method: {m}\ndataset: mnist\nfixed: {{{fixed}}}\n"
            "settings:\n  u-0.5:\n    noise: {{type: uniform, rate: 0.5}}\n")
    ok = tmp_path / "ok.yaml"
    ok.write_text(base.format(m="imae", fixed="T: 8.0"))
    assert load_space(ok).paper_config("u-0.5", "/")["T"] == 8.0
    for m, fixed, key in [("imae", "T: -1.0", "fixed.T"), ("gce", "q: 0.0", "fixed.q"), ("ce", "T: 8.0", "fixed.T")]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(base.format(m=m, fixed=fixed))
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_space(bad)
