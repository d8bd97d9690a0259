"""Batched, on-device data augmentation (MNIST's perspective + jitter, CIFAR's crop + flip).

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

from ..errors import ConfigError
from .augment_base import Augmentation
from .randaugment import randaugment

__all__ = ["Augmentation", "Perspective", "GrayJitter", "Chain", "random_perspective", "color_jitter_gray",
           "mnist_augment"]


# ----------------------------------------------------------------------------
# Random perspective
# ----------------------------------------------------------------------------

def _perspective_draws(
    batch: int,
    height: int,
    width: int,
    distortion: float,
    p: float,
    generator: torch.Generator,
    device: torch.device,
) -> tuple[Tensor, Tensor, Tensor]:
    """The raw RandomPerspective draws ``(apply, off_x, off_y)``, in this order:
    ``apply`` bool ``[B]`` (``rand < p``), then the integer inward corner offsets
    ``off_x`` uniform on ``{0, ..., dx}`` and ``off_y`` on ``{0, ..., dy}``, int64
    ``[B, 4]`` (corners top-left, top-right, bottom-right, bottom-left)."""
    dx = int(distortion * (width // 2))
    dy = int(distortion * (height // 2))
    apply = torch.rand(batch, generator=generator, device=device) < p
    off_x = torch.randint(0, dx + 1, (batch, 4), generator=generator, device=device)
    off_y = torch.randint(0, dy + 1, (batch, 4), generator=generator, device=device)
    return apply, off_x, off_y


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
    apply, off_x, off_y = _perspective_draws(batch, height, width, distortion, p, generator, device)
    c = _constants(height, width, device, torch.float32)
    return apply, c.start, _end_points(c, torch.stack([off_x, off_y], dim=-1))


def _end_points(c: "_Constants", offsets: Tensor) -> Tensor:
    """``end = start + inward * offsets`` (float64 ``[B, 4, 2]``) from integer offsets ``[B, 4, 2]``."""
    return torch.addcmul(c.start, c.inward, offsets.to(torch.float64))


# Square -> quadrilateral in closed form (Heckbert, "Fundamentals of Texture Mapping and Image
# Warping", 1989, Sec. 2.2.3).  The projective map Q with Q (u, v, 1) ~ (x_k, y_k, 1) at the unit
# square's corners (0,0), (1,0), (1,1), (0,1) -> p0, p1, p2, p3 is
#
#     Q = [[x1 - x0 + g x1, x3 - x0 + h x3, x0],
#          [y1 - y0 + g y1, y3 - y0 + h y3, y0],
#          [g,              h,              1 ]]
#
# with  dx1 = x1 - x2, dx2 = x3 - x2, sx = x0 - x1 + x2 - x3 (same for y)  and
#
#     g = (sx dy2 - dx2 sy) / den,  h = (dx1 sy - sx dy1) / den,  den = dx1 dy2 - dx2 dy1.
#
# These three 2x2 determinants are, up to sign, the cross product c = u x v of u = (dx1, dx2, sx)
# and v = (dy1, dy2, sy): c = (-g den, -h den, den).  A projective map is only defined up to a
# scale, so we use den * Q, whose columns are  (den - c0) P1 - den P0,  (den - c1) P3 - den P0  and
# den P0  (P_k = (x_k, y_k, 1)): no division at all.  The inverse map is the adjugate (again up to
# scale): for a matrix with columns a0, a1, a2 the rows of adj are a1 x a2, a2 x a0, a0 x a1.

#: ``[x0, y0, ..., x3, y3] @ _FEATURES + _FEATURE_BIAS`` = rows u, v, P0, P1, P3 (flattened, [15])
_FEATURES = torch.zeros(8, 15, dtype=torch.float64)
for _col, _terms in enumerate([
    {2: 1, 4: -1}, {6: 1, 4: -1}, {0: 1, 2: -1, 4: 1, 6: -1},   # u = (dx1, dx2, sx)
    {3: 1, 5: -1}, {7: 1, 5: -1}, {1: 1, 3: -1, 5: 1, 7: -1},   # v = (dy1, dy2, sy)
    {0: 1}, {1: 1}, {}, {2: 1}, {3: 1}, {}, {6: 1}, {7: 1}, {},  # P0, P1, P3 (homogeneous)
]):
    for _row, _v in _terms.items():
        _FEATURES[_row, _col] = _v
_FEATURE_BIAS = torch.zeros(15, dtype=torch.float64)
_FEATURE_BIAS[[8, 11, 14]] = 1.0
#: ``c @ _COEFFS`` = the 3x3 coefficients of the columns of den * Q on (P0, P1, P3), see above
_COEFFS = torch.zeros(3, 9, dtype=torch.float64)
for (_i, _j), _terms in {(0, 0): {2: -1}, (0, 1): {2: 1, 0: -1},      # col 0: (den - c0) P1 - den P0
                         (1, 0): {2: -1}, (1, 2): {2: 1, 1: -1},      # col 1: (den - c1) P3 - den P0
                         (2, 0): {2: 1}}.items():                     # col 2: den P0
    for _k, _v in _terms.items():
        _COEFFS[_k, 3 * _i + _j] = _v
del _col, _terms, _row, _v, _i, _j, _k


_QUAD_CONSTANTS: dict = {}


def _square_to_quad_t(pts: Tensor) -> Tensor:
    """``(den * Q)^T`` (float64 ``[N, 3, 3]``; its ROWS are the columns of ``den * Q``) for
    quadrilaterals ``pts`` ``[N, 4, 2]`` (corners in the order top-left, top-right,
    bottom-right, bottom-left), see the comment above.  Four batched matrix ops, no solve."""
    key = str(pts.device)
    if key not in _QUAD_CONSTANTS:  # the constant matrices on this device, copied once
        _QUAD_CONSTANTS[key] = tuple(t.to(pts.device) for t in (_FEATURE_BIAS, _FEATURES, _COEFFS))
    bias, features, coeffs = _QUAD_CONSTANTS[key]
    n = pts.shape[0]
    feats = torch.addmm(bias, pts.reshape(n, 8), features).view(n, 5, 3)  # u, v, P0, P1, P3
    c = torch.linalg.cross(feats[:, 0], feats[:, 1], dim=-1)             # (-g den, -h den, den)
    return (c @ coeffs).view(n, 3, 3) @ feats[:, 2:]                      # rows: den*Q's columns


def _adjugate_of_transpose(qt: Tensor) -> Tensor:
    """``adj(Q)`` given ``Q^T`` ``[..., 3, 3]``: its rows are the cross products of the
    columns of ``Q`` (the rows of ``qt``), ``q1 x q2``, ``q2 x q0``, ``q0 x q1``."""
    return torch.linalg.cross(qt.roll(-1, dims=-2), qt.roll(-2, dims=-2), dim=-1)


def _homography(start: Tensor, end: Tensor) -> Tensor:
    """Batched 3x3 homographies ``M`` with ``M @ (end_k, 1) ~ (start_k, 1)``, normalised to
    ``M[2, 2] = 1``.

    ``start``: ``[4, 2]`` or ``[B, 4, 2]``; ``end``: ``[B, 4, 2]``.  ``M`` maps
    output-image coordinates to input-image coordinates, the convention of
    torchvision's ``perspective`` (the output at ``end`` shows the input at
    ``start``).  Closed form (no linear solve): ``M ~ Q_start adj(Q_end)`` with the
    square-to-quad maps ``Q`` above; the same map torchvision's 8x8 least-squares system
    ``a x + b y + c - g x u - h y u = u``, ``d x + e y + f - g x v - h y v = v`` (four
    correspondences ``(x, y) -> (u, v)``) determines.
    """
    end = end.to(torch.float64)
    start = start.to(torch.float64)
    q_start = _square_to_quad_t(start.reshape(-1, 4, 2)).mT
    m = q_start @ _adjugate_of_transpose(_square_to_quad_t(end))
    return m / m[..., 2:, 2:]


class _Constants:
    """Per (H, W, device, dtype) constants of the warp, built once."""

    def __init__(self, h: int, w: int, device: torch.device, work: torch.dtype):
        f64 = dict(dtype=torch.float64, device=device)
        self.start = torch.tensor([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], **f64)
        # direction in which each corner moves inward: +1 from the left/top edge, -1 from the
        # right/bottom edge
        self.inward = torch.tensor([[1, 1], [-1, 1], [-1, -1], [1, -1]], **f64)
        # pixel (continuous) -> grid_sample's align_corners=False coordinates, 2 u / W - 1
        self.to_norm = torch.tensor([[2.0 / w, 0.0, -1.0], [0.0, 2.0 / h, -1.0], [0.0, 0.0, 1.0]], **f64)
        # to_norm @ Q_start: output pixel -> normalised input coordinates is this @ adj(Q_end)
        self.to_norm_q_start = self.to_norm @ _square_to_quad_t(self.start[None])[0].mT
        # homogeneous pixel centres (j + 0.5, i + 0.5, 1) as columns, row-major: [3, H * W]
        ys, xs = torch.meshgrid(torch.arange(h, **f64) + 0.5, torch.arange(w, **f64) + 0.5, indexing="ij")
        self.centres = torch.stack([xs.flatten(), ys.flatten(), torch.ones(h * w, **f64)]).to(work)
        # the outermost pixel centres (x, y, 1) as columns [3, 4]: every pixel centre lies in
        # their rectangle
        self.corners = torch.tensor([[0.5, w - 0.5, w - 0.5, 0.5], [0.5, 0.5, h - 0.5, h - 0.5], [1, 1, 1, 1]], **f64)


_CONSTANTS: dict = {}


def _constants(h: int, w: int, device: torch.device, work: torch.dtype) -> _Constants:
    key = (h, w, str(device), work)
    c = _CONSTANTS.get(key)
    if c is None:
        c = _CONSTANTS[key] = _Constants(h, w, device, work)
    return c


def _warp_normalised(x: Tensor, m: Tensor, c: _Constants, finite: bool = False) -> Tensor:
    """Warp ``x`` ``[B, C, H, W]`` by ``m`` ``[B, 3, 3]`` (any float dtype, any scale) mapping
    output pixel centres ``(j + 0.5, i + 0.5, 1)`` to homogeneous ``grid_sample`` coordinates
    (``align_corners=False``).  Bilinear, zeros outside the image.  ``finite``: the caller
    knows every denominator is away from 0 (:class:`Perspective`), so the coordinates need no
    clean-up."""
    b, _, h, w = x.shape
    # m @ (x, y, 1) for every pixel centre: ONE [B*3, 3] @ [3, H*W] matmul, channels first
    # (a batched [B, H*W, 3] matmul, broadcast adds or a channels-last grid are slower on the CPU)
    proj = torch.mm(m.to(c.centres.dtype).view(b * 3, 3), c.centres).view(b, 3, h, w)
    grid = proj[:, :2].div_(proj[:, 2:]).permute(0, 2, 3, 1)    # normalised (x, y), [B, H, W, 2]
    # the projective denominator can be exactly 0 at a pixel centre (a point at infinity):
    # send such points outside the image, where they read the fill value 0 (as PIL does)
    if not finite:
        grid = grid.nan_to_num_(nan=2.0, posinf=2.0, neginf=-2.0).clamp_(-2.0, 2.0)
    out = F.grid_sample(x.to(grid.dtype), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.to(x.dtype)


def _warp(x: Tensor, homography: Tensor) -> Tensor:
    """Warp ``x`` ``[B, C, H, W]`` with per-sample output->input homographies.

    Pixel ``(i, j)`` has its centre at continuous coordinate ``(j + 0.5, i + 0.5)``
    (torchvision/PIL convention); the homography is applied to these centres and
    the resulting input coordinates ``(u, v)`` in ``[0, W] x [0, H]`` are mapped
    to ``grid_sample``'s ``align_corners=False`` normalised coordinates by
    ``2 u / W - 1`` and ``2 v / H - 1`` (folded into the homography: it leaves the
    projective denominator, the last row, unchanged).  Bilinear, zeros outside the image.
    """
    _, _, h, w = x.shape
    c = _constants(h, w, x.device, torch.promote_types(x.dtype, torch.float32))
    return _warp_normalised(x, c.to_norm @ homography.to(torch.float64), c)


class Perspective(Augmentation):
    """``transforms.RandomPerspective(distortion, p)`` (bilinear, fill 0), batched.

    ``draw``: ``apply`` (bool, ``rand < p``) and ``m``, each sample's output pixel -> normalised
    input coordinate map ``to_norm @ Q_start @ adj(Q_end)`` (float64 ``[n, 3, 3]``, see above), from the
    draws of :func:`_perspective_draws` (drawn for every sample, whatever ``p``), and ``finite``: True
    where the map's projective denominator keeps one sign, away from 0, over every pixel centre (it is
    affine in the pixel coordinates, so its values at the four outermost pixel centres decide), i.e.
    every pixel maps to a finite coordinate.
    ``apply``: on the CPU only the selected samples (about ``p * B``) are warped, written into
    ``x``; elsewhere all are warped and the unselected ones taken back from ``x`` (no host sync
    for the selection); unselected samples come back bitwise unchanged."""

    def __init__(self, distortion: float = 0.5, p: float = 0.5):
        self.distortion, self.p = distortion, p

    def draw(self, n, shape, generator, device):
        h, w = shape[-2:]
        apply, off_x, off_y = _perspective_draws(n, h, w, self.distortion, self.p, generator, device)
        c = _constants(h, w, device, torch.float32)
        offsets = torch.stack([off_x, off_y], dim=-1)  # [n, 4, 2]
        m = c.to_norm_q_start @ _adjugate_of_transpose(_square_to_quad_t(_end_points(c, offsets)))
        den = m[:, 2] @ c.corners                      # [n, 4]: the denominator there
        scale = den.abs().amax(dim=1)
        finite = ((den > 1e-6 * scale[:, None]).all(dim=1) | (den < -1e-6 * scale[:, None]).all(dim=1))
        return {"apply": apply, "m": m, "finite": finite}

    def apply(self, x, params):
        _, _, h, w = x.shape
        c = _constants(h, w, x.device, torch.promote_types(x.dtype, torch.float32))
        apply, m = params["apply"], params["m"]
        if x.device.type == "cpu":
            sel = torch.nonzero(apply).view(-1)
            if sel.numel() == 0:
                return x
            # every selected map finite (at MNIST's distortion 0.5 all but about 0.1% of the maps,
            # so most chunks): no clean-up pass
            finite = bool(params["finite"].index_select(0, sel).all())
            warped = _warp_normalised(x.index_select(0, sel), m.index_select(0, sel), c, finite)
            # the warped rows into x (in a training loop the fastest of the scatters
            # measured: cat + gather, index_put, masked_scatter, where)
            return x.index_copy_(0, sel, warped)
        return torch.where(apply.view(-1, 1, 1, 1), _warp_normalised(x, m, c), x)


def random_perspective(
    x: Tensor, generator: torch.Generator, distortion: float = 0.5, p: float = 0.5
) -> Tensor:
    """Batched ``transforms.RandomPerspective(distortion, p)`` (bilinear, fill 0).

    Each sample is independently warped with probability ``p`` by a random
    homography drawn as in torchvision; unselected samples are returned
    bitwise unchanged.  ``x``: float ``[B, C, H, W]``.
    """
    return Perspective(distortion, p)(x, generator)


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


class GrayJitter(Augmentation):
    """``ColorJitter(brightness, contrast, saturation, hue)`` for grayscale, batched.

    For single-channel images saturation and hue are no-ops in torchvision/PIL
    (``ImageEnhance.Color`` blends an 'L' image with itself and ``adjust_hue`` returns 'L'
    images untouched), so only brightness (``clamp(b * x)``) and contrast
    (``clamp(c * x + (1 - c) * mean(x))``, mean over the image) act, in a random order per
    sample.  Both have the form ``clamp(alpha * x + k * mean(x))``: brightness ``(b, 0)``,
    contrast ``(c, 1 - c)``.  ``draw`` gives each sample its first and second op's
    ``(alpha, k)`` (``a1, k1, a2, k2``, ``[n, 1, 1, 1]``); the contrast mean is always taken of
    the image the contrast op receives.  ``x``: float ``[B, 1, H, W]``."""

    def __init__(self, brightness: float = 0.2, contrast: float = 0.75):
        self.brightness, self.contrast = brightness, contrast

    def draw(self, n, shape, generator, device):
        b, c, brightness_first = _jitter_params(n, self.brightness, self.contrast, generator, device)
        b, c, first = b.view(-1, 1, 1, 1), c.view(-1, 1, 1, 1), brightness_first.view(-1, 1, 1, 1)
        one_minus_c = 1.0 - c
        return {"a1": torch.where(first, b, c), "k1": torch.where(first, 0.0, one_minus_c),
                "a2": torch.where(first, c, b), "k2": torch.where(first, one_minus_c, 0.0)}

    def apply(self, x, params):
        if x.shape[1] != 1:
            raise ConfigError(f"expected a grayscale batch [B, 1, H, W], got {tuple(x.shape)}")
        a1, k1, a2, k2 = (params[k].to(x.dtype) for k in ("a1", "k1", "a2", "k2"))
        # x.mul(alpha).add_(beta) rather than addcmul: several times faster on the CPU
        y = x.mul(a1).add_(k1 * x.mean(dim=(1, 2, 3), keepdim=True)).clamp_(0.0, 1.0)
        beta2 = k2 * y.mean(dim=(1, 2, 3), keepdim=True)  # of y before it is scaled in place
        return y.mul_(a2).add_(beta2).clamp_(0.0, 1.0)


def color_jitter_gray(
    x: Tensor, generator: torch.Generator, brightness: float = 0.2, contrast: float = 0.75
) -> Tensor:
    """Batched ``ColorJitter(brightness, contrast, saturation, hue)`` for grayscale
    (:class:`GrayJitter`).  ``x``: float ``[B, 1, H, W]``."""
    return GrayJitter(brightness, contrast)(x, generator)


class Chain(Augmentation):
    """Several augmentations one after the other (``transforms.Compose``); each one's draws
    are made in turn, its parameters kept under ``"<position>.<name>"``."""

    def __init__(self, *parts: Augmentation):
        self.parts = parts

    def draw(self, n, shape, generator, device):
        return {f"{i}.{k}": v for i, part in enumerate(self.parts)
                for k, v in part.draw(n, shape, generator, device).items()}

    def apply(self, x, params):
        for i, part in enumerate(self.parts):
            prefix = f"{i}."
            x = part.apply(x, {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)})
        return x


#: RandomPerspective(0.5, p=0.5) then ColorJitter(0.2, 0.75, 0.25, 0.04) on ``[B, 1, H, W]``
mnist_augment = Chain(Perspective(0.5, 0.5), GrayJitter(0.2, 0.75))


# ----------------------------------------------------------------------------
# Random crop with zero padding + horizontal flip (CIFAR)
# ----------------------------------------------------------------------------

__all__ += ["CropFlip", "random_crop_flip", "center_crop", "cifar10_augment", "crop_flip", "AUGMENTS",
            "resolve_augment"]


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
        raise ConfigError(f"crop size {(th, tw)} does not fit the padded image {(hp, wp)}")
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


class CropFlip(Augmentation):
    """Zero padding by ``padding``, a random crop of the image's own size, a random horizontal
    flip (the CIFAR augmentation for any image size; :func:`random_crop_flip` with ``size`` the
    input's).  ``draw``: ``top``, ``left``, ``flipped`` of :func:`_crop_flip_params`."""

    def __init__(self, padding: int = 4, flip: bool = True):
        self.padding, self.flip = padding, flip

    def draw(self, n, shape, generator, device):
        h, w = shape[-2:]
        top, left, flipped = _crop_flip_params(n, h, w, (h, w), self.padding, self.flip, generator, device)
        return {"top": top, "left": left, "flipped": flipped}

    def apply(self, x, params):
        h, w = x.shape[-2:]
        if self.padding:
            x = F.pad(x, (self.padding,) * 4)
        return _crop_gather(x, params["top"], params["left"], params["flipped"], h, w)


#: 4-pixel zero padding, a random crop of the image's own size, a random horizontal flip
crop_flip = CropFlip(padding=4)

#: the CIFAR-10 augmentation (He et al. 2016; MLC): 4-pixel zero padding, random 32x32 crop, flip
cifar10_augment = crop_flip

#: the augmentations a space file names (``augment: <name>``): none, the CIFAR one for any size,
#: the MNIST one (random perspective + brightness/contrast jitter, meant for grey images), the strong view of
#: the semi-supervised methods (:mod:`tune_lnl.data.randaugment`: RandAugment + Cutout, any image)
AUGMENTS = {"none": None, "crop_flip": crop_flip, "perspective_jitter": mnist_augment, "randaugment": randaugment}


def resolve_augment(value, default):
    """The augmentation a run config's ``augment`` asks for: ``true`` the dataset's default,
    ``false`` / ``none`` none, else one of :data:`AUGMENTS` by name."""
    if value is True:
        return default
    if value is False or value is None:
        return None
    if value not in AUGMENTS:
        raise ConfigError(f"unknown augment {value!r}; allowed: true, false, {', '.join(AUGMENTS)}")
    return AUGMENTS[value]
