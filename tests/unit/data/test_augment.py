"""Tests for tune_lnl.data.augment against independent references (torchvision, PIL)."""

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from tune_lnl.data.augment import (
    _homography,
    _jitter_params,
    _perspective_params,
    color_jitter_gray,
    mnist_augment,
    random_perspective,
)

CPU = torch.device("cpu")


def _gen(seed: int, device=CPU) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _images(b: int, seed: int = 123, h: int = 28, w: int = 28) -> torch.Tensor:
    return torch.rand(b, 1, h, w, generator=_gen(seed))


def _mnist_like(b: int, seed: int = 123) -> torch.Tensor:
    """uint8-valued images with an all-zero 4-pixel frame, like MNIST digits."""
    x = (_images(b, seed) * 255).round() / 255
    frame = torch.zeros(28, 28, dtype=torch.bool)
    frame[:4], frame[-4:], frame[:, :4], frame[:, -4:] = True, True, True, True
    return x.masked_fill(frame, 0.0)


def _to_pil(img: torch.Tensor) -> Image.Image:
    return Image.fromarray((img[0] * 255).round().to(torch.uint8).numpy(), "L")


def _from_pil(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img)).float().div(255).unsqueeze(0)


# ---------------------------------------------------------------- perspective

def test_endpoint_ranges_match_torchvision_get_params():
    # distortion 0.5 on 28x28: half = 14, max offset int(0.5 * 14) = 7.
    _, start, end = _perspective_params(4000, 28, 28, 0.5, 1.0, _gen(0), CPU)
    assert start.tolist() == [[0, 0], [27, 0], [27, 27], [0, 27]]
    e = end.long()
    assert torch.equal(end, e.double())  # integer-valued
    tl, tr, br, bl = e.unbind(1)
    for coord, lo, hi in [
        (tl[:, 0], 0, 7), (tl[:, 1], 0, 7),
        (tr[:, 0], 20, 27), (tr[:, 1], 0, 7),
        (br[:, 0], 20, 27), (br[:, 1], 20, 27),
        (bl[:, 0], 0, 7), (bl[:, 1], 20, 27),
    ]:
        # every value in the inclusive range occurs, nothing outside it
        assert sorted(coord.unique().tolist()) == list(range(lo, hi + 1))
    # non-square image: x and y use their own half sizes (W//2 = 10 -> 5, H//2 = 7 -> 3)
    _, start, end = _perspective_params(4000, 15, 20, 0.5, 1.0, _gen(1), CPU)
    assert start.tolist() == [[0, 0], [19, 0], [19, 14], [0, 14]]
    assert sorted(end[:, 0, 0].unique().tolist()) == list(range(0, 6))
    assert sorted(end[:, 2, 1].unique().tolist()) == list(range(11, 15))


def test_homography_maps_endpoints_to_startpoints():
    _, start, end = _perspective_params(64, 28, 28, 0.5, 1.0, _gen(1), CPU)
    m = _homography(start, end)
    assert m.shape == (64, 3, 3)
    ends_h = torch.cat([end, torch.ones(64, 4, 1, dtype=end.dtype)], dim=-1)  # [B, 4, 3]
    mapped = ends_h @ m.transpose(-1, -2)
    mapped = mapped[..., :2] / mapped[..., 2:]
    torch.testing.assert_close(mapped, start.expand_as(mapped), atol=1e-9, rtol=0)
    # hand-checked case: end points = start points shifted by (+2, +3) -> pure translation
    start1 = torch.tensor([[0.0, 0], [27, 0], [27, 27], [0, 27]], dtype=torch.float64)
    m1 = _homography(start1, (start1 + torch.tensor([2.0, 3.0], dtype=torch.float64))[None])
    expected = torch.tensor([[1.0, 0, -2], [0, 1, -3], [0, 0, 1]], dtype=torch.float64)
    torch.testing.assert_close(m1[0], expected, atol=1e-12, rtol=0)


def test_warp_matches_torchvision_tensor_perspective():
    """Same end points fed to torchvision's per-sample tensor perspective.

    torchvision solves for the coefficients in float64 by least squares, rounds
    them to float32 and builds its grid in float32; we solve in float64 and
    build the grid in float64 before casting.  The resulting grid coordinates
    differ by ~1e-6 normalised units, i.e. a few 1e-6 in pixel values (measured
    max 7.5e-6), so 5e-5 is a tight but honest bound; any convention error
    (half-pixel shift, swapped x/y, inverse homography) gives errors ~0.1-1.
    fill=None is torchvision's plain grid_sample with zero padding.
    """
    b = 64
    x = _images(b)
    apply, start, end = _perspective_params(b, 28, 28, 0.5, 1.0, _gen(7), CPU)
    out = random_perspective(x, _gen(7), distortion=0.5, p=1.0)
    assert apply.all()
    sp = start.long().tolist()
    ref = torch.stack(
        [TF.perspective(x[i], sp, end[i].long().tolist(), fill=None) for i in range(b)]
    )
    assert (out - ref).abs().max().item() < 5e-5
    assert (out - x).abs().mean().item() > 0.05  # the warp did something


def test_warp_matches_pil_pipeline_on_mnist_like_images():
    """The original pipeline runs PIL on uint8 'L' images.

    PIL rounds to uint8 (and treats the outermost half pixel of the source with
    edge replication rather than zero padding); on images with a black frame,
    as MNIST digits have, the only difference left is rounding: <= 1 grey level.
    """
    b = 64
    x = _mnist_like(b)
    _, start, end = _perspective_params(b, 28, 28, 0.5, 1.0, _gen(3), CPU)
    out = random_perspective(x, _gen(3), p=1.0)
    sp = start.long().tolist()
    ref = torch.stack(
        [_from_pil(TF.perspective(_to_pil(x[i]), sp, end[i].long().tolist(), fill=0)) for i in range(b)]
    )
    assert (out - ref).abs().max().item() <= 1.0 / 255 + 1e-6


def test_p0_is_identity_and_p_half_changes_half():
    x = _images(2000)
    assert torch.equal(random_perspective(x, _gen(0), p=0.0), x)

    apply, _, _ = _perspective_params(2000, 28, 28, 0.5, 0.5, _gen(5), CPU)
    out = random_perspective(x, _gen(5), p=0.5)
    changed = (out != x).flatten(1).any(dim=1)
    # unselected samples are bitwise unchanged, selected ones are changed
    assert torch.equal(changed, apply)
    assert abs(changed.float().mean().item() - 0.5) < 0.05


# --------------------------------------------------------------------- jitter

def test_brightness_factor_range_on_constant_images():
    # On a constant image contrast is a no-op (mean == value), so out = b * value.
    x = torch.full((2000, 1, 28, 28), 0.5)
    out = color_jitter_gray(x, _gen(0), brightness=0.2, contrast=0.75)
    b = out[:, 0, 0, 0] / 0.5
    assert torch.allclose(out, b.view(-1, 1, 1, 1) * 0.5)  # still constant
    assert b.min() >= 0.8 - 1e-5 and b.max() <= 1.2 + 1e-5
    assert b.min() < 0.81 and b.max() > 1.19  # covers the range
    assert abs(b.mean().item() - 1.0) < 0.01


def test_contrast_factor_range_on_two_level_images():
    # half 0.25, half 0.75, mean 0.5: out_hi - out_lo = 0.5 * c (no clamping for c <= 1.75)
    x = torch.full((2000, 1, 28, 28), 0.25)
    x[..., 14:] = 0.75
    out = color_jitter_gray(x, _gen(0), brightness=0.0, contrast=0.75)
    c = (out[:, 0, 0, -1] - out[:, 0, 0, 0]) / 0.5
    assert c.min() >= 0.25 - 1e-5 and c.max() <= 1.75 + 1e-5
    assert c.min() < 0.27 and c.max() > 1.73
    assert abs(c.mean().item() - 1.0) < 0.03
    torch.testing.assert_close(out.mean(dim=(1, 2, 3)), torch.full((2000,), 0.5))


def test_jitter_matches_torchvision_functional_per_sample():
    """Per-sample reference with torchvision's tensor adjust_brightness/contrast
    applied in the drawn order; exercises clamping and both orders."""
    b = 256
    x = _images(b) ** 3 * 1.5  # skewed, some values clamp under brightness > 1
    x = x.clamp(0, 1)
    bf, cf, brightness_first = _jitter_params(b, 0.2, 0.75, _gen(11), CPU)
    out = color_jitter_gray(x, _gen(11))
    assert 0.4 < brightness_first.float().mean() < 0.6
    def reference(order_flipped: bool) -> torch.Tensor:
        refs = []
        for i in range(b):
            img = x[i]
            ops = [lambda t: TF.adjust_brightness(t, bf[i].item()), lambda t: TF.adjust_contrast(t, cf[i].item())]  # noqa: B023
            for op in ops if bool(brightness_first[i]) != order_flipped else ops[::-1]:
                img = op(img)
            refs.append(img)
        return torch.stack(refs)

    torch.testing.assert_close(out, reference(False), atol=1e-6, rtol=0)
    # with clamping the order matters, so a wrong order would be detected
    assert (out - reference(True)).abs().amax(dim=(1, 2, 3)).max() > 1e-2


def test_jitter_matches_pil_enhance_within_rounding():
    """The original ColorJitter on uint8 'L' PIL images, same factors/order.

    PIL truncates to uint8 after each op (error in [0, 1) grey level) and
    rounds the contrast mean to an integer grey level; the first op's error is
    amplified by the second factor (<= 1.75), so the worst case is ~3.1 grey
    levels; on average PIL is ~1 grey level darker (truncation bias).
    """
    b = 128
    x = _mnist_like(b)
    bf, cf, brightness_first = _jitter_params(b, 0.2, 0.75, _gen(4), CPU)
    out = color_jitter_gray(x, _gen(4))
    refs = []
    for i in range(b):
        img = _to_pil(x[i])
        ops = [lambda t: TF.adjust_brightness(t, bf[i].item()), lambda t: TF.adjust_contrast(t, cf[i].item())]  # noqa: B023
        for op in ops if brightness_first[i] else ops[::-1]:
            img = op(img)
        # saturation and hue are no-ops on 'L' images in PIL/torchvision
        img = TF.adjust_hue(TF.adjust_saturation(img, 0.8), 0.04)
        refs.append(_from_pil(img))
    diff = (out - torch.stack(refs)).abs()
    assert diff.max().item() <= 3.2 / 255
    assert diff.mean().item() < 1.2 / 255  # ~1 level systematic: two truncations


def test_jitter_output_in_unit_interval_and_identity_when_disabled():
    x = _images(512)
    out = color_jitter_gray(x, _gen(2))
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not torch.equal(out, x)
    assert torch.equal(color_jitter_gray(x, _gen(2), brightness=0.0, contrast=0.0), x)


# -------------------------------------------------- reproducibility and shapes

def test_reproducible_and_uses_only_the_given_generator():
    x = _images(128)
    global_state = torch.get_rng_state()
    a = mnist_augment(x, _gen(42))
    b = mnist_augment(x, _gen(42))
    c = mnist_augment(x, _gen(43))
    assert torch.equal(torch.get_rng_state(), global_state)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def _devices():
    devs = [CPU]
    if torch.cuda.is_available():
        devs.append(torch.device("cuda"))
    return devs


@pytest.mark.parametrize("device", _devices(), ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch", [0, 1, 5])
def test_shape_dtype_device_preserved(device, dtype, batch):
    x = torch.rand(batch, 1, 28, 28, dtype=dtype, device=device)
    for fn in (random_perspective, color_jitter_gray, mnist_augment):
        y = fn(x, _gen(0, device))
        assert y.shape == x.shape and y.dtype == dtype and y.device == x.device
        if batch:
            assert y.min() >= 0 and y.max() <= 1


@pytest.mark.parametrize("name", ["perspective_jitter", "crop_flip"])
def test_epoch_draws_applied_in_slices_give_the_one_call_images(name):
    """How DeviceData uses an augmentation: one draw for the epoch, each batch augmented with its
    rows. Each image must depend only on its own row, so slices give what one call over the whole
    batch gives from the same generator state (the per-batch protocol ``f(x, generator)``)."""
    from tune_lnl.data.augment import AUGMENTS

    aug = AUGMENTS[name]
    x = (_mnist_like(300) if name == "perspective_jitter"
         else _images(300, h=32, w=32).expand(300, 3, 32, 32).contiguous())
    whole = aug(x.clone(), _gen(9))
    params = aug.draw(300, tuple(x.shape[1:]), _gen(9), CPU)
    assert all(v.shape[0] == 300 for v in params.values())
    parts = [aug.apply(x[s:s + 128].clone(), {k: v[s:s + 128] for k, v in params.items()}) for s in range(0, 300, 128)]
    torch.testing.assert_close(torch.cat(parts), whole, rtol=0, atol=1e-6)
    assert not torch.equal(whole, x)  # it did augment


def test_device_batches_augmented_in_chunks_equal_batch_by_batch():
    """DeviceData gathers and augments several batches at once (tune_lnl.data.device.CHUNK):
    the batches must be what one epoch draw applied batch by batch gives -- same indices (slices
    of the epoch's permutation, a last single-sample batch dropped), same images, same labels."""
    from types import SimpleNamespace

    from tune_lnl.data import device as device_mod
    from tune_lnl.data.device import DeviceData

    n, bs = 8 * 128 + 1, 128  # more than one chunk; the last batch holds one sample
    x8 = (_mnist_like(n) * 255).round().to(torch.uint8)
    noisy = torch.randint(0, 10, (n,), generator=_gen(1))
    empty = torch.empty((0, 1, 28, 28), dtype=torch.uint8)
    data = SimpleNamespace(train_x=x8, train_noisy=noisy, train_clean=noisy.clone(), val_x=empty,
                           val_noisy=torch.empty(0, dtype=torch.long), val_clean=torch.empty(0, dtype=torch.long),
                           test_x=empty, test_y=torch.empty(0, dtype=torch.long), cval_x=None, cval_y=None,
                           intact_index=None, num_classes=10, image_shape=(1, 28, 28), info={}, augment=mnist_augment)
    dd = DeviceData(data, CPU)
    assert n > device_mod.CHUNK
    got = list(dd.batches(bs, _gen(3), mnist_augment))

    g = _gen(3)
    perm = torch.randperm(n, generator=g)
    plan = mnist_augment.draw(n, (1, 28, 28), g, CPU)
    want = []
    for s in range(0, n, bs):
        idx = perm[s:s + bs]
        if idx.numel() > 1:
            x = mnist_augment.apply(x8[idx].float() / 255, {k: v[s:s + bs] for k, v in plan.items()})
            want.append((idx, x, noisy[idx]))
    assert len(got) == len(want) == 8
    for (i1, x1, y1), (i2, x2, y2) in zip(got, want):
        assert torch.equal(i1, i2) and torch.equal(y1, y2)
        torch.testing.assert_close(x1, x2, rtol=0, atol=1e-6)
