"""UNICON: the JSD, the uniform selection and its label-refinement weights, and the contrastive loss against the
official code's numbers and hand computations; the projection head; exact resume across the warm-up ->
semi-supervised boundary with the strong views and the contrastive term, learning."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from method_helpers import assert_exact_resume, tiny_cfg

from trainables.unicon import UNICON, ProjectionNet, jsd_to_label, nt_xent, uniform_selection
from tune_lnl.models import build_model

# /work/scratch/unicon/driver.py runs github nazmul-karim170/UNICON-Noisy-Label @
# 616dc495f30c3f7d8818d473532376278300bcc4 (Train_cifar.py: kl_divergence, Jensen_Shannon and the main loop's cut-off
# / SR lines; dataloader_cifar.py: the 'labeled' selection loop and its weights; Contrastive_loss.py: SupConLoss)
# on these inputs; output.txt there holds the numbers.
P = [[0.8, 0.15, 0.05], [0.1, 0.7, 0.2], [0.3, 0.3, 0.4], [0.05, 0.05, 0.9], [0.6, 0.3, 0.1],
     [0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.45, 0.45, 0.1], [0.9, 0.05, 0.05], [0.25, 0.6, 0.15]]
Y = [0, 1, 2, 2, 1, 1, 0, 0, 0, 2]
OFFICIAL_JSD = [0.07488182187080383, 0.1172768846154213, 0.27435851097106934, 0.03597375750541687,
                0.34201452136039734, 0.21576160192489624, 0.525597333908081, 0.24409933388233185,
                0.03597375750541687, 0.47050008177757263]
# d_u = 0.7: cut-off = mean 0.2336..., SR 0.5; d_u = 0.2: cut-off 0.19410976767539978, SR 0.4. Both: one sample per
# class, labeled [8, 1, 3, 0, 0] / [8, 1, 3, 0] -- the trailing 0s are the code's zero-filled slots (int(SR N) slots,
# C * int(SR N / C) filled), not a selection of sample 0
OFFICIAL_SR = {0.7: 0.5, 0.2: 0.4}
OFFICIAL_SELECTED = {8, 1, 3}
OFFICIAL_W = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.47440266609191895, 1.0, 1.0, 1.0]
F1 = [[0.5, -1.0, 0.2], [1.5, 0.3, -0.7], [-0.2, 0.8, 0.1], [0.9, 0.9, -0.3]]
F2 = [[0.4, -0.8, 0.3], [1.2, 0.5, -0.5], [-0.4, 0.7, 0.0], [1.0, 0.6, -0.2]]
OFFICIAL_SUPCON = {0.05: 0.28145426511764526, 0.5: 0.8629674911499023}


def hand_jsd(p, y):
    m = [(a + (1.0 if c == y else 0.0)) / 2 for c, a in enumerate(p)]
    kl_p = sum(a * math.log(a / b) for a, b in zip(p, m) if a > 0)
    return (kl_p + math.log(1 / m[y])) / 2


def test_jsd_matches_official_and_hand():
    d = jsd_to_label(torch.tensor(P), torch.tensor(Y))
    assert d.tolist() == pytest.approx(OFFICIAL_JSD, abs=1e-6)
    assert d.tolist() == pytest.approx([hand_jsd(p, y) for p, y in zip(P, Y)], abs=1e-6)
    # the paper's normalised JSD: bits, in [0, 1]; 0 at the label, 1 (ln 2 nats) for a prediction of another class
    bits = jsd_to_label(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), torch.tensor([0, 0]), normalised=True)
    assert bits.tolist() == pytest.approx([0.0, 1.0], abs=1e-6)


def test_uniform_selection_matches_official():
    d = torch.tensor(OFFICIAL_JSD)
    for d_u, sr in OFFICIAL_SR.items():
        mask, ratio = uniform_selection(d, torch.tensor(Y), 3, d_u, 5.0)
        assert ratio == pytest.approx(sr)
        assert set(mask.nonzero().squeeze(1).tolist()) == OFFICIAL_SELECTED
    w = torch.where(d < 0.5, 1.0, 1.0 - d)  # the weight UNICON.division returns
    assert w.tolist() == pytest.approx(OFFICIAL_W, abs=1e-6)


def test_uniform_selection_is_class_balanced_by_hand():
    """Two classes, 8 samples of class 0 and 2 of class 1: ratio 0.6 -> floor(0.6 * 10 / 2) = 3 per class, all 2 of
    class 1; the smallest divergences within each class, whatever the other class's values."""
    d = torch.tensor([0.9, 0.1, 0.2, 0.5, 0.05, 0.3, 0.7, 0.4, 0.95, 0.99])
    y = torch.tensor([0, 0, 0, 0, 0, 0, 0, 0, 1, 1])
    mask, ratio = uniform_selection(d, y, 2, 0.7, 5.0)  # mean 0.509: 6 of 10 below it -> 0.6 (mean < d_u)
    assert ratio == pytest.approx(0.6)
    assert mask.nonzero().squeeze(1).tolist() == [1, 2, 4, 8, 9]


def hand_nt_xent(f1, f2, kappa):
    z = np.concatenate([f1, f2])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    b = len(f1)
    total = 0.0
    for i in range(2 * b):
        j = (i + b) % (2 * b)
        others = [np.exp(z[i] @ z[k] / kappa) for k in range(2 * b) if k != i]
        total += -math.log(np.exp(z[i] @ z[j] / kappa) / sum(others))
    return total / (2 * b)


def test_contrastive_loss_matches_official_and_hand():
    z1, z2 = F.normalize(torch.tensor(F1), dim=1), F.normalize(torch.tensor(F2), dim=1)
    for kappa, official in OFFICIAL_SUPCON.items():
        ours = nt_xent(z1, z2, kappa).item()
        assert ours == pytest.approx(official, rel=1e-5)
        assert ours == pytest.approx(hand_nt_xent(np.array(F1), np.array(F2), kappa), rel=1e-5)


def test_projection_net_keeps_the_logits():
    torch.manual_seed(0)
    model = build_model("mlp", 10, (1, 28, 28))
    x = torch.rand(4, 1, 28, 28)
    before = model(x)
    net = ProjectionNet(model, 16, 10)
    assert torch.equal(net(x), before)
    z = net.project(x)
    assert z.shape == (4, 16) and torch.allclose(z.norm(dim=1), torch.ones(4))


def test_official_defaults():
    hp = UNICON.Hyper()
    assert (hp.warmup, hp.T, hp.alpha, hp.lambda_u, hp.lambda_c, hp.kappa, hp.d_u, hp.tau, hp.proj_dim, hp.epochs,
            hp.lr_schedule, hp.variant) == (10, 0.5, 4.0, 30.0, 0.025, 0.05, 0.7, 5.0, 128, 350, "cosine", "official")
    assert not hasattr(hp, "p_threshold")


def test_exact_resume_across_warmup_boundary_and_learns(tmp_path, data_root):
    cfg = tiny_cfg("unicon", data_root, epochs=4, warmup=2, optimizer="adam", lr=1e-3, weight_decay=0.0,
                   train_subset=512, test_subset=256, augment=False)
    straight = assert_exact_resume(lambda: UNICON(cfg), tmp_path / "ckpt.pt", epochs=4)
    assert [m["phase"] for m in straight.history] == [1, 1, 2, 2]
    last = straight.history[-1]
    assert 0 < last["n_labeled"] < 512 and last["selection_precision"] > 0.85
    assert last["test_acc"] > 0.5
