"""The strong view (tune_lnl.data.randaugment): each operation against torchvision's functional transforms
(independent implementations) or a hand computation, and the batching invariants."""
import pytest
import torch
import torchvision.transforms.functional as TF

from tune_lnl.data.augment import AUGMENTS, resolve_augment
from tune_lnl.data.randaugment import OPS, RandAugment


def _one(op: str, x, v: float, s: float = 1.0, on: bool = True, cutout: float = 0.0):
    """``x`` through a single slot doing ``op`` at magnitude ``v`` and sign ``s`` (no Cutout unless asked)."""
    n = x.shape[0]
    params = {"op": torch.full((n, 1), OPS.index(op)), "on": torch.full((n, 1), on),
              "mag": torch.full((n, 1), v), "sign": torch.full((n, 1), s),
              "cy": torch.zeros(n, dtype=torch.long), "cx": torch.zeros(n, dtype=torch.long)}
    return RandAugment(n=1, cutout=cutout).apply(x.clone(), params)


def _images(c=1, n=3, h=12, w=12, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("c", [1, 3])
def test_colour_ops_match_torchvision(c):
    x = _images(c)
    assert torch.allclose(_one("brightness", x, 0.5, -1.0), TF.adjust_brightness(x, 1 - 0.45), atol=1e-6)
    assert torch.allclose(_one("contrast", x, 0.4), TF.adjust_contrast(x, 1.36), atol=1e-5)
    assert torch.allclose(_one("solarize", x, 0.3), TF.solarize(x, 0.7), atol=1e-6)
    assert torch.allclose(_one("autocontrast", x, 1.0), TF.autocontrast(x), atol=1e-6)
    if c == 3:
        assert torch.allclose(_one("color", x, 0.2), TF.adjust_saturation(x, 1.18), atol=1e-5)
    u8 = (x * 255).round().to(torch.uint8)
    # magnitude 0.5: 4 * 0.5 = 2 of the 8 bits dropped
    assert torch.allclose(_one("posterize", u8.float() / 255, 0.5), TF.posterize(u8, 6).float() / 255, atol=1e-6)


def test_equalize_and_cutout_by_hand():
    x = torch.tensor([[[[0.0, 0.0, 0.5, 1.0]]]])
    # cumulative shares 2/4, 3/4, 4/4 at the three levels; the lowest level present maps to 0: (cdf - 2) / (4 - 2)
    assert _one("equalize", x, 1.0).flatten().tolist() == pytest.approx([0.0, 0.0, 0.5, 1.0])
    img = torch.zeros(1, 1, 6, 6)
    params = {"op": torch.zeros(1, 1, dtype=torch.long), "on": torch.ones(1, 1, dtype=torch.bool),
              "mag": torch.ones(1, 1), "sign": torch.ones(1, 1), "cy": torch.tensor([0]), "cx": torch.tensor([5])}
    out = RandAugment(n=1, cutout=0.5).apply(img, params)[0, 0]
    # a 3 x 3 square centred at (0, 5), clipped at the border: rows -1..1, columns 4..6 -> rows 0-1, columns 4-5
    expected = torch.zeros(6, 6)
    expected[0:2, 4:6] = 0.5
    assert torch.equal(out, expected)


def test_translate_moves_the_image_by_a_third_of_its_width():
    x = torch.zeros(1, 1, 10, 10)
    x[0, 0, 4, 6] = 1.0
    # magnitude 1, sign +: 0.3 * 10 = 3 pixels to the left
    out = _one("translate_x", x, 1.0)
    assert float(out[0, 0, 4, 3]) == pytest.approx(1.0, abs=1e-5) and float(out.sum()) == pytest.approx(1.0, abs=1e-5)
    out = _one("translate_y", x, 1.0, -1.0)
    assert float(out[0, 0, 7, 6]) == pytest.approx(1.0, abs=1e-5)


def test_rotation_keeps_the_centre_and_the_mass_of_a_centred_disc():
    yy, xx = torch.meshgrid(torch.arange(15.0), torch.arange(15.0), indexing="ij")
    disc = (((yy - 7) ** 2 + (xx - 7) ** 2) <= 16).float().view(1, 1, 15, 15)
    out = _one("rotate", disc, 1.0)
    assert float(out[0, 0, 7, 7]) == pytest.approx(1.0)
    assert float(out.sum()) == pytest.approx(float(disc.sum()), rel=0.05)


def test_off_is_identity_and_rows_are_independent():
    x = _images(3, n=8)
    assert torch.equal(_one("rotate", x, 1.0, on=False), x)
    aug = AUGMENTS["randaugment"]
    params = aug.draw(8, (3, 12, 12), torch.Generator().manual_seed(3), torch.device("cpu"))
    whole = aug.apply(x.clone(), params)
    halves = [aug.apply(x[a:b].clone(), {k: v[a:b] for k, v in params.items()}) for a, b in ((0, 3), (3, 8))]
    assert torch.allclose(whole, torch.cat(halves))
    assert whole.min() >= 0 and whole.max() <= 1 and not torch.equal(whole, x)


def test_named_in_augment():
    assert resolve_augment("randaugment", None) is AUGMENTS["randaugment"]
