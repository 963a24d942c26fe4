"""Measurements and scores of plate candidates (numpy / OpenCV, CPU).

`measure` gives a candidate quad's features (`FEATURES` and a few more); `logistic_score`
turns them into a probability with the fitted gated logistic model (its weights are data:
``weights/plate_logistic.json``, `bgr_core.loaders.load_plate_logistic`) plus fixed
priors; `plate_patch` and `scorer_features` are the inputs of the learned scorer.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .plate_geometry import is_convex, quad_mask, quad_values, side_lengths, soft
from .plate_search import PlateWork, quad_sides, sample

__all__ = ["FEATURES", "GATE", "SCORER_EXTRA", "measure", "split_evidence", "logistic_logit", "logistic_score",
           "logit", "foreshortening", "prior_logit", "aspect_logit", "plate_patch", "scorer_features"]

# features of a candidate quad, in the order of FEATURES
FEATURES = (
    "edge_min", "edge_2nd", "edge_mean", "cont_min", "cont_mean", "mode1", "two_tone", "texture",
    "inout", "log_width", "log_width2", "cy", "cy2", "matte", "tilt", "lean", "para", "lr_out_tex", "tb_out_tex",
    "split",
)

# The score is a gated logistic model: two sets of weights over FEATURES (+ bias), one
# for plates with a smooth inside (blurred or blank) and one for plates with legible
# characters, blended by the inside's texture (`GATE`: the texture feature's ramp).
# Fitted with `tools/fit_plate_logistic.py` (see that script for the data); an empty
# weights are data: ``weights/plate_logistic.json``.
GATE = (0.45, 0.75)

# the learned scorer's hand features after FEATURES
SCORER_EXTRA = ("aspect", "off_centre", "oblique", "prior", "old_logit")


def measure(work: PlateWork, q: np.ndarray, aspect_range: tuple[float, float] = (0.5, 7.0)) -> dict | None:
    """Measurements of candidate `q` (None when it cannot be a plate at all)."""
    if not is_convex(q):
        return None
    sides = side_lengths(q)
    width = (sides[0] + sides[2]) / 2
    height = (sides[1] + sides[3]) / 2
    if height < 5 or width < 10:
        return None
    aspect = width / height
    lo, hi = aspect_range
    if not (lo <= aspect <= hi):
        return None
    d = np.roll(q, -1, axis=0) - q
    ang = np.degrees(np.arctan2(d[:, 1], d[:, 0]))  # top ~0, right ~90, bottom ~+-180, left ~-90
    top, right = ang[0], ang[1]
    bottom = ang[2] - 180 if ang[2] > 0 else ang[2] + 180
    left = ang[3] + 180
    tilt = max(abs(top), abs(bottom))
    lean = max(abs(90 - left), abs(90 - right))
    para = max(abs(top - bottom), abs(left - right))
    if tilt > 40 or lean > 45 or para > 35:
        return None
    vx0, vy0, vx1, vy1 = work.vehicle
    vw, vh = vx1 - vx0, vy1 - vy0
    wf = width / vw
    cx = (float(q[:, 0].mean()) - vx0) / vw
    cy = (float(q[:, 1].mean()) - vy0) / vh
    oblique = soft(vw / max(vh, 1e-6), 1.15, 1.6) if work.has_box else 0.5
    off = abs(cx - 0.5)
    if not work.has_box:
        cy, off = 0.7, 0.0  # nothing known about the vehicle: neutral values
    matte = 1.0
    if work.alpha is not None:
        m = quad_values(work.alpha, q)
        matte = float(m.mean()) if m.size else 0.0
    inner = quad_mask(work.gray.shape, q, shrink=0.18)
    # outline evidence on each side: a step (or a thin line) along it
    r = float(np.clip(0.15 * height, 2.0, 8.0))
    base, n = quad_sides(q, np.linspace(0.15, 0.85, 17))
    offs = np.array([-r, -1.0, 0.0, 1.0, r])
    v = sample(work.smooth, base[:, :, None, :] + offs[None, None, :, None] * n[:, None, None, :])
    inside, outside = v[..., 0], v[..., 4]
    on_max, on_min = v[..., 1:4].max(-1), v[..., 1:4].min(-1)
    step = outside - inside
    mid = (outside + inside) / 2
    line = np.where(np.abs(on_max - mid) > np.abs(on_min - mid), on_max - mid, on_min - mid)
    # a side may change polarity along its length (a grey plate half on a white bumper,
    # half on a black grille): the unsigned step counts too, a little less than a signed one
    st = np.maximum(np.abs(np.median(step, axis=1)), 0.7 * np.median(np.abs(step), axis=1))
    ln = np.abs(np.median(line, axis=1))
    use_step = st >= ln
    prof = np.where(use_step[:, None], step, line)
    strength = np.where(use_step, st, ln)
    conts = (np.abs(prof) > np.maximum(0.4 * strength[:, None], 3.0)).mean(1)
    ev = np.sort(strength)
    # inside: one tone (a blurred or blank plate) or two (paint and characters)
    if inner is None or int(inner[2].sum()) < 10:
        return None
    y0, x0, mask = inner
    sl = (slice(y0, y0 + mask.shape[0]), slice(x0, x0 + mask.shape[1]))
    vals = work.smooth[sl][mask]
    hist = np.bincount(np.clip(vals, 0, 255).astype(np.int32) >> 3, minlength=32)
    win = np.convolve(hist, np.ones(3), mode="same") / vals.size
    k1 = int(np.argmax(win))
    mode1 = float(win[k1])
    rest = win.copy()
    rest[max(0, k1 - 3) : k1 + 4] = 0
    two_tone = mode1 + float(rest.max())
    gin = np.abs(work.gx[sl][mask]) + np.abs(work.gy[sl][mask])
    texture = float(gin.mean()) / (float(ev.mean()) / max(r, 1.0) + 1.0)
    ring = sample(work.smooth, base + n[:, None, :] * (r + 2)).ravel()
    inout = abs(float(np.median(vals)) - float(np.median(ring))) / 64.0
    # just outside a plate is paint, not more characters: a side drawn through a row of
    # characters (part of a plate) has texture beyond it
    band = sample(work.smooth, base[:, :, None, :] + (np.array([1.2, 1.8, 2.4]) * r)[None, None, :, None]
                        * n[:, None, None, :])
    out_std = band.reshape(4, -1).std(1) / (strength + 8.0)
    lr_out_tex = float(max(out_std[1], out_std[3]))
    tb_out_tex = float(max(out_std[0], out_std[2]))
    split = split_evidence(work, q, float(ev.mean()))
    return dict(
        edge_min=math.log1p(float(ev[0])), edge_2nd=math.log1p(float(ev[1])), edge_mean=math.log1p(float(ev.mean())),
        cont_min=float(conts.min()), cont_mean=float(conts.mean()), mode1=mode1, two_tone=two_tone,
        texture=texture, inout=inout, aspect=aspect,
        log_width=math.log(wf), log_width2=math.log(wf / ((0.25 - 0.13 * oblique) * foreshortening(aspect))) ** 2, cy=cy, cy2=(cy - 0.75) ** 2,
        off_centre=off, oblique=oblique, matte=matte, tilt=tilt / 30, lean=lean / 30,
        para=para / 30, lr_out_tex=lr_out_tex, tb_out_tex=tb_out_tex, split=split,
    )


def split_evidence(work: PlateWork, q: np.ndarray, edge: float) -> float:
    """Evidence that `q` is two regions side by side (a plate and the bumper, grille or
    lamp beside it, or two panels) rather than one plate: the strongest straight step
    along a line across the inside from the top side to the bottom one, parallel to the
    left and right sides (the mean derivative across the line over its whole length, so
    that characters, which are short and alternate, average out), over the outline's
    own strength. A box drawn from one side of a plate to some edge of the bodywork
    holds the plate's far side inside it. Lines parallel to the top and bottom are not
    measured: a plate with characters (or a coloured strip) has a horizontal step inside."""
    ts = np.linspace(0.2, 0.8, 9)
    ss = np.linspace(0.08, 0.92, 11)
    a0, a1, b0, b1 = q[0], q[1], q[3], q[2]
    # lines from a point on the top side (a0 -> a1 at t) to the bottom side (b0 -> b1 at t)
    p0 = a0[None] + ts[:, None] * (a1 - a0)[None]
    p1 = b0[None] + ts[:, None] * (b1 - b0)[None]
    d = (a1 - a0 + b1 - b0) / 2
    n = d / max(float(np.linalg.norm(d)), 1e-9)  # across the lines
    pts = p0[:, None, :] + ss[None, :, None] * (p1 - p0)[:, None, :]
    g = sample(work.gx, pts) * n[0] + sample(work.gy, pts) * n[1]
    return float(np.abs(g.mean(1)).max()) / (edge + 4.0)


def logistic_logit(feats: dict, weights: dict[str, dict[str, float]]) -> float:
    """The gated linear model's logit: the "smooth" and "text" weight sets blended by the
    inside's texture (`GATE`)."""
    g = soft(feats["texture"], *GATE)
    z = 0.0
    for part, share in (("smooth", 1.0 - g), ("text", g)):
        if share > 0:
            w = weights[part]
            z += share * (w.get("bias", 0.0) + sum(w.get(k, 0.0) * feats[k] for k in FEATURES))
    return z


def logistic_score(feats: dict, weights: dict[str, dict[str, float]], aspect_range: tuple[float, float] = (0.5, 7.0),
                   lenient: bool = False) -> float:
    """Probability that the measured candidate is a plate (better than "no plate"):
    `logistic_logit` plus `prior_logit`; `lenient` ignores the shape features."""
    if lenient:
        feats = dict(feats, tilt=0.0, lean=0.0, para=0.0)
    z = logistic_logit(feats, weights) + prior_logit(feats, aspect_range)
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def logit(p: float) -> float:
    return math.log(max(p, 1e-12) / max(1.0 - p, 1e-12))


def foreshortening(aspect: float) -> float:
    """How much narrower than it is a plate of apparent aspect `aspect` looks (1: seen
    straight on): plates are at least about 1.7:1, so a squarer one is turned away."""
    return float(min(1.0, max(0.3, aspect / 1.7)))


def prior_logit(feats: dict, limits: tuple[float, float]) -> float:
    """Fixed (not fitted) priors added to the logit: `_aspect_logit`, and a plate near the
    middle of the vehicle box: -2 per tenth of the box width beyond 0.1 off centre, unless
    the view is oblique. A view is taken as oblique from the vehicle box (wider than tall:
    a side or three-quarter view of a saloon) or from the plate itself (apparent aspect
    under 1.3: foreshortened, as in a three-quarter view of a tall vehicle, whose box is
    square); an oblique plate may lie up to 0.5 off centre (the visible end), and a
    foreshortened one off centre is not penalised for its aspect."""
    fore = soft(feats["aspect"], 1.3, 0.8)
    allowed = 0.1 + 0.4 * max(feats["oblique"], fore)
    off = feats["off_centre"]
    aspect = aspect_logit(feats["aspect"], limits)
    if feats["aspect"] < 1.4:
        aspect *= 1.0 - soft(off, 0.12, 0.3)
    return aspect - 20.0 * max(0.0, off - allowed)


def aspect_logit(aspect: float, limits: tuple[float, float]) -> float:
    """A fixed prior on the apparent aspect ratio (added to the logit, not fitted: the
    labelled plates are mostly 1.4-2:1 and would teach the fit to reject 4.7:1 EU plates):
    flat from 1.4 to 5.5, falling to -3 at the lower limit (oblique or square plates) and
    to -4 at the upper one."""
    lo, hi = limits
    if aspect < 1.4:
        return -3.0 * math.log(1.4 / aspect) / math.log(1.4 / lo)
    if aspect > 5.5:
        return -4.0 * math.log(aspect / 5.5) / math.log(hi / 5.5)
    return 0.0


def plate_patch(rgb: np.ndarray, alpha: np.ndarray | None, quad: np.ndarray, size: tuple[int, int] = (96, 48),
                context: tuple[float, float] = (2.0, 3.0)) -> np.ndarray:
    """The candidate `quad` (4, 2) (pixel-edge coordinates on `rgb`) rectified by homography
    with its surroundings: the quad widened `context[0]` times and heightened `context[1]`
    times about its centre (in its own frame), warped to `size` (W, H) (sampled at twice the
    size and area-averaged). Returns (4, H, W) float32: RGB in [0, 1] and the vehicle matte
    (1 where `alpha` is None)."""
    w, h = size
    cw, ch = context
    x0, x1 = w * (1 - 1 / cw) / 2, w * (1 + 1 / cw) / 2
    y0, y1 = h * (1 - 1 / ch) / 2, h * (1 + 1 / ch) / 2
    k = 2.0
    src = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64) * k - 0.5
    m = cv2.getPerspectiveTransform(src.astype(np.float32), (np.asarray(quad, np.float64) - 0.5).astype(np.float32))
    big = (int(w * k), int(h * k))
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    chans = [cv2.warpPerspective(rgb, m, big, flags=flags, borderMode=cv2.BORDER_REPLICATE)]
    if alpha is not None:
        a = alpha if alpha.dtype == np.uint8 else (np.clip(alpha, 0, 1) * 255).round().astype(np.uint8)
        chans.append(cv2.warpPerspective(a, m, big, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)[..., None])
    else:
        chans.append(np.full((big[1], big[0], 1), 255, np.uint8))
    stack = np.concatenate(chans, axis=2)
    small = cv2.resize(stack, size, interpolation=cv2.INTER_AREA)
    return small.transpose(2, 0, 1).astype(np.float32) / 255.0


def scorer_features(feats: dict, old_score: float, limits: tuple[float, float]) -> list[float]:
    """The hand features the learned scorer takes: FEATURES, then SCORER_EXTRA."""
    vals = [float(feats[k]) for k in FEATURES]
    vals += [float(feats["aspect"]), float(feats["off_centre"]), float(feats["oblique"]),
             prior_logit(feats, limits), max(-30.0, min(30.0, logit(old_score)))]
    return vals
