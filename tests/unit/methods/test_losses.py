"""MAE, GCE and IMAE against hand computations and the IMAE paper's identities (Eq. 18-22)."""
import math

import pytest
import torch

from tune_lnl.methods.losses import gce, imae, mae


def _softmax(row):
    m = max(row)
    e = [math.exp(v - m) for v in row]
    return [v / sum(e) for v in e]


LOGITS = torch.tensor([[2.0, -1.0, 0.5, 0.0], [0.1, 0.2, 0.3, -3.0], [-2.0, 4.0, 1.0, 1.0]], dtype=torch.float64)
LABELS = torch.tensor([0, 3, 2])


def test_mae_and_gce_values_by_hand():
    for i, y in enumerate(LABELS.tolist()):
        p = _softmax(LOGITS[i].tolist())
        assert mae(LOGITS, LABELS)[i].item() == pytest.approx(2 * (1 - p[y]))
        assert gce(LOGITS, LABELS, q=0.7)[i].item() == pytest.approx((1 - p[y] ** 0.7) / 0.7)


def test_gce_gradient_by_hand():
    z = LOGITS.clone().requires_grad_(True)
    gce(z, LABELS, q=0.5).sum().backward()
    for i, y in enumerate(LABELS.tolist()):
        p = _softmax(LOGITS[i].tolist())
        expect = [-(p[y] ** 0.5) * ((1.0 if j == y else 0.0) - p[j]) for j in range(4)]
        assert z.grad[i].tolist() == pytest.approx(expect)


@pytest.mark.parametrize("T", [0.5, 8.0])
def test_imae_forward_is_mae_and_gradient_norm_is_eq21(T):
    z = LOGITS.clone().requires_grad_(True)
    out = imae(z, LABELS, T)
    assert torch.allclose(out, mae(LOGITS, LABELS))
    out.sum().backward()
    for i, y in enumerate(LABELS.tolist()):
        p_y = _softmax(LOGITS[i].tolist())[y]
        assert z.grad[i].abs().sum().item() == pytest.approx(math.exp(T * p_y * (1 - p_y)))  # Eq. 21-22


def test_imae_gradient_direction_is_maes():
    z_mae = LOGITS.clone().requires_grad_(True)
    mae(z_mae, LABELS).sum().backward()  # Eq. 18 by autograd
    z = LOGITS.clone().requires_grad_(True)
    imae(z, LABELS, 8.0).sum().backward()
    cos = torch.nn.functional.cosine_similarity(z.grad, z_mae.grad, dim=1)
    assert torch.allclose(cos, torch.ones(3, dtype=torch.float64))


def test_imae_backward_scales_with_upstream_gradient():
    z = LOGITS.clone().requires_grad_(True)
    (imae(z, LABELS, 2.0) * torch.tensor([1.0, 0.0, 3.0], dtype=torch.float64)).sum().backward()
    z1 = LOGITS.clone().requires_grad_(True)
    imae(z1, LABELS, 2.0).sum().backward()
    assert torch.allclose(z.grad, z1.grad * torch.tensor([[1.0], [0.0], [3.0]], dtype=torch.float64))


@pytest.mark.parametrize("big", [30.0, 80.0, 200.0])
def test_imae_stable_when_p_y_is_0_or_1(big):
    z = torch.tensor([[big, 0.0, 0.0], [-big, 0.0, 1.0]], requires_grad=True)  # p_y ~ 1 and ~ 0
    labels = torch.tensor([0, 0])
    imae(z, labels, 8.0).sum().backward()
    assert torch.isfinite(z.grad).all()
    # weight -> exp(0) = 1 at both ends; the direction keeps unit L1 norm
    assert z.grad.abs().sum(1).tolist() == pytest.approx([1.0, 1.0], abs=1e-6)
    assert z.grad[0, 0].item() == pytest.approx(-0.5) and z.grad[1, 0].item() == pytest.approx(-0.5)


@pytest.mark.parametrize("class_mean", [False, True])
@pytest.mark.parametrize("beta", [0.0, 0.1, 0.8])
def test_pencil_lc_le_is_lc_plus_beta_le(beta, class_mean):
    """The fused PENCIL term used in training equals the separate lc + beta * le, value and
    gradient (the same expression regrouped: sum_j p_j ((1 - beta) log p_j - log y_d_j))."""
    from tune_lnl.methods.losses import pencil_lc, pencil_lc_le, pencil_le
    g = torch.Generator().manual_seed(1)
    z = torch.randn(16, 7, generator=g, dtype=torch.float64, requires_grad=True)
    yt = 5 * torch.randn(16, 7, generator=g, dtype=torch.float64)
    fused = pencil_lc_le(z, torch.log_softmax(yt, 1), beta, class_mean)
    sep = pencil_lc(z, yt, class_mean) + beta * pencil_le(z, class_mean)
    torch.testing.assert_close(fused, sep, rtol=1e-12, atol=1e-12)
    (g1,) = torch.autograd.grad(fused.sum(), z)
    (g2,) = torch.autograd.grad(sep.sum(), z)
    torch.testing.assert_close(g1, g2, rtol=1e-10, atol=1e-12)
