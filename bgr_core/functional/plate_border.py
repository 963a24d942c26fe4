"""The outer border of a licence plate: its quad grown over the plate's own frame, rims
and banners, so that a replacement covers all of the old plate.

A detector finds the plate's printed field (where the characters are); around it many
plates carry a coloured rim, a state banner above or a dealer frame. `outer_border`
rectifies a band around the quad with its homography and, on each side, walks outwards
row by row (column by column for the sides) while the band still differs from the
surface the plate sits on (the outermost rows of the band), up to a limit per side.

Torch on the input's device; quads are (4, 2) pixel points (x, y), clockwise from the
top-left, origin top-left.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .quad_warp import apply_homography, get_perspective_transform, quad_aspect

__all__ = ["outer_border", "GROW_LIMITS", "GROW_MIN"]

# the most a side may grow: (left, top, right, bottom) as shares of the plate's width
# (left, right) and height (top, bottom): banners sit above, frames' lettering below
GROW_LIMITS = (0.1, 0.3, 0.1, 0.22)
# always grown by this much: the old plate's outline, its anti-aliased rim and blur
GROW_MIN = (0.015, 0.05, 0.015, 0.05)
_HEIGHT = 48  # the rectified plate's height in samples


def _rectified(image: torch.Tensor, quad: torch.Tensor, width: int, margins: tuple[int, int, int, int]):
    """Sample the band around `quad`: (3, Hp + top + bottom, Wp + left + right) and the
    homography from that band's pixel centres to image pixels."""
    left, top, right, bottom = margins
    h, w = _HEIGHT, width
    rect = torch.tensor([[left, top], [left + w, top], [left + w, top + h], [left, top + h]], dtype=torch.float64)
    to_image = get_perspective_transform(rect, quad.double().cpu())
    H, W = h + top + bottom, w + left + right
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float64) + 0.5, torch.arange(W, dtype=torch.float64) + 0.5,
                            indexing="ij")
    pts = apply_homography(to_image, torch.stack([xs, ys], -1).reshape(-1, 2)).reshape(H, W, 2)
    ih, iw = image.shape[-2:]
    grid = torch.stack([pts[..., 0] / iw * 2 - 1, pts[..., 1] / ih * 2 - 1], -1).to(image.device, torch.float32)
    band = F.grid_sample(image[None].float(), grid[None], mode="bilinear", padding_mode="border", align_corners=False)[0]
    return band, to_image


def _walk(profile: torch.Tensor, limit: int, minimum: int, threshold: float) -> int:
    """How far to grow along `profile` (N,) (0 = at the plate's edge, N - 1 = outermost):
    the first step from `minimum` on where the band looks like the surface again, plus
    one for the blended step between them."""
    for d in range(minimum, min(limit, len(profile))):
        if float(profile[d]) <= threshold:
            return min(d + 1, limit)
    return min(limit, len(profile))


def outer_border(
    image: torch.Tensor,
    quad: torch.Tensor,
    *,
    limits: tuple[float, float, float, float] = GROW_LIMITS,
    minimum: tuple[float, float, float, float] = GROW_MIN,
    threshold: float = 0.12,
) -> torch.Tensor:
    """`quad` (4, 2) grown to the plate's outer border, (4, 2) float64 on the CPU.

    image: (3, H, W) RGB in [0, 1]. On each side the band outside the plate is compared,
    row by row, with the surface the plate is mounted on (the median colour of the band's
    outermost fifth on that side): the mean colour distance of a row's pixels to it
    (Euclidean RGB) above `threshold` (or 1.5 times the surface's own spread, for a
    textured surface) means the row is still the plate's rim, banner or frame (their
    lettering counts too). Each side grows at least `minimum` and at most
    `limits` (left, top, right, bottom: shares of the plate's width or height).
    """
    aspect = quad_aspect(quad)
    if not aspect > 0.05:
        return quad.double().cpu()
    width = max(8, round(_HEIGHT * aspect))
    lim = [round(limits[0] * width), round(limits[1] * _HEIGHT), round(limits[2] * width), round(limits[3] * _HEIGHT)]
    # search a little beyond the limit, so the surface's colour is seen past it
    margins = tuple(max(3, round(1.4 * m)) for m in lim)
    band, to_image = _rectified(image, quad, width, margins)
    left, top, right, bottom = margins
    h, w = _HEIGHT, width
    span_x, span_y = slice(left, left + w), slice(top, top + h)

    def side(strip: torch.Tensor, outer: int, limit: int, least: float, size: int) -> int:
        """strip: (3, N, M), index 0 next to the plate; rows of N are the steps outwards."""
        far = strip[:, -max(1, outer // 4):].reshape(3, -1)
        ref = far.median(dim=1).values.view(3, 1, 1)
        # a textured surface (grille, lettering on the bumper) needs a larger difference
        spread = float((far - ref.view(3, 1)).pow(2).sum(0).sqrt().mean())
        dist = (strip - ref).pow(2).sum(0).sqrt().mean(1)  # (N,)
        return _walk(dist, limit, round(least * size), max(threshold, 1.5 * spread))

    grow_top = side(band[:, :top, span_x].flip(1), top, lim[1], minimum[1], h)
    grow_bottom = side(band[:, top + h :, span_x], bottom, lim[3], minimum[3], h)
    grow_left = side(band[:, span_y, :left].flip(2).transpose(1, 2), left, lim[0], minimum[0], w)
    grow_right = side(band[:, span_y, left + w :].transpose(1, 2), right, lim[2], minimum[2], w)
    x0, y0 = left - grow_left, top - grow_top
    x1, y1 = left + w + grow_right, top + h + grow_bottom
    rect = torch.tensor([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=torch.float64)
    return apply_homography(to_image, rect)
