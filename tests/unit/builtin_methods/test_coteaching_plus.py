"""Co-teaching+: the update by disagreement against hand-built logits (which samples disagree,
which losses are smallest, the kept count, the empty-disagreement fallback), plain Co-teaching
before init_epoch, the disagreement statistic, exact resume across init_epoch, learning."""
import math

import pytest
import torch
from method_helpers import _tensors, assert_exact_resume, tiny_cfg

from trainables.coteaching import CoTeaching
from trainables.coteaching_plus import CoTeachingPlus, disagreement_selection, disagreement_update
from tune_lnl.data import load_noisy_data
from tune_lnl.data.device import predict

# B = 6 samples, C = 3 classes. Arg-max of A / B per sample:
#   0: 0/1 disagree   1: 1/1 agree   2: 2/0 disagree   3: 0/2 disagree   4: 2/2 agree   5: 1/0 disagree
LOGITS_A = [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0],
            [1.0, 0.0, 0.5], [0.0, 0.0, 2.0], [0.0, 3.0, 0.0]]
LOGITS_B = [[0.0, 1.0, 0.0], [0.0, 2.0, 0.0], [2.0, 0.0, 0.0],
            [0.0, 0.0, 3.0], [0.0, 0.0, 2.0], [2.0, 0.5, 0.0]]
LABELS = [0, 1, 0, 2, 2, 1]
DISAGREE = [0, 2, 3, 5]


def ce(z, y):
    return math.log(sum(math.exp(v) for v in z)) - z[y]


CE_A = [ce(z, y) for z, y in zip(LOGITS_A, LABELS)]
CE_B = [ce(z, y) for z, y in zip(LOGITS_B, LABELS)]


def _run(forget_rate, logits_b=LOGITS_B):
    za = torch.tensor(LOGITS_A, dtype=torch.float64, requires_grad=True)
    zb = torch.tensor(logits_b, dtype=torch.float64, requires_grad=True)
    train_a, train_b, n, _, _ = disagreement_update(za, zb, torch.tensor(LABELS), forget_rate)
    (train_a + train_b).backward()
    rows = lambda g: [i for i in range(6) if g[i].abs().sum() > 0]
    return train_a.item(), train_b.item(), int(n), rows(za.grad), rows(zb.grad)


def test_hand_ce_ordering():
    # by hand, among the disagreeing samples {0, 2, 3, 5}:
    # A's CE: 5 (log(1+2e^-3)) < 0 (log(1+2e^-2)) < 3 (log(e+e^.5+1)-.5) < 2 (log(2+e))
    # B's CE: 3 (log(1+2e^-3)) < 2 (log(1+2e^-2)) < 0 (log(2+e)) < 5 (log(e^2+e^.5+1)-.5)
    assert CE_A[5] < CE_A[0] < CE_A[3] < CE_A[2]
    assert CE_B[3] < CE_B[2] < CE_B[0] < CE_B[5]
    assert CE_A[2] == pytest.approx(math.log(2 + math.e))
    assert CE_B[5] == pytest.approx(math.log(math.e ** 2 + math.e ** 0.5 + 1) - 0.5)


def test_update_by_disagreement_by_hand():
    # forget 0.5 of n = 4 disagreeing -> keep int(0.5 * 4) = 2. A keeps {5, 0}; B keeps {3, 2}.
    loss_a, loss_b, n, rows_a, rows_b = _run(0.5)
    assert n == 4
    assert loss_a == pytest.approx((CE_A[2] + CE_A[3]) / 2)  # A on B's selection {2, 3}
    assert loss_b == pytest.approx((CE_B[0] + CE_B[5]) / 2)  # B on A's selection {0, 5}
    assert rows_a == [2, 3] and rows_b == [0, 5]             # only the selection is trained on


def test_keep_all_disagreeing_and_at_least_one():
    loss_a, loss_b, _, rows_a, rows_b = _run(0.0)  # keep all 4 disagreeing, never the agreeing 1, 4
    assert loss_a == pytest.approx(sum(CE_A[i] for i in DISAGREE) / 4)
    assert loss_b == pytest.approx(sum(CE_B[i] for i in DISAGREE) / 4)
    assert rows_a == rows_b == DISAGREE
    # forget 0.8: int(0.2 * 4) = 0 -> at least one: A keeps {5}, B keeps {3}
    loss_a, loss_b, _, rows_a, rows_b = _run(0.8)
    assert loss_a == pytest.approx(CE_A[3]) and rows_a == [3]
    assert loss_b == pytest.approx(CE_B[5]) and rows_b == [5]


def test_no_disagreement_falls_back_to_the_whole_batch():
    loss_a, loss_b, n, rows_a, rows_b = _run(0.5, logits_b=LOGITS_A)  # identical networks
    assert n == 0
    assert loss_a == pytest.approx(sum(CE_A) / 6) and loss_b == pytest.approx(sum(CE_A) / 6)
    assert rows_a == rows_b == list(range(6))


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.3, 0.45, 0.7, 0.9])
def test_kept_count_matches_the_plain_rule(rate):
    losses = torch.tensor([0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 1.0, 0.05])
    for n in range(12):
        disagree = torch.zeros(11, dtype=torch.bool)
        disagree[:n] = True  # the first n samples disagree
        mask = disagreement_selection(losses, disagree, rate)
        keep = max(1, int((1.0 - rate) * n)) if n else 0
        assert int(mask.sum()) == keep
        want = sorted(range(n), key=lambda i: losses[i].item())[:keep]
        assert sorted(mask.nonzero().flatten().tolist()) == sorted(want)


def _cfg(data_root, **kw):
    kw = {**dict(noise_type="pairflip", noise_rate=0.2, seed=5, num_gradual=2, init_epoch=3), **kw}
    return tiny_cfg(kw.pop("method", "coteaching_plus"), data_root, **kw)


@pytest.fixture(scope="module")
def data(data_root):
    return load_noisy_data(_cfg(data_root))


def test_before_init_epoch_it_is_coteaching(data, data_root):
    plus = CoTeachingPlus(_cfg(data_root, init_epoch=1), data)
    plain = CoTeaching(_cfg(data_root, method="coteaching"), data)
    m_plus, m_plain = plus.step(), plain.step()
    assert m_plus["train_loss"] == m_plain["train_loss"]
    a, b = _tensors(plain.method_state()), _tensors(plus.method_state())  # networks and optimizers
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k], k
    plus.step(), plain.step()  # epoch 1 >= init_epoch: now the two differ
    assert not torch.equal(plus.net_a.net[1].weight, plain.net_a.net[1].weight)


def test_disagree_frac_by_hand(data, data_root):
    # lr 0 (the networks never move) and no augmentation: the epoch's disagreement fraction is
    # the share of training images on which the two initial networks' predictions differ
    m = CoTeachingPlus(_cfg(data_root, init_epoch=0, lr=0.0, augment=False), data)
    d = m.data
    want = float((predict(m.net_a, d.train_x) != predict(m.net_b, d.train_x)).float().mean())
    got = m.step()["disagree_frac"]
    assert 0.0 < got < 1.0 and got == pytest.approx(want)


def test_resume_is_exact_across_init_epoch_and_it_learns(data, data_root, tmp_path):
    # 2 co-teaching epochs, save, load, 1 co-teaching + 1 disagreement epoch
    straight = assert_exact_resume(lambda: CoTeachingPlus(_cfg(data_root), data), tmp_path / "c.pt")
    hist = straight.history
    assert [h["forget_rate"] for h in hist] == pytest.approx([0.0, 0.2, 0.2, 0.2])
    assert all(0.0 <= h["disagree_frac"] <= 1.0 for h in hist)
    assert hist[-1]["test_acc"] > 0.5
