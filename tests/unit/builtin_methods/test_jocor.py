"""JoCoR: the joint loss against a hand computation, the shared selection, exact resume."""
import math

import pytest
import torch
from method_helpers import assert_exact_resume, tiny_cfg

from trainables.jocor import JoCoR, joint_loss
from tune_lnl.data import load_noisy_data


def _p(row):
    e = [math.exp(v) for v in row]
    return [v / sum(e) for v in e]


def test_joint_loss_by_hand():
    za = torch.tensor([[1.0, 0.0, -1.0], [0.2, 0.4, 0.1]], dtype=torch.float64)
    zb = torch.tensor([[0.0, 2.0, 0.5], [0.2, 0.4, 0.1]], dtype=torch.float64)
    y = torch.tensor([0, 2])
    got = joint_loss(za, zb, y, 0.3)
    for i in range(2):
        pa, pb = _p(za[i].tolist()), _p(zb[i].tolist())
        ce = -math.log(pa[y[i]]) - math.log(pb[y[i]])
        kl = sum(a * math.log(a / b) for a, b in zip(pa, pb)) + sum(b * math.log(b / a) for a, b in zip(pa, pb))
        assert got[i].item() == pytest.approx(0.7 * ce + 0.3 * kl)
    assert got[1].item() == pytest.approx(0.7 * 2 * -math.log(_p([0.2, 0.4, 0.1])[2]))  # identical nets: KL = 0


def test_co_regularization_reaches_both_networks():
    za = torch.tensor([[1.0, 0.0, -1.0]], requires_grad=True)
    zb = torch.tensor([[0.0, 2.0, 0.5]], requires_grad=True)
    joint_loss(za, zb, torch.tensor([0]), 1.0).sum().backward()  # KL part only
    assert za.grad.abs().sum() > 0 and zb.grad.abs().sum() > 0


def _cfg(data_root, **kw):
    kw = {**dict(noise_type="symmetric", noise_rate=0.4, seed=2, num_gradual=2, co_lambda=0.5), **kw}
    return tiny_cfg(kw.pop("method", "jocor"), data_root, **kw)


def test_resume_is_exact_and_it_learns(data_root, tmp_path):
    data = load_noisy_data(_cfg(data_root))
    straight = assert_exact_resume(lambda: JoCoR(_cfg(data_root), data), tmp_path / "c.pt")
    assert straight.history[-1]["test_acc"] > 0.5
