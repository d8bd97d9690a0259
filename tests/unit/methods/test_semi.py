"""The semi-supervised methods' shared parts (tune_lnl.methods.semi, TrainingData.view_batches), each on its
own against a hand computation or an identity of its definition."""
import math

import pytest
import torch
from method_helpers import tiny_cfg

from tune_lnl.data import load_noisy_data, to_float
from tune_lnl.methods import semi
from tune_lnl.methods.registry import method_class


def test_sharpen_by_hand():
    # [0.6, 0.4] at T = 0.5: squares 0.36, 0.16, over 0.52
    out = semi.sharpen(torch.tensor([[0.6, 0.4], [0.5, 0.5]]), 0.5)
    assert out.flatten().tolist() == pytest.approx([0.36 / 0.52, 0.16 / 0.52, 0.5, 0.5])
    # T = 1 only renormalises
    assert semi.sharpen(torch.tensor([[2.0, 2.0]]), 1.0).flatten().tolist() == pytest.approx([0.5, 0.5])


def test_co_refine_and_co_guess_by_hand():
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[0.3, 0.7], [0.4, 0.6]])
    # w y + (1 - w) p: 0.8 [1, 0] + 0.2 [0.3, 0.7] = [0.86, 0.14]; w = 0: p
    assert semi.co_refine(y, torch.tensor([0.8, 0.0]), p).flatten().tolist() == pytest.approx([0.86, 0.14, 0.4, 0.6])
    a, b = torch.tensor([[0.2, 0.8]]), torch.tensor([[0.6, 0.4]])
    assert semi.co_guess(a, b, a, b).flatten().tolist() == pytest.approx([0.4, 0.6])


def test_beta_lambda_is_the_inverse_cdf_of_the_generators_uniform():
    g = torch.Generator().manual_seed(5)
    u = float(torch.rand((), generator=torch.Generator().manual_seed(5)))
    # Beta(1, 1) is uniform: its inverse CDF is the identity, then max(l, 1 - l)
    assert semi.beta_lambda(1.0, g) == pytest.approx(max(u, 1 - u))
    assert semi.beta_lambda(0.0, g) == 1.0
    draws = [semi.beta_lambda(4.0, g) for _ in range(200)]
    assert min(draws) >= 0.5 and max(draws) <= 1.0
    # Beta(4, 4) has sd 1/6 around 0.5: max(l, 1 - l) averages 0.5 + E|l - 0.5| (about 0.63)
    assert 0.58 < sum(draws) / len(draws) < 0.68


def test_mixup_by_hand():
    x = torch.tensor([[1.0], [2.0], [4.0]])
    t = torch.eye(3)
    perm = torch.randperm(3, generator=torch.Generator().manual_seed(1))
    xm, tm = semi.mixup(x, t, 0.7, torch.Generator().manual_seed(1))
    for i in range(3):
        j = int(perm[i])
        assert float(xm[i]) == pytest.approx(0.7 * float(x[i]) + 0.3 * float(x[j]))
        assert tm[i].tolist() == pytest.approx((0.7 * t[i] + 0.3 * t[j]).tolist())
    same = semi.mixup(x, t, 1.0, torch.Generator().manual_seed(1))
    assert torch.equal(same[0], x) and torch.equal(same[1], t)


def test_mixmatch_loss_by_hand():
    lx, lu = semi.mixmatch_loss(torch.tensor([[math.log(0.5), math.log(0.25), math.log(0.25)]]),
                                torch.tensor([[1.0, 0.0, 0.0]]),
                                torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
    assert float(lx) == pytest.approx(math.log(2.0))   # -log 0.5
    assert float(lu) == pytest.approx(0.25)            # ((0.5 - 1)^2 + 0.5^2) / 2 elements
    _, empty = semi.mixmatch_loss(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]), torch.zeros(0, 2), torch.zeros(0, 2))
    assert float(empty) == 0.0


def test_uniform_prior_penalty_by_hand():
    assert float(semi.uniform_prior_penalty(torch.zeros(4, 3))) == pytest.approx(0.0, abs=1e-7)
    # mean prediction [0.75, 0.25]: 0.5 log(0.5 / 0.75) + 0.5 log(0.5 / 0.25)
    z = torch.tensor([[math.log(0.75), math.log(0.25)]] * 2)
    expected = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(2.0)
    assert float(semi.uniform_prior_penalty(z)) == pytest.approx(expected, rel=1e-6)


def test_linear_rampup():
    assert semi.linear_rampup(12.0, 10, 16) == pytest.approx(0.125)
    assert semi.linear_rampup(5.0, 10) == 0.0
    assert semi.linear_rampup(40.0, 10) == 1.0
    assert semi.linear_rampup(10.0, 10, 0) == 1.0


class _FixedLogits:
    def __init__(self, logits, labels):
        self._z, self.train_noisy = logits, labels

    def logits(self, model, split):
        assert split == "train"
        return self._z


def test_per_sample_ce_is_each_samples_cross_entropy():
    z = torch.tensor([[math.log(0.5), math.log(0.5)], [math.log(0.9), math.log(0.1)]])
    out = semi.per_sample_ce(_FixedLogits(z, torch.tensor([0, 1])), None)
    assert out.tolist() == pytest.approx([math.log(2.0), -math.log(0.1)])


def test_gmm_division_gives_the_low_loss_mode_a_high_clean_probability():
    g = torch.Generator().manual_seed(0)
    clean = 0.1 + 0.02 * torch.randn(60, generator=g)
    noisy = 2.0 + 0.2 * torch.randn(40, generator=g)
    losses = torch.cat([clean, noisy])
    w = semi.gmm_clean_probability(losses, seed=0)
    assert w.dtype == torch.float32 and w.shape == (100,)
    assert bool((w[:60] > 0.99).all()) and bool((w[60:] < 0.01).all())
    # min-max normalised first: an affine change of the losses changes nothing
    assert torch.allclose(semi.gmm_clean_probability(3.0 * losses + 7.0, seed=0), w, atol=1e-5)
    assert semi.gmm_clean_probability(torch.full((5,), 0.3), seed=0).tolist() == [1.0] * 5


def test_ema_model_follows_the_decay_by_hand():
    net = torch.nn.Sequential(torch.nn.Linear(1, 1, bias=False), torch.nn.BatchNorm1d(1))
    ema = semi.ema_model(net, 0.9)
    with torch.no_grad():
        net[0].weight.fill_(2.0)
        net[1].running_mean.fill_(1.0)
    ema.update_parameters(net)       # the first update copies
    assert float(ema.module[0].weight.detach()) == 2.0
    with torch.no_grad():
        net[0].weight.fill_(4.0)
        net[1].running_mean.fill_(3.0)
    ema.update_parameters(net)       # 0.9 * 2 + 0.1 * 4; buffers too: 0.9 * 1 + 0.1 * 3
    assert float(ema.module[0].weight.detach()) == pytest.approx(2.2)
    assert float(ema.module[1].running_mean) == pytest.approx(1.2)


def test_labeled_unlabeled_plan_covers_and_cycles():
    g = torch.Generator().manual_seed(0)
    labeled, unlabeled = torch.arange(10), torch.arange(100, 107)
    plan = semi.labeled_unlabeled_plan(labeled, unlabeled, 4, g)
    assert [len(a) for a, _ in plan] == [4, 4, 2]            # ceil(10 / 4) batches, the last of 2 kept
    assert sorted(torch.cat([a for a, _ in plan]).tolist()) == list(range(10))
    u = torch.cat([b for _, b in plan])
    assert [len(b) for _, b in plan] == [4, 4, 4]
    assert sorted(u[:7].tolist()) == list(range(100, 107))   # a whole permutation before any repeat
    assert set(u[7:].tolist()) <= set(range(100, 107))
    assert [len(a) for a, _ in semi.labeled_unlabeled_plan(torch.arange(9), unlabeled, 4, g)] == [4, 4]  # 1 dropped
    empty = semi.labeled_unlabeled_plan(labeled, torch.arange(0), 4, g)
    assert all(b.numel() == 0 for _, b in empty)


def test_view_batches_gather_each_view_from_the_runs_generator(data_root):
    cfg = tiny_cfg("ce", data_root)
    m = method_class("ce")(cfg, load_noisy_data(cfg))
    idx = torch.tensor([5, 0, 5, 17])
    aug = m.data.augmentation("randaugment")
    before = m.gen.get_state()
    [(got_idx, (plain, strong), noisy)] = list(m.view_batches([idx], [None, aug]))
    x = to_float(m.data.train_x[idx])
    assert torch.equal(got_idx, idx) and torch.equal(plain, x)
    assert torch.equal(noisy, m.data.train_noisy[idx])
    again = torch.Generator().set_state(before)
    assert torch.equal(strong, aug(x, again))
