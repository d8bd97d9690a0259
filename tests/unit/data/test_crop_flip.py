"""random_crop_flip / center_crop / cifar10_augment against torchvision.transforms.functional."""
import pytest
import torch
import torchvision.transforms.functional as TF

from tune_lnl.data.augment import _crop_flip_params, center_crop, cifar10_augment, random_crop_flip

CPU = torch.device("cpu")


def _gen(seed: int, device=CPU) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _reference(x, top, left, flipped, size, padding):
    """Per sample: zero-pad, crop at the drawn offsets, mirror when drawn (torchvision)."""
    th, tw = (size, size) if isinstance(size, int) else size
    out = []
    for b in range(x.shape[0]):
        img = TF.pad(x[b], [padding], fill=0) if padding else x[b]
        img = TF.crop(img, int(top[b]), int(left[b]), th, tw)
        out.append(TF.hflip(img) if flipped[b] else img)
    return torch.stack(out)


@pytest.mark.parametrize("shape,size,padding", [
    ((64, 3, 32, 32), 32, 4),        # the CIFAR setting
    ((64, 2, 11, 9), (7, 5), 2),     # non-square image and crop, crop smaller than the image
    ((32, 1, 8, 8), 8, 0),           # no padding, full size: only flips
])
def test_matches_torchvision_per_sample(shape, size, padding):
    x = torch.rand(*shape, generator=_gen(1))
    b, _, h, w = shape
    top, left, flipped = _crop_flip_params(b, h, w, size, padding, True, _gen(7), CPU)
    out = random_crop_flip(x, _gen(7), size, padding=padding)
    assert torch.equal(out, _reference(x, top, left, flipped, size, padding))
    assert flipped.any() and (~flipped).any()


def test_flip_false_never_mirrors_and_uint8_works():
    x = torch.randint(0, 256, (50, 3, 32, 32), dtype=torch.uint8, generator=_gen(2))
    top, left, flipped = _crop_flip_params(50, 32, 32, 32, 4, False, _gen(3), CPU)
    assert not flipped.any()
    out = random_crop_flip(x, _gen(3), 32, padding=4, flip=False)
    assert out.dtype == torch.uint8
    assert torch.equal(out, _reference(x, top, left, flipped, 32, 4))
    # identity when there is nothing random left
    assert torch.equal(random_crop_flip(x, _gen(3), 32, padding=0, flip=False), x)


def test_offsets_cover_full_range_uniformly_and_flip_half():
    n, padding = 9000, 4
    top, left, flipped = _crop_flip_params(n, 32, 32, 32, padding, True, _gen(0), CPU)
    for off in (top, left):
        counts = torch.bincount(off, minlength=2 * padding + 1)
        assert counts.numel() == 2 * padding + 1  # nothing beyond 2 * padding
        assert off.min() == 0 and off.max() == 2 * padding
        assert ((counts.float() / n - 1 / 9).abs() < 0.02).all()  # ~1/9 each (sd ~0.0033)
    assert abs(flipped.float().mean().item() - 0.5) < 0.03
    assert not torch.equal(top, left)  # independent draws


def test_crop_is_a_shift_of_a_coordinate_image():
    """Independent of torchvision: pixel values encode their source coordinates."""
    r, c = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    coord = (1000 + r * 100 + c).expand(200, 1, 32, 32)  # > 0 everywhere, 0 means padding
    top, left, flipped = _crop_flip_params(200, 32, 32, 32, 4, True, _gen(5), CPU)
    out = random_crop_flip(coord, _gen(5), 32, padding=4)
    for b in range(0, 200, 17):
        i, j = 10, 3  # an output pixel
        src_r = int(top[b]) + i - 4
        src_c = int(left[b]) + (31 - j if flipped[b] else j) - 4
        inside = 0 <= src_r < 32 and 0 <= src_c < 32
        expected = 1000 + src_r * 100 + src_c if inside else 0.0
        assert out[b, 0, i, j].item() == expected


def test_deterministic_given_generator_and_global_rng_untouched():
    x = torch.rand(128, 3, 32, 32, generator=_gen(9))
    state = torch.get_rng_state()
    a = cifar10_augment(x, _gen(42))
    b = cifar10_augment(x, _gen(42))
    c = cifar10_augment(x, _gen(43))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a, random_crop_flip(x, _gen(42), 32, padding=4))
    # the generator advances: two calls in a row differ
    g = _gen(42)
    assert not torch.equal(cifar10_augment(x, g), cifar10_augment(x, g))


@pytest.mark.parametrize("hw,size", [((32, 32), 28), ((32, 32), 32), ((11, 9), (6, 4)),
                                     ((10, 10), 7), ((9, 9), 4), ((8, 8), 11), ((7, 6), (8, 9))])
def test_center_crop_matches_torchvision(hw, size):
    x = torch.rand(5, 3, *hw, generator=_gen(4))
    assert torch.equal(center_crop(x, size), TF.center_crop(x, [size] * 2 if isinstance(size, int) else list(size)))


def test_too_large_crop_raises():
    with pytest.raises(ValueError):
        random_crop_flip(torch.zeros(2, 3, 8, 8), _gen(0), 11, padding=1)


def _devices():
    return [CPU] + ([torch.device("cuda")] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", _devices(), ids=str)
@pytest.mark.parametrize("batch", [0, 1, 5])
def test_shape_dtype_device(device, batch):
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = cifar10_augment(x, _gen(0, device))
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
    assert random_crop_flip(x, _gen(0, device), (24, 20), padding=2).shape == (batch, 3, 24, 20)
