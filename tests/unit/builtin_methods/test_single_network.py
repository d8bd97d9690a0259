"""Single-network baselines (CE, MAE, GCE, IMAE): exact checkpoint resume, learning, config keys."""
import pytest
from method_helpers import assert_exact_resume, tiny_cfg

from tune_lnl.config import ConfigError, load_space
from tune_lnl.data import load_noisy_data
from tune_lnl.methods import method_class

METHODS = ["ce", "mae", "gce", "imae"]


def _cfg(data_root, method, **kw):
    return tiny_cfg(method, data_root, **kw)


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
    base = ("method: {m}\ndataset: mnist\nfixed: {{{fixed}}}\nspace: {{lr: {{low: 1.0e-4, high: 1.0e-2, log: true}}}}\n"
            "settings:\n  u-0.5:\n    noise: {{type: uniform, rate: 0.5}}\n")
    ok = tmp_path / "ok.yaml"
    ok.write_text(base.format(m="imae", fixed="T: 8.0"))
    assert load_space(ok).paper_config("u-0.5", "/")["T"] == 8.0
    for m, fixed, key in [("imae", "T: -1.0", "fixed.T"), ("gce", "q: 0.0", "fixed.q"), ("ce", "T: 8.0", "fixed.T")]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(base.format(m=m, fixed=fixed))
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_space(bad)
