"""Peer loss: the peer term against a hand computation with a fixed pairing (and the official
code's numbers), the alpha schedule and learning rate by hand (and the official ``f_alpha``), the
warm-up is the CE baseline bit for bit, exact resume across the warm-up boundary, learning.

Official numbers: /work/scratch/losses/driver.py (outside the project) runs
weijiaheng/Multi-class-Peer-Loss-functions@fba9eb6d2b62476552955bae8da2f73f5229c6cf MNIST/runner.py's
``CrossEntropyLossStable`` (``-log(softmax + 1e-5)``) and ``f_alpha`` ("Setting 1"), extracted from
the file with ``ast``, on LOGITS / LABELS below with the pairing N1 / N2, alpha 0.5.
"""
import math

import pytest
import torch
from method_helpers import assert_exact_resume, tiny_cfg

from trainables.ce import CE
from trainables.peer import Peer, peer_alpha, peer_loss
from tune_lnl.data import load_noisy_data

LOGITS = [[2.0, 1.0, 0.1, -1.0], [0.5, 0.5, 0.5, 0.5], [-1.0, 3.0, 0.0, 1.0]]
LABELS = [0, 2, 3]
N1, N2, ALPHA = [2, 0, 1], [1, 1, 0], 0.5  # sample n's peer image x_N1[n], peer label y_N2[n]
#: the official stable CE's peer loss for that pairing (driver output)
OFFICIAL_PEER = [-1.1431730522634866, 0.21165024982816427, 1.4919663528890341]
#: official f_alpha (MNIST, Setting 1: 120 epochs at 0, then np.linspace(0, 1, 180)) at these epochs
OFFICIAL_EPOCHS = (0, 119, 120, 121, 209, 298, 299)
OFFICIAL_ALPHA = [0.0, 0.0, 0.0, 0.00558659217877095, 0.49720670391061456, 0.9944134078212291, 1.0]
OFFICIAL_LR = [0.0001, 0.0001, 0.0001, 9.944444444444444e-05, 6.679104477611941e-05, 5.0140056022408966e-05, 5e-05]


def ce_hand(z, y):
    m = max(z)
    return -(z[y] - m - math.log(sum(math.exp(v - m) for v in z)))


def test_peer_term_by_hand_with_a_fixed_pairing():
    z = torch.tensor(LOGITS, dtype=torch.float64)
    y = torch.tensor(LABELS)
    got = peer_loss(z, y, z[N1], y[N2], ALPHA).tolist()  # eps 0: the paper's exact cross entropy
    want = [ce_hand(LOGITS[n], LABELS[n]) - ALPHA * ce_hand(LOGITS[N1[n]], LABELS[N2[n]]) for n in range(3)]
    assert got == pytest.approx(want, rel=1e-12)
    assert peer_loss(z, y, z[N1], y[N2], 0.0).tolist() == pytest.approx([ce_hand(a, b) for a, b in zip(LOGITS, LABELS)])
    # the method's default eps 1e-5 is the official code's CrossEntropyLossStable: its numbers exactly
    official = peer_loss(z, y, z[N1], y[N2], ALPHA, Peer.Hyper().eps).tolist()
    assert official == pytest.approx(OFFICIAL_PEER, rel=1e-12)


def test_the_official_cross_entropy_bounds_the_peer_term():
    """-log(p_y + eps) <= -log(eps): a peer prediction that is confidently wrong lowers the loss by at most
    alpha * 11.51 (eps 1e-5), where the exact cross entropy lowers it without bound (here by alpha * 200)."""
    z = torch.tensor([[0.0, 0.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0])
    wrong = torch.tensor([[100.0, -100.0, -100.0]], dtype=torch.float64)  # sure of class 0
    peer_y = torch.tensor([1])
    ce = math.log(3)
    bounded = peer_loss(z, y, wrong, peer_y, 1.0, 1e-5).item()
    assert bounded == pytest.approx(-math.log(1 / 3 + 1e-5) + math.log(math.exp(-200) + 1e-5), rel=1e-12)
    assert bounded >= -math.log(1 / 3 + 1e-5) - math.log(1e5)  # the cap: at most -log(eps) taken off
    assert peer_loss(z, y, wrong, peer_y, 1.0, 0.0).item() == pytest.approx(ce - 200.0, rel=1e-9)


def test_alpha_schedule_by_hand():
    hp = Peer.Hyper(warmup=2, epochs=6, alpha_start=0.5, alpha=2.0)
    assert [peer_alpha(e, hp) for e in range(6)] == pytest.approx([0, 0, 0.5, 1.0, 1.5, 2.0])  # 4 steps of 0.5
    one = Peer.Hyper(warmup=3, epochs=4, alpha_start=0.25, alpha=9.0)
    assert [peer_alpha(e, one) for e in range(4)] == [0, 0, 0, 0.25]  # a single peer epoch: alpha_start


def test_default_schedule_is_the_official_one():
    hp = Peer.Hyper()  # 300 epochs, warm-up 120, alpha 0 -> 1, lr / (1 + alpha)
    assert [peer_alpha(e, hp) for e in OFFICIAL_EPOCHS] == pytest.approx(OFFICIAL_ALPHA, rel=1e-12)
    by_hand = [0.0, 0.0, 0.0, 1 / 179, 89 / 179, 178 / 179, 1.0]
    assert [peer_alpha(e, hp) for e in OFFICIAL_EPOCHS] == pytest.approx(by_hand, rel=1e-12)
    assert [1e-4 / (1 + peer_alpha(e, hp)) for e in OFFICIAL_EPOCHS] == pytest.approx(OFFICIAL_LR, rel=1e-12)


def test_check_config():
    assert Peer.check_config(Peer.Hyper(warmup=300, epochs=300))
    assert not Peer.check_config(Peer.Hyper())


RUN = dict(warmup=2, alpha_start=0.5, alpha=1.0)  # 4 epochs: CE, CE, peer 0.5, peer 1.0


@pytest.fixture(scope="module")
def data(data_root):
    return load_noisy_data(tiny_cfg("ce", data_root))


@pytest.fixture(scope="module")
def straight(data, data_root, tmp_path_factory):
    """4 epochs straight == 2 + save + load + 2 (exact resume across the warm-up boundary: the
    resumed run draws the same peer batches and labels from the restored generator)."""
    path = tmp_path_factory.mktemp("peer") / "p.pt"
    return assert_exact_resume(lambda: Peer(tiny_cfg("peer", data_root, **RUN), data), path)


def test_schedule_of_a_run(straight):
    hist = straight.history
    assert [h["alpha"] for h in hist] == [0.0, 0.0, 0.5, 1.0]
    assert [h["lr"] for h in hist] == pytest.approx([1e-3, 1e-3, 1e-3 / 1.5, 1e-3 / 2.0], rel=1e-15)


def test_it_learns(straight):
    assert straight.history[-1]["test_acc"] > 0.5


def test_warmup_is_the_ce_baseline(data, data_root):
    peer, ce = Peer(tiny_cfg("peer", data_root, **RUN), data), CE(tiny_cfg("ce", data_root), data)
    m_peer, m_ce = peer.step(), ce.step()
    assert m_peer["train_loss"] == m_ce["train_loss"] and m_peer["alpha"] == 0.0
    for k, v in ce.net.state_dict().items():
        assert torch.equal(peer.net.state_dict()[k], v), k


def test_peer_pairs_come_from_the_generator(data, data_root):
    """The same config draws the same peer images and labels (the run's generator, no global
    RNG): equal losses; and the peer term is on from epoch 0 with warm-up 0 (not CE)."""
    a = Peer(tiny_cfg("peer", data_root, warmup=0, epochs=1, alpha=1.0, alpha_start=1.0), data)
    b = Peer(tiny_cfg("peer", data_root, warmup=0, epochs=1, alpha=1.0, alpha_start=1.0), data)
    ce = CE(tiny_cfg("ce", data_root, epochs=1), data)
    ma, mb, mc = a.step(), b.step(), ce.step()
    assert ma["train_loss"] == mb["train_loss"]
    assert ma["train_loss"] != mc["train_loss"]
