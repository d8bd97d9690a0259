"""The strong view of the semi-supervised methods (FixMatch, ProMix, SOP+, UNICON): RandAugment
(Cubuk et al. 2020) as FixMatch's ``RandAugmentMC(n=2, m=10)`` uses it, then Cutout, batched on the
device for any ``[B, C, H, W]`` float batch in [0, 1] (grey or colour).

Per image, each of ``n`` slots picks one of the 14 operations of :data:`OPS` uniformly and applies
it with probability 1/2 at a magnitude ``v`` uniform in [0.1, 1] (FixMatch: an integer 1..m of
m = 10, over 10) and a random sign where the operation has one:

========================  =============================================================
identity                  ``x``
autocontrast              each channel rescaled to span [0, 1]
brightness                ``x (1 + 0.9 v s)``
color (saturation)        blend with the grey image by ``1 + 0.9 v s`` (grey images: identity)
contrast                  blend with the image's mean grey by ``1 + 0.9 v s``
equalize                  histogram equalisation of each channel (256 levels)
posterize                 ``4 v`` of the 8 bits dropped (rounded)
rotate                    ``30 v s`` degrees about the centre
sharpness                 blend with the 3x3-smoothed image by ``1 + 0.9 v s``
shear_x, shear_y          shear ``0.3 v s``
solarize                  pixels >= ``1 - v`` inverted
translate_x, translate_y  ``0.3 v s`` of the image's size
========================  =============================================================

(``s`` = +-1; results clamped to [0, 1]; geometric operations bilinear with zeros outside.) Then
Cutout: a square of half the image's height (FixMatch: 16 of 32 pixels) centred at a uniformly
drawn pixel, clipped at the border, filled with grey 0.5. Differences to the PIL pipeline: float
throughout (no uint8 rounding between operations),
brightness and contrast two-sided around 1 (FixMatch's code only darkens: factor 0.05..0.95).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms import functional as TF

from .augment_base import Augmentation

__all__ = ["RandAugment", "OPS", "randaugment"]

#: the operations, in the order a draw's ``op`` indexes them
OPS = ("identity", "autocontrast", "brightness", "color", "contrast", "equalize", "posterize", "rotate",
       "sharpness", "shear_x", "shear_y", "solarize", "translate_x", "translate_y")
_GEOMETRIC = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")


def _blend(x: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """``other + factor (x - other)`` clamped (PIL's ImageEnhance: factor 1 is ``x``, 0 is ``other``)."""
    return (other + factor * (x - other)).clamp(0.0, 1.0)


def _grey(x: Tensor) -> Tensor:
    """The grey image (torchvision's ITU-R 601 weights), broadcast to ``x``'s channels."""
    return x if x.shape[1] == 1 else TF.rgb_to_grayscale(x).expand_as(x)


def _autocontrast(x: Tensor) -> Tensor:
    lo, hi = x.amin((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)
    return torch.where(hi > lo, (x - lo) / (hi - lo).clamp_min(1e-12), x)


def _equalize(x: Tensor) -> Tensor:
    """Histogram equalisation per image and channel over 256 grey levels: each level mapped to the
    share of the image's pixels at or below it, the lowest level present to 0."""
    b, c = x.shape[:2]
    q = (x.clamp(0.0, 1.0) * 255.0).round().long().view(b * c, -1)
    hist = torch.zeros(b * c, 256, device=x.device, dtype=x.dtype).scatter_add_(1, q, torch.ones_like(q, dtype=x.dtype))
    cdf = hist.cumsum(1)
    first = cdf.gather(1, q.amin(1, keepdim=True))  # pixels at the lowest level present
    scale = (q.shape[1] - first).clamp_min(1.0)
    return ((cdf.gather(1, q) - first) / scale).clamp(0.0, 1.0).view_as(x)


def _smooth(x: Tensor) -> Tensor:
    """PIL's SMOOTH kernel (1 1 1 / 1 5 1 / 1 1 1) / 13, border pixels kept."""
    c = x.shape[1]
    k = torch.ones(3, 3, device=x.device, dtype=x.dtype)
    k[1, 1] = 5.0
    k = (k / 13.0).expand(c, 1, 3, 3)
    inner = F.conv2d(x, k, padding=1, groups=c)
    edge = torch.zeros_like(x, dtype=torch.bool)
    edge[..., 0, :] = edge[..., -1, :] = edge[..., :, 0] = edge[..., :, -1] = True
    return torch.where(edge, x, inner)


def _affine(op: Tensor, v: Tensor) -> Tensor:
    """``[n, 2, 3]`` sampling matrices (normalised coordinates) of the geometric ops, identity elsewhere;
    ``v`` the signed magnitude."""
    n = op.shape[0]
    theta = torch.zeros(n, 2, 3, device=v.device, dtype=v.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    angle = v * (30.0 * math.pi / 180.0)
    rot = op == OPS.index("rotate")
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta[:, 0, 0] = torch.where(rot, cos, theta[:, 0, 0])
    theta[:, 1, 1] = torch.where(rot, cos, theta[:, 1, 1])
    theta[:, 0, 1] = torch.where(rot, -sin, torch.where(op == OPS.index("shear_x"), 0.3 * v, 0.0))
    theta[:, 1, 0] = torch.where(rot, sin, torch.where(op == OPS.index("shear_y"), 0.3 * v, 0.0))
    theta[:, 0, 2] = torch.where(op == OPS.index("translate_x"), 0.6 * v, 0.0)  # 0.3 of the width = 0.6 normalised
    theta[:, 1, 2] = torch.where(op == OPS.index("translate_y"), 0.6 * v, 0.0)
    return theta


def _colour(name: str, x: Tensor, v: Tensor, s: Tensor) -> Tensor:
    """The colour operation ``name`` of :data:`OPS` on the images ``x`` with magnitudes ``v`` and signs ``s``."""
    sv = (s * v).to(x.dtype).view(-1, 1, 1, 1)
    f = 1.0 + 0.9 * sv
    if name == "autocontrast":
        return _autocontrast(x)
    if name == "brightness":
        return (x * f).clamp(0.0, 1.0)
    if name == "color":
        return _blend(x, _grey(x), f)
    if name == "contrast":
        return _blend(x, _grey(x).mean((1, 2, 3), keepdim=True).expand_as(x), f)
    if name == "equalize":
        return _equalize(x)
    if name == "posterize":
        step = torch.exp2(torch.round(4.0 * v).to(x.dtype)).view(-1, 1, 1, 1)
        return torch.floor(x * 255.0 / step) * step / 255.0
    if name == "sharpness":
        return _blend(x, _smooth(x), f)
    if name == "solarize":
        return torch.where(x >= (1.0 - v).to(x.dtype).view(-1, 1, 1, 1), 1.0 - x, x)
    raise KeyError(name)


def _one_slot(x: Tensor, op: Tensor, on: Tensor, v: Tensor, s: Tensor) -> Tensor:
    """Apply each image's op of one slot (``op`` index into :data:`OPS`, ``on`` whether it acts): each
    operation runs on the rows that drew it only (one gather and one scatter per operation)."""
    op = torch.where(on, op, torch.zeros_like(op))  # off: identity
    order = torch.argsort(op, stable=True)
    counts = torch.bincount(op, minlength=len(OPS)).tolist()  # one host sync per slot
    out = x.clone()
    start = 0
    for k, count in enumerate(counts):
        rows, start = order[start:start + count], start + count
        name = OPS[k]
        if count == 0 or name == "identity":
            continue
        xs, vs, ss = x.index_select(0, rows), v.index_select(0, rows), s.index_select(0, rows)
        if name in _GEOMETRIC:
            theta = _affine(op.index_select(0, rows), (ss * vs).to(x.dtype))
            grid = F.affine_grid(theta, list(xs.shape), align_corners=False)
            ys = F.grid_sample(xs, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        else:
            ys = _colour(name, xs, vs, ss)
        out.index_copy_(0, rows, ys)
    return out


class RandAugment(Augmentation):
    """RandAugment with ``n`` operations per image, each applied with probability 1/2, then Cutout of
    a ``cutout`` share of the height (see the module's docstring). ``draw``: ``op``, ``on``,
    ``mag``, ``sign`` (``[n_images, n]``), ``cy``, ``cx`` (``[n_images]``)."""

    def __init__(self, n: int = 2, cutout: float = 0.5):
        self.n, self.cutout = n, cutout

    def draw(self, n, shape, generator, device):
        h, w = shape[-2:]
        k = self.n
        return {"op": torch.randint(len(OPS), (n, k), generator=generator, device=device),
                "on": torch.rand(n, k, generator=generator, device=device) < 0.5,
                "mag": torch.randint(1, 11, (n, k), generator=generator, device=device).float() / 10.0,
                "sign": torch.randint(0, 2, (n, k), generator=generator, device=device).float() * 2.0 - 1.0,
                "cy": torch.randint(h, (n,), generator=generator, device=device),
                "cx": torch.randint(w, (n,), generator=generator, device=device)}

    def apply(self, x, params):
        for j in range(params["op"].shape[1]):
            x = _one_slot(x, params["op"][:, j], params["on"][:, j], params["mag"][:, j], params["sign"][:, j])
        return _cutout(x, params["cy"], params["cx"], int(round(self.cutout * x.shape[-2])))


def _cutout(x: Tensor, cy: Tensor, cx: Tensor, size: int) -> Tensor:
    """A ``size`` x ``size`` square (clipped at the border) centred at ``(cy, cx)`` set to grey 0.5."""
    if size <= 0:
        return x
    h, w = x.shape[-2:]
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    top, left = (cy - size // 2).view(-1, 1, 1), (cx - size // 2).view(-1, 1, 1)
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return torch.where(inside.unsqueeze(1), torch.full_like(x, 0.5), x)


#: FixMatch's strong augmentation: RandAugment (2 operations) + Cutout of half the height
randaugment = RandAugment(n=2, cutout=0.5)
