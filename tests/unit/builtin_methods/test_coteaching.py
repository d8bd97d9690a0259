"""Co-teaching: the cross update against a hand computation, exact resume, learning."""
import pytest
import torch
from method_helpers import assert_exact_resume, tiny_cfg

from trainables.coteaching import CoTeaching
from tune_lnl.data import load_noisy_data
from tune_lnl.methods.selection import cross_update


def test_cross_update_by_hand():
    loss_a = torch.tensor([0.1, 0.9, 0.5, 0.3, 2.0])
    loss_b = torch.tensor([0.8, 0.2, 0.4, 1.5, 0.1])
    # forget 0.4 of 5 -> keep int(0.6 * 5) = 3. A keeps {0, 3, 2}; B keeps {4, 1, 2}.
    train_a, train_b, _, _ = cross_update(loss_a, loss_b, 0.4)
    assert train_a.item() == pytest.approx((2.0 + 0.9 + 0.5) / 3)  # A on B's selection {1, 2, 4}
    assert train_b.item() == pytest.approx((0.8 + 1.5 + 0.4) / 3)  # B on A's selection {0, 2, 3}


def _cfg(data_root, **kw):
    kw = {**dict(noise_type="pairflip", noise_rate=0.2, seed=5, num_gradual=2), **kw}
    return tiny_cfg(kw.pop("method", "coteaching"), data_root, **kw)


@pytest.fixture(scope="module")
def data(data_root):
    return load_noisy_data(_cfg(data_root))


def test_resume_is_exact_and_it_learns(data, data_root, tmp_path):
    straight = assert_exact_resume(lambda: CoTeaching(_cfg(data_root), data), tmp_path / "c.pt")
    hist = straight.history
    assert [h["forget_rate"] for h in hist] == pytest.approx([0.0, 0.2, 0.2, 0.2])
    assert hist[-1]["test_acc"] > 0.5
