"""forward_t, backward_t, t_revision (tune_lnl/methods/transition.py, trainables/{forward_t,backward_t,t_revision}.py):
the losses against hand computations and the papers' identities, against the numbers the official codes print on
the same fixed inputs, the anchor-point estimator on hand-made probability matrices (and the official estimators'
output), the oracle T, exact resume across every phase boundary (T and the phase in the checkpoint), learning.

Official-code numbers come from the scratch drivers in /work/scratch/transition/ (kept there, outside the project):

* lc_driver.py: giorgiop/loss-correction at 15a79de3c67c31907733392085c333547c2f2b16, ``loss.py`` ``robust('forward'
  | 'backward', P)`` and ``crossentropy`` under Keras 2.15 / tensorflow-cpu 2.15.1 (floatx float64, y_pred =
  softmax(LOGITS)), and ``models.py`` ``NoiseEstimator(filter_outlier=...).fit(X).predict()`` (the class's source
  run alone: the rest of models.py imports Keras-1-era modules) with ``predict_proba`` returning P1 / P2 / P3.
* trev_fit_driver.py: xiaoboxia/T-Revision at b598cf2800b9909ba3b461f9f19b2847e941e1db, ``tools.fit`` +
  ``tools.norm`` (numpy 1.26) on P1 / P2 / P3, and ``tools.error``.
* trev_loss_driver.py: the same T-Revision commit, ``loss.py`` ``reweight_loss`` (the reweighting phase of its
  main.py) and ``reweighting_revision_loss`` (its revision phase) in float64 on LOGITS / TARGET / T / DT, with
  their gradients (torch 2.x).
"""
import math

import numpy as np
import pytest
import torch
from method_helpers import assert_exact_resume, tiny_cfg

from trainables.backward_t import BackwardT
from trainables.forward_t import ForwardT
from trainables.t_revision import TRevision
from tune_lnl.data import load_noisy_data
from tune_lnl.methods.transition import (
    anchor_transition,
    backward_loss,
    estimation_error,
    forward_loss,
    reweighted_loss,
)

# the fixed input of the official-code drivers: 5 samples x 3 classes (the last one's p_1 ~ 1.5e-8 < 1e-7: clipped)
LOGITS = [[2.0, 0.5, -1.0], [0.1, 1.2, 0.3], [-0.5, 0.0, 2.5], [1.0, 1.0, 1.0], [12.0, -6.0, 0.0]]
TARGET = [0, 2, 1, 2, 1]
T3 = [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.05, 0.15, 0.8]]
DT = [[0.01, -0.02, 0.01], [0.0, 0.03, -0.03], [-0.01, 0.0, 0.01]]

# hand-made noisy posteriors, 12 samples x 3 classes (matrices.py of the drivers)
P1 = [[0.90, 0.05, 0.05], [0.80, 0.15, 0.05], [0.70, 0.20, 0.10], [0.10, 0.85, 0.05],
      [0.15, 0.75, 0.10], [0.05, 0.60, 0.35], [0.05, 0.10, 0.85], [0.10, 0.10, 0.80],
      [0.20, 0.10, 0.70], [0.40, 0.30, 0.30], [0.30, 0.40, 0.30], [0.25, 0.25, 0.50]]
P2 = [[0.50, 0.45, 0.05], [0.05, 0.90, 0.05], [0.45, 0.10, 0.45], [0.10, 0.10, 0.80],
      [0.20, 0.05, 0.75], [0.30, 0.30, 0.40], [0.40, 0.20, 0.40], [0.35, 0.35, 0.30],
      [0.20, 0.40, 0.40], [0.25, 0.25, 0.50], [0.10, 0.20, 0.70], [0.30, 0.10, 0.60]]


def p3():
    """200 x 3: softmax of 3 sin(0.7 n (k + 1) + k) (the drivers' P3)."""
    n, k = np.arange(200)[:, None], np.arange(3)[None, :]
    z = 3.0 * np.sin(0.7 * n * (k + 1) + k)
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _t(rows, grad=False):
    return torch.tensor(rows, dtype=torch.float64, requires_grad=grad)


def _rows(want, abs=1e-15, rel=1e-12):
    return [pytest.approx(r, rel=rel, abs=abs) for r in want]


def softmax(v):
    m = max(v)
    e = [math.exp(x - m) for x in v]
    return [x / sum(e) for x in e]


# -- the losses by hand and the papers' identities --------------------------------------------------------------
def test_forward_loss_by_hand_and_identity_T_is_ce():
    for z, y in zip(LOGITS[:4], TARGET[:4]):
        p = softmax(z)
        want = -math.log(sum(p[i] * T3[i][y] for i in range(3)))  # -log (T^T p)_y
        assert forward_loss(_t([z]), torch.tensor([y]), _t(T3)).item() == pytest.approx(want, rel=1e-6)
        ce = -math.log(p[y])
        assert forward_loss(_t([z]), torch.tensor([y]), torch.eye(3)).item() == pytest.approx(ce, rel=1e-6)


def test_backward_loss_by_hand_and_unbiased():
    T = np.array(T3)
    T_inv = np.linalg.inv(T)
    for z in LOGITS[:4]:
        p = softmax(z)
        loss = [-math.log(pk) for pk in p]                       # l(p)_k = -log p_k
        got = [backward_loss(_t([z]), torch.tensor([yn]), _t(T_inv)).item() for yn in range(3)]
        for yn in range(3):                                      # (T^-1 l(p))_{y~}
            assert got[yn] == pytest.approx(sum(T_inv[yn, k] * loss[k] for k in range(3)), rel=1e-5)
        for y in range(3):  # Patrini Theorem 1: E_{y~ ~ T[y, :]} l<-(p, y~) = l(p)_y, the clean cross-entropy
            assert sum(T[y, yn] * got[yn] for yn in range(3)) == pytest.approx(loss[y], rel=1e-5)


def test_backward_unbiased_2x2_by_hand():
    # T = [[0.9, 0.1], [0.3, 0.7]], det 0.6, T^-1 = [[7/6, -1/6], [-1/2, 3/2]]; p = (0.8, 0.2)
    T_inv = [[7 / 6, -1 / 6], [-0.5, 1.5]]
    z = [math.log(0.8), math.log(0.2)]
    l0, l1 = -math.log(0.8), -math.log(0.2)
    b0 = backward_loss(_t([z]), torch.tensor([0]), _t(T_inv)).item()
    b1 = backward_loss(_t([z]), torch.tensor([1]), _t(T_inv)).item()
    assert b0 == pytest.approx(7 / 6 * l0 - 1 / 6 * l1, rel=1e-6, abs=1e-6)  # (float32 loss)
    assert b1 == pytest.approx(-0.5 * l0 + 1.5 * l1, rel=1e-6, abs=1e-6)
    assert 0.9 * b0 + 0.1 * b1 == pytest.approx(l0, rel=1e-6, abs=1e-6)   # clean y = 0
    assert 0.3 * b0 + 0.7 * b1 == pytest.approx(l1, rel=1e-6, abs=1e-6)   # clean y = 1


def test_reweighted_loss_by_hand():
    for z, y in zip(LOGITS[:4], TARGET[:4]):
        p = softmax(z)
        beta = p[y] / sum(p[i] * T3[i][y] for i in range(3))   # p_y / (T^T p)_y
        got = reweighted_loss(_t([z]), torch.tensor([y]), _t(T3)).item()
        assert got == pytest.approx(beta * -math.log(p[y]), rel=1e-6)
    # T = I: beta = 1, cross-entropy
    ce = reweighted_loss(_t(LOGITS), torch.tensor(TARGET), torch.eye(3))
    assert torch.allclose(ce.double(), torch.nn.functional.cross_entropy(_t(LOGITS), torch.tensor(TARGET),
                                                                         reduction="none"), rtol=1e-6)


# -- the official codes' numbers --------------------------------------------------------------------------------
def test_forward_backward_match_official_keras_losses():
    # giorgiop/loss-correction loss.py robust(...)(one-hot TARGET, softmax(LOGITS)), P = T3 (lc_driver.py); sample 5
    # exercises the clip of p to [1e-7, 1 - 1e-7]
    forward = [0.40722966187341914, 1.3332652146510053, 1.6729770871656948, 1.0986122886681096, 2.302581336143734]
    backward = [-0.4194029890571287, 1.6976112687933564, 2.7964920059884157, 1.0986122886681096, 22.65473670019646]
    crossentropy = [0.24131129665715703, 1.4535636497457376, 2.6238729583693674, 1.0986122886681096,
                    16.11809565095832]  # = robust('forward', I); the last one -log(1e-7)
    y = torch.tensor(TARGET)
    assert forward_loss(_t(LOGITS), y, _t(T3)).tolist() == pytest.approx(forward, rel=1e-5)
    assert backward_loss(_t(LOGITS), y, torch.linalg.inv(_t(T3))).tolist() == pytest.approx(backward, rel=1e-5)
    assert forward_loss(_t(LOGITS), y, torch.eye(3)).tolist() == pytest.approx(crossentropy, rel=1e-5)


def test_reweighting_phase_matches_official_t_revision():
    # xiaoboxia/T-Revision loss.py reweight_loss()(LOGITS, T3, TARGET) (= reweight_loss_v2), float64
    # (trev_loss_driver.py): loss and d loss / d logits (beta held fixed by its Variable(beta) wrapper)
    dlogits = [[-5.061954229466e-02, 4.138524577672e-02, 9.234296517941e-03],
               [3.393528341110e-02, 1.019472254366e-01, -1.358825088477e-01],
               [3.399228645711e-03, -7.167456111950e-02, 6.827533247379e-02],
               [6.666666666667e-02, 6.666666666667e-02, -1.333333333333e-01],
               [3.045948790259e-08, -3.045967505215e-08, 1.871495618472e-13]]
    z = _t(LOGITS, grad=True)
    loss = reweighted_loss(z, torch.tensor(TARGET), _t(T3)).mean()
    loss.backward()
    assert loss.item() == pytest.approx(0.7372277300956515, rel=1e-6)
    assert z.grad.tolist()[:4] == [pytest.approx(r, rel=1e-4, abs=1e-7) for r in dlogits[:4]]
    assert z.grad[4].abs().max().item() < 1e-6


def test_revision_phase_matches_official_t_revision():
    # T-Revision loss.py reweighting_revision_loss (its main.py's revision loss) called one sample at a time and
    # averaged (its loop adds the correction once per sample: sample i of a batch sees T + (i + 1) DT, 0.8284960...
    # on the whole batch; one sample per call it is the paper's risk with T + DT), T3 + DT, float64
    # (trev_loss_driver.py): loss, d/d logits and d/d DeltaT (beta not detached: the slack learns through it)
    dlogits = [[-4.699196348971e-02, 3.799108107992e-02, 9.000882409792e-03],
               [1.292202491811e-02, 6.369765593356e-02, -7.661968085167e-02],
               [-3.738212723137e-04, 7.378332825107e-02, -7.340950697876e-02],
               [4.267985884022e-02, 5.164720738562e-02, -9.432706622584e-02]]
    d_delta = [[-0.065770894606, -0.046880321959, -0.431210784673],
               [-0.014675470247, -0.077278459946, -0.846127406485],
               [-0.003274540026, -0.941444371639, -0.477047149215]]
    z, delta = _t(LOGITS, grad=True), _t(DT, grad=True)
    loss = reweighted_loss(z, torch.tensor(TARGET), _t(T3) + delta, detach=False).mean()
    loss.backward()
    assert loss.item() == pytest.approx(0.7507911531763798, rel=1e-6)
    assert loss.item() != pytest.approx(0.8284960442750379, rel=1e-3)  # not the official loop's accumulation
    assert z.grad.tolist()[:4] == [pytest.approx(r, rel=1e-4, abs=1e-7) for r in dlogits]
    assert delta.grad.tolist() == [pytest.approx(r, rel=1e-4) for r in d_delta]


# -- the anchor-point estimator ---------------------------------------------------------------------------------
def test_estimator_on_hand_made_matrix():
    # P1, 12 samples: numpy's 'higher' 97th percentile of a column is its largest value (ceil(0.97 * 11) = 11),
    # so the anchor of class i is the sample with the SECOND largest p_i: rows 1, 4, 7; the arg-max: rows 0, 3, 6
    assert anchor_transition(_t(P1), 97.0).tolist() == [P1[1], P1[4], P1[7]]
    assert anchor_transition(_t(P1), 100.0).tolist() == [P1[0], P1[3], P1[6]]
    # P2: class 1's anchor (row 0) holds column 0's top value 0.50, which the official codes have already
    # zeroed in place when they read that row: [0, 0.45, 0.05] / 0.5; the paper's reading keeps it
    assert anchor_transition(_t(P2), 97.0, "paper").tolist() == [P2[2], P2[0], P2[4]]
    assert anchor_transition(_t(P2), 97.0, "official").tolist() == _rows([P2[2], [0.0, 0.9, 0.1], P2[4]])


def test_estimator_matches_official_codes():
    # NoiseEstimator(filter_outlier=True / False).fit().predict() of giorgiop/loss-correction (lc_driver.py) and
    # tools.norm(tools.fit(...)) of xiaoboxia/T-Revision (trev_fit_driver.py) print the same numbers here
    p1_97 = [[0.8, 0.15, 0.05], [0.15, 0.75, 0.1], [0.1, 0.1, 0.8]]
    p1_max = [[0.9, 0.05, 0.05], [0.1, 0.85, 0.05], [0.05, 0.1, 0.85]]
    p2_max = [[0.5, 0.45, 0.05], [0.05, 0.9, 0.05], [0.1, 0.1, 0.8]]
    p3_97 = [[0.920004754455432, 0.07545874635613598, 0.00453649918843203],
             [0.08400357952557833, 0.9112382117472149, 0.00475820872720678],
             [0.00486196358497888, 0.06628580277841034, 0.9288522336366108]]
    p3_max = [[0.9534430358112657, 0.00791022968190443, 0.03864673450682992],
              [0.01692839967907253, 0.94333086831054, 0.03974073201038748],
              [0.00585369462528696, 0.06319204909888884, 0.9309542562758242]]
    for P, q, want in ((P1, 97, p1_97), (P1, 100, p1_max), (P2, 100, p2_max), (p3(), 97, p3_97), (p3(), 100, p3_max)):
        got = anchor_transition(_t(P), float(q)).tolist()
        assert got == [pytest.approx(r, rel=1e-12, abs=1e-15) for r in want], (q, want)
    # P2 at 97: NoiseEstimator (rows normalised) gives [[.45, .1, .45], [0, .9, .1], [.2, .05, .75]] = ours
    # (official variant, above); T-Revision's tools.norm divides by the row sums along the wrong axis (T / row_sum
    # broadcasts over columns) and prints [[.45, .2, .45], [0, .9, .05], [.2, .1, .75]] -- no longer
    # row-stochastic; it only matters when the in-place filtering zeroed an entry, as here
    assert anchor_transition(_t(P2), 97.0).tolist() == _rows([[0.45, 0.1, 0.45], [0.0, 0.9, 0.1], [0.2, 0.05, 0.75]])
    # tools.error(norm(fit(P1)), T3) = 0.10000000000000002: sum |T^ - T| / sum |T| = ||T^ - T||_1 / C
    assert estimation_error(_t(p1_97), _t(T3)) == pytest.approx(0.10000000000000002, rel=1e-12)


# -- the methods on real MNIST ----------------------------------------------------------------------------------
ADAM = dict(lr=1e-3, optimizer="adam", weight_decay=0.0, lr_schedule="constant", noise_rate=0.4)


def _cfg(data_root, method, **kw):
    return tiny_cfg(method, data_root, **{**ADAM, **kw})


@pytest.fixture(scope="module")
def data(data_root):
    return load_noisy_data(_cfg(data_root, "forward_t"))


def test_oracle_T_of_symmetric_noise_is_the_nominal_matrix(data, data_root):
    m = ForwardT(_cfg(data_root, "forward_t", t_source="oracle", warmup=1, epochs=2), data)
    r, C = 0.4, 10
    want = [[1 - r if i == j else r / (C - 1) for j in range(C)] for i in range(C)]
    assert m.true_T.tolist() == [pytest.approx(row, abs=1e-15) for row in want]
    first, second = m.step(), m.step()
    assert m.T.tolist() == [pytest.approx(row, abs=1e-15) for row in want]
    assert first["t_oracle"] == second["t_oracle"] == 1 and "t_error" not in first
    assert second["t_error"] == 0.0 and (first["phase"], second["phase"]) == (1, 2)


def test_estimate_phase_and_checkpoint(data, data_root):
    m = BackwardT(_cfg(data_root, "backward_t", warmup=1, epochs=2), data)
    m.step()
    assert m.T is None and m.state_dict()["method_state"]["T"].numel() == 0
    h = m.step()
    assert h["phase"] == 2 and h["t_oracle"] == 0
    assert torch.allclose(m.T.sum(1), torch.ones(10, dtype=torch.float64))
    assert h["t_error"] == pytest.approx(estimation_error(m.T, m.true_T))
    assert torch.equal(m.state_dict()["method_state"]["T"], m.T.cpu())
    assert torch.allclose(m.T_inv @ m.T, torch.eye(10, dtype=torch.float64), atol=1e-8)


def test_check_config():
    hp = ForwardT.Hyper(warmup=0, epochs=10)
    assert ForwardT.check_config(hp)                               # an estimate needs a warm-up
    assert not ForwardT.check_config(ForwardT.Hyper(warmup=0, epochs=10, t_source="oracle"))
    assert TRevision.check_config(TRevision.Hyper(warmup=5, revision_start=3, epochs=10))
    assert not TRevision.check_config(TRevision.Hyper(warmup=2, revision_start=5, epochs=10))


@pytest.mark.parametrize("cls,name,kw", [
    (ForwardT, "forward_t", dict(warmup=2)),             # saved at the boundary, before the estimate
    (ForwardT, "forward_t", dict(warmup=1)),             # saved after the estimate and the re-initialisation
    (BackwardT, "backward_t", dict(warmup=1, retrain=False)),
    (TRevision, "t_revision", dict(warmup=1, revision_start=2)),  # saved at the reweighting -> revision boundary
])
def test_exact_resume(cls, name, kw, data, data_root, tmp_path):
    straight = assert_exact_resume(lambda: cls(_cfg(data_root, name, **kw), data), tmp_path / "c.pt")
    assert straight.T is not None


@pytest.fixture(scope="module")
def revised(data, data_root, tmp_path_factory):
    """t_revision 6 epochs (1 warm-up, 1 reweighting, 4 revision), checked against 3 + save + load + 3: saved
    inside the revision phase (Delta T and its Adam in the checkpoint)."""
    cfg = _cfg(data_root, "t_revision", warmup=1, revision_start=2, epochs=6, lr_revision=1e-5)
    return assert_exact_resume(lambda: TRevision(cfg, data), tmp_path_factory.mktemp("trev") / "c.pt", epochs=6)


def test_t_revision_phases_and_slack(revised):
    m = revised
    assert [h["phase"] for h in m.history] == [1, 2, 3, 3, 3, 3]
    assert m.delta.abs().max().item() > 0                          # the slack moved in the revision phase
    assert m.history[-1]["t_error"] == pytest.approx(estimation_error(m.T + m.delta.detach().double(), m.true_T))
    assert m.history[1]["t_error"] == pytest.approx(estimation_error(m.T, m.true_T))
    assert m.history[-1]["lr"] == 1e-5


def test_it_learns(revised, data, data_root):
    """Above chance (10 classes) on 1024 images at 40% symmetric noise: t_revision (estimated T), forward_t with
    the estimated T (continued from the warm-up) and, with the true T from the first epoch (the paper's "known T"
    rows: t_source oracle, warmup 0), both corrections. (backward_t with this tiny warm-up's T, t_error ~1, falls
    to ~0.42 by epoch 4: the paper's backward correction is its weakest on an ill-estimated T.)"""
    assert revised.history[-1]["test_acc"] > 0.5
    runs = ((ForwardT, "forward_t", dict(warmup=2, retrain=False)), (ForwardT, "forward_t", dict(t_source="oracle",
            warmup=0)), (BackwardT, "backward_t", dict(t_source="oracle", warmup=0)))
    for cls, name, kw in runs:
        m = cls(_cfg(data_root, name, epochs=4, **kw), data)
        for _ in range(4):
            m.step()
        assert m.history[-1]["test_acc"] > 0.55, (name, kw)
