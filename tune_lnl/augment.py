"""Batched, on-device MNIST data augmentation.

Equivalent in distribution to the per-sample torchvision/PIL pipeline applied to
28x28 grayscale ('L' mode) images::

    transforms.Compose([
        transforms.RandomPerspective(distortion_scale=0.5, p=0.5),
        transforms.ColorJitter(brightness=0.2, contrast=0.75, saturation=0.25, hue=0.04),
    ])

but operating on a whole float batch ``[B, 1, H, W]`` in ``[0, 1]`` at once, on
whatever device the batch lives on, with no per-sample Python loops and no PIL.
Every random draw comes from the caller's ``torch.Generator`` (never the global
RNG), so the same generator state gives the same output.

Known (small) differences to the PIL pipeline: PIL works on uint8, rounds the
warped pixels, truncates after each ImageEnhance op (so PIL's jitter output is
on average ~1 grey level darker) and rounds the contrast mean to an integer
grey level; here everything stays in float.  The warp uses ``grid_sample`` with
zero padding, i.e. torchvision's tensor ``perspective`` with ``fill=None``
(with ``fill=0`` torchvision's tensor path additionally multiplies border
pixels by a resampled validity mask).  PIL's bilinear resampling replicates the
outermost half pixel of the source instead of fading it to zero; for MNIST,
whose digits sit inside a black frame, this makes no difference (the tests
check agreement with PIL to within one grey level).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["random_perspective", "color_jitter_gray", "mnist_augment"]


# ----------------------------------------------------------------------------
# Random perspective
# ----------------------------------------------------------------------------

def _perspective_params(
    batch: int,
    height: int,
    width: int,
    distortion: float,
    p: float,
    generator: torch.Generator,
    device: torch.device,
) -> tuple[Tensor, Tensor, Tensor]:
    """Draw per-sample RandomPerspective parameters.

    Returns ``(apply, start, end)``:

    * ``apply``: bool ``[B]``, True where the sample is warped (prob ``p``);
    * ``start``: float64 ``[4, 2]`` image corners (x, y) in the order
      top-left, top-right, bottom-right, bottom-left;
    * ``end``: float64 ``[B, 4, 2]`` integer-valued moved corners.

    Ranges follow torchvision's ``RandomPerspective.get_params``: with
    ``dx = int(distortion * (W // 2))`` and ``dy = int(distortion * (H // 2))``
    every corner moves inward by an integer offset uniform on ``{0, ..., dx}``
    horizontally and ``{0, ..., dy}`` vertically, e.g. the top-right x lies in
    ``{W-1-dx, ..., W-1}``.  The number and order of draws does not depend on
    ``p`` or on which samples are selected.
    """
    dx = int(distortion * (width // 2))
    dy = int(distortion * (height // 2))
    apply = torch.rand(batch, generator=generator, device=device) < p
    off_x = torch.randint(0, dx + 1, (batch, 4), generator=generator, device=device)
    off_y = torch.randint(0, dy + 1, (batch, 4), generator=generator, device=device)

    start = torch.tensor(
        [[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]],
        dtype=torch.float64,
        device=device,
    )
    # Direction in which each corner moves inward: +1 from the left/top edge,
    # -1 from the right/bottom edge.
    inward = torch.tensor(
        [[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=torch.float64, device=device
    )
    offsets = torch.stack([off_x, off_y], dim=-1).to(torch.float64)  # [B, 4, 2]
    end = start + inward * offsets
    return apply, start, end


def _homography(start: Tensor, end: Tensor) -> Tensor:
    """Batched 3x3 homographies ``M`` with ``M @ (end_k, 1) ~ (start_k, 1)``.

    ``start``: ``[4, 2]`` or ``[B, 4, 2]``; ``end``: ``[B, 4, 2]``.  ``M`` maps
    output-image coordinates to input-image coordinates, the convention of
    torchvision's ``perspective`` (the output at ``end`` shows the input at
    ``start``).  With ``M = [[a, b, c], [d, e, f], [g, h, 1]]`` each of the four
    correspondences ``(x, y) -> (u, v)`` gives two linear equations::

        a x + b y + c - g x u - h y u = u
        d x + e y + f - g x v - h y v = v

    and all ``B`` 8x8 systems are solved by one ``torch.linalg.solve``.
    """
    end = end.to(torch.float64)
    start = start.to(torch.float64).expand_as(end)
    x, y = end[..., 0], end[..., 1]          # [B, 4]
    u, v = start[..., 0], start[..., 1]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rows_u = torch.stack([x, y, one, zero, zero, zero, -x * u, -y * u], dim=-1)
    rows_v = torch.stack([zero, zero, zero, x, y, one, -x * v, -y * v], dim=-1)
    a_mat = torch.stack([rows_u, rows_v], dim=-2).reshape(*x.shape[:-1], 8, 8)
    rhs = torch.stack([u, v], dim=-1).reshape(*x.shape[:-1], 8)
    coeffs = torch.linalg.solve(a_mat, rhs)  # [B, 8]
    return torch.cat([coeffs, torch.ones_like(coeffs[..., :1])], dim=-1).reshape(
        *x.shape[:-1], 3, 3
    )


def _warp(x: Tensor, homography: Tensor) -> Tensor:
    """Warp ``x`` ``[B, C, H, W]`` with per-sample output->input homographies.

    Pixel ``(i, j)`` has its centre at continuous coordinate ``(j + 0.5, i + 0.5)``
    (torchvision/PIL convention); the homography is applied to these centres and
    the resulting input coordinates ``(u, v)`` in ``[0, W] x [0, H]`` are mapped
    to ``grid_sample``'s ``align_corners=False`` normalised coordinates by
    ``2 u / W - 1`` and ``2 v / H - 1``.  Bilinear, zeros outside the image.
    """
    b, _, h, w = x.shape
    work = torch.promote_types(x.dtype, torch.float32)
    # Fold the pixel -> normalised map into the homography (it leaves the
    # projective denominator, the last row, unchanged).
    to_norm = torch.tensor(
        [[2.0 / w, 0.0, -1.0], [0.0, 2.0 / h, -1.0], [0.0, 0.0, 1.0]],
        dtype=torch.float64,
        device=x.device,
    )
    m = (to_norm @ homography.to(torch.float64)).to(work)  # [B, 3, 3]
    xs = torch.arange(w, device=x.device, dtype=work) + 0.5
    ys = torch.arange(h, device=x.device, dtype=work) + 0.5
    # m @ (x, y, 1) for every pixel centre, as a column term plus a row term
    # (cheaper than a [B, H*W, 3] matmul); result [B, H, W, 3].
    col = (m[:, :, 0, None] * xs).transpose(1, 2).unsqueeze(1)  # [B, 1, W, 3]
    row = (m[:, :, 1, None] * ys + m[:, :, 2, None]).transpose(1, 2).unsqueeze(2)  # [B, H, 1, 3]
    proj = col + row
    grid = proj[..., :2] / proj[..., 2:]  # normalised (x, y), [B, H, W, 2]
    # the projective denominator can be exactly 0 at a pixel centre (a point at infinity):
    # send such points outside the image, where they read the fill value 0 (as PIL does)
    grid = torch.nan_to_num(grid, nan=2.0, posinf=2.0, neginf=-2.0).clamp_(-2.0, 2.0)
    out = F.grid_sample(
        x.to(work), grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return out.to(x.dtype)


def random_perspective(
    x: Tensor, generator: torch.Generator, distortion: float = 0.5, p: float = 0.5
) -> Tensor:
    """Batched ``transforms.RandomPerspective(distortion, p)`` (bilinear, fill 0).

    Each sample is independently warped with probability ``p`` by a random
    homography drawn as in torchvision; unselected samples are returned
    bitwise unchanged.  ``x``: float ``[B, C, H, W]``.
    """
    b, _, h, w = x.shape
    apply, start, end = _perspective_params(b, h, w, distortion, p, generator, x.device)
    sel = apply.nonzero().squeeze(1)  # warp only the selected samples (about p * B)
    out = x.clone()
    if sel.numel():
        out[sel] = _warp(x[sel], _homography(start, end[sel]))
    return out


# ----------------------------------------------------------------------------
# Colour jitter
# ----------------------------------------------------------------------------

def _jitter_params(
    batch: int,
    brightness: float,
    contrast: float,
    generator: torch.Generator,
    device: torch.device,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample ``(brightness_factor, contrast_factor, brightness_first)``.

    Factors are uniform on ``[max(0, 1 - s), 1 + s]`` as in ColorJitter;
    ``brightness_first`` (bool) is True with probability 1/2, which is the
    probability that brightness precedes contrast in ColorJitter's random
    permutation of its four ops.
    """
    u = torch.rand(batch, 3, generator=generator, device=device)
    lo_b, lo_c = max(0.0, 1.0 - brightness), max(0.0, 1.0 - contrast)
    b = lo_b + (1.0 + brightness - lo_b) * u[:, 0]
    c = lo_c + (1.0 + contrast - lo_c) * u[:, 1]
    return b, c, u[:, 2] < 0.5


def color_jitter_gray(
    x: Tensor, generator: torch.Generator, brightness: float = 0.2, contrast: float = 0.75
) -> Tensor:
    """Batched ``ColorJitter(brightness, contrast, saturation, hue)`` for grayscale.

    For single-channel images saturation and hue are no-ops in
    torchvision/PIL (``ImageEnhance.Color`` blends an 'L' image with itself and
    ``adjust_hue`` returns 'L' images untouched), so only brightness
    (``clamp(b * x)``) and contrast (``clamp(c * x + (1 - c) * mean(x))``, mean
    over the image) act, in a random order per sample.

    Both ops have the form ``clamp(alpha * x + beta)`` with per-sample
    ``alpha``/``beta``, so the random order is vectorised by choosing, per
    sample, which op's parameters are used first and which second (the
    contrast mean is always taken of the image the contrast op receives).
    ``x``: float ``[B, 1, H, W]``.
    """
    if x.shape[1] != 1:
        raise ValueError(f"expected a grayscale batch [B, 1, H, W], got {tuple(x.shape)}")
    b, c, brightness_first = _jitter_params(x.shape[0], brightness, contrast, generator, x.device)
    b, c = b.to(x.dtype).view(-1, 1, 1, 1), c.to(x.dtype).view(-1, 1, 1, 1)
    first = brightness_first.view(-1, 1, 1, 1)

    def mean(t: Tensor) -> Tensor:
        return t.mean(dim=(1, 2, 3), keepdim=True)

    # first op: brightness (b, 0) or contrast (c, (1 - c) * mean(x))
    alpha = torch.where(first, b, c)
    beta = torch.where(first, torch.zeros_like(c), (1.0 - c) * mean(x))
    y = (alpha * x + beta).clamp(0.0, 1.0)
    # second op: contrast (c, (1 - c) * mean(y)) or brightness (b, 0)
    alpha = torch.where(first, c, b)
    beta = torch.where(first, (1.0 - c) * mean(y), torch.zeros_like(c))
    return (alpha * y + beta).clamp(0.0, 1.0)


def mnist_augment(x: Tensor, generator: torch.Generator) -> Tensor:
    """RandomPerspective(0.5, p=0.5) then ColorJitter(0.2, 0.75, 0.25, 0.04) on ``[B, 1, H, W]``."""
    return color_jitter_gray(random_perspective(x, generator), generator)


# ----------------------------------------------------------------------------
# Random crop with zero padding + horizontal flip (CIFAR)
# ----------------------------------------------------------------------------

__all__ += ["random_crop_flip", "center_crop", "cifar10_augment"]


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def _crop_flip_params(
    batch: int,
    height: int,
    width: int,
    size: int | tuple[int, int],
    padding: int,
    flip: bool,
    generator: torch.Generator,
    device: torch.device,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample ``(top, left, flipped)`` for :func:`random_crop_flip`.

    ``top`` / ``left`` (int64 ``[B]``) index the crop's corner in the image zero-padded by
    ``padding`` on each side, uniform on ``{0, ..., H + 2 padding - size_h}`` and
    ``{0, ..., W + 2 padding - size_w}`` (torchvision ``RandomCrop.get_params`` after its
    padding); ``flipped`` (bool ``[B]``) is True with probability 1/2 (all False when
    ``flip`` is False, drawing nothing).  Draw order: top, left, flip.
    """
    th, tw = _pair(size)
    hp, wp = height + 2 * padding, width + 2 * padding
    if th > hp or tw > wp or th < 1 or tw < 1:
        raise ValueError(f"crop size {(th, tw)} does not fit the padded image {(hp, wp)}")
    top = torch.randint(0, hp - th + 1, (batch,), generator=generator, device=device)
    left = torch.randint(0, wp - tw + 1, (batch,), generator=generator, device=device)
    if flip:
        flipped = torch.rand(batch, generator=generator, device=device) < 0.5
    else:
        flipped = torch.zeros(batch, dtype=torch.bool, device=device)
    return top, left, flipped


def _crop_gather(x: Tensor, top: Tensor, left: Tensor, flipped: Tensor, th: int, tw: int) -> Tensor:
    """``out[b, c, i, j] = x[b, c, top_b + i, left_b + (tw - 1 - j if flipped_b else j)]`` as
    one ``gather`` over the flattened spatial axis (x already padded)."""
    b, c, h, w = x.shape
    i = torch.arange(th, device=x.device)
    j = torch.arange(tw, device=x.device)
    cols = left[:, None] + torch.where(flipped[:, None], tw - 1 - j, j)   # [B, tw]
    rows = top[:, None] + i                                               # [B, th]
    flat = (rows[:, :, None] * w + cols[:, None, :]).reshape(b, 1, th * tw)
    out = torch.gather(x.reshape(b, c, h * w), 2, flat.expand(b, c, th * tw))
    return out.reshape(b, c, th, tw)


def random_crop_flip(
    x: Tensor,
    generator: torch.Generator,
    size: int | tuple[int, int],
    padding: int = 0,
    flip: bool = True,
) -> Tensor:
    """Batched ``RandomCrop(size, padding)`` (zero fill) then ``RandomHorizontalFlip()``.

    ``x``: ``[B, C, H, W]`` of any dtype (float batches, or uint8 before conversion), on any
    device; ``generator`` on the same device.  Each sample gets its own crop offset (uniform
    over all positions in the zero-padded image) and, with probability 1/2 when ``flip``,
    is mirrored left-right.  The padding is one ``F.pad``; crop and flip are one ``gather``
    whose column index folds in both.  Returns ``[B, C, size_h, size_w]``.
    """
    th, tw = _pair(size)
    b, _, h, w = x.shape
    top, left, flipped = _crop_flip_params(b, h, w, (th, tw), padding, flip, generator, x.device)
    if padding:
        x = F.pad(x, (padding, padding, padding, padding))
    return _crop_gather(x, top, left, flipped, th, tw)


def center_crop(x: Tensor, size: int | tuple[int, int]) -> Tensor:
    """torchvision ``center_crop`` on a batch ``[B, C, H, W]`` (same rounding of the offset,
    ``int(round((H - size) / 2))``; zero padding first when ``size`` exceeds the image)."""
    th, tw = _pair(size)
    h, w = x.shape[-2:]
    if th > h or tw > w:  # pad as torchvision: the extra pixel, if odd, goes right/bottom
        pl, pt = max(tw - w, 0) // 2, max(th - h, 0) // 2
        pr, pb = max(tw - w + 1, 0) // 2, max(th - h + 1, 0) // 2
        x = F.pad(x, (pl, pr, pt, pb))
        h, w = x.shape[-2:]
    top, left = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))
    return x[..., top:top + th, left:left + tw]


def cifar10_augment(x: Tensor, generator: torch.Generator) -> Tensor:
    """The standard CIFAR augmentation (He et al. 2016; MLC): 4-pixel zero padding, random
    32x32 crop, random horizontal flip, on ``[B, C, 32, 32]``."""
    return random_crop_flip(x, generator, 32, padding=4)
