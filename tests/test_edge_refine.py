"""bgr_core.functional.edge_refine and models.edge_refiner: the band around the outline,
patches aligned with their pixels, an untrained refiner is the identity, a refiner only
ever changes the band, and a soft photo is refined where its edges are sharp."""

from __future__ import annotations

import pytest
import torch

from bgr_core.functional.edge_refine import edge_band, edge_reduction, gather_patches, refine_edges
from bgr_core.models.edge_refiner import EdgeRefinerNet


def _disc(h: int = 40, w: int = 50, r: float = 12.0) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return ((yy - 20.0) ** 2 + (xx - 25.0) ** 2 <= r * r).float()[None]


def test_band_is_the_outline_grown_by_radius():
    alpha = _disc()
    band = edge_band(alpha, 2)
    inside = alpha[0] >= 0.5
    dist_in = torch.cdist(torch.nonzero(inside).float(), torch.nonzero(~inside).float()).min(dim=1).values
    # every band pixel inside the disc is within 2 px (square window: 2*sqrt(2)) of the outside
    assert band.shape == (40, 50)
    assert (dist_in[band[inside]] <= 2 * 2**0.5 + 1e-6).all()
    assert band[20, 25 - 12] and band[20, 25 + 12] and not band[20, 25] and not band[0, 0]
    # soft pixels far from the 0.5 level are in the band only when asked
    soft = alpha.clone()
    soft[0, 20, 25] = 0.7
    assert not edge_band(soft, 1)[20, 25] and edge_band(soft, 1, soft=(0.02, 0.98))[20, 25]


def test_patches_are_centred_on_their_pixels():
    image = torch.rand(3, 30, 40)
    alpha = torch.rand(1, 30, 40)
    ys, xs = torch.tensor([0, 5, 29, 17]), torch.tensor([0, 39, 12, 20])
    p = gather_patches(image, alpha, ys, xs, 5)
    assert p.shape == (4, 4, 5, 5) and p.dtype == torch.float32 and p.is_contiguous()
    for k, (y, x) in enumerate(zip(ys.tolist(), xs.tolist())):
        assert torch.equal(p[k, :3, 2, 2], image[:, y, x]) and p[k, 3, 2, 2] == alpha[0, y, x]
    # an inner pixel's patch is the plain window; at the border the edge is replicated
    assert torch.equal(p[3, :3], image[:, 15:20, 18:23])
    assert torch.equal(p[0, :3, 0, 0], image[:, 0, 0]) and torch.equal(p[1, :3, 4, 4], image[:, 7, 39])


def test_untrained_refiner_is_the_identity_and_shapes_are_checked():
    net = EdgeRefinerNet(patch=7, hidden=(8,)).eval()
    alpha = _disc() * 0.9 + 0.05
    image = torch.rand(3, 40, 50)
    with torch.no_grad():
        out = refine_edges(image, alpha, net, radius=2, smooth=0)
    assert torch.allclose(out, alpha.clamp(0.005, 0.995), atol=1e-6)
    with pytest.raises(ValueError, match=r"\(N, 4, 7, 7\)"):
        net(torch.zeros(2, 4, 5, 5))
    with pytest.raises(ValueError, match="odd"):
        EdgeRefinerNet(patch=6)


def _bright_is_vehicle() -> EdgeRefinerNet:
    """A refiner that answers 'bright is vehicle': the centre pixel's red against its
    patch's mean, strongly."""
    net = EdgeRefinerNet(patch=5, hidden=(4,), radius=4).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        # hidden unit 0 = centre pixel's red relative to the patch mean
        w = torch.zeros(4, 5, 5)
        w[0, 2, 2] = 1.0
        w[0] -= 1.0 / 25
        net.body[0].weight[0] = w.flatten() * 4.0
        net.body[0].weight[1] = -w.flatten() * 4.0
        net.out.weight[0, 0], net.out.weight[0, 1] = 40.0, -40.0
    return net


def _errors(alpha: torch.Tensor, truth: torch.Tensor) -> int:
    return int(((alpha >= 0.5) != (truth >= 0.5)).sum())


def test_refiner_changes_only_the_band_and_follows_the_photo():
    """A refiner that answers 'bright is vehicle' moves a matte that is 3 px too large
    back onto a bright disc, and leaves pixels off the band untouched."""
    net = _bright_is_vehicle()
    truth = _disc(r=10.0)
    image = truth.repeat(3, 1, 1) * 0.8 + 0.1
    coarse = _disc(r=13.0)
    out = refine_edges(image, coarse, net)
    band = edge_band(coarse, net.radius)
    assert torch.equal(out[0][~band], coarse[0][~band])
    assert _errors(out, truth) < _errors(coarse, truth) / 4


def _soft(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """(C, H, W) blurred by a Gaussian of `sigma` px (a soft or enlarged photo)."""
    import torchvision.transforms.v2.functional as TF

    return TF.gaussian_blur(image[None], [int(6 * sigma) | 1] * 2, [sigma, sigma])[0]


def test_reduction_follows_the_photos_sharpness_not_its_size():
    truth = _disc(160, 200, 40.0)
    truth = torch.roll(truth, shifts=(60, 75), dims=(1, 2))  # centred at (80, 100)
    sharp = truth.repeat(3, 1, 1) * 0.8 + 0.1
    assert edge_reduction(sharp, truth) == 1  # large and sharp: refined at full size
    soft = [edge_reduction(_soft(sharp, s), truth) for s in (2.0, 4.0)]
    assert 2 <= soft[0] <= soft[1] and soft[1] >= 4
    assert edge_reduction(_soft(sharp, 4.0), truth, max_factor=2) == 2
    assert edge_reduction(sharp, torch.zeros_like(truth)) == 1  # no outline


def test_soft_photo_is_refined_where_its_edges_are_sharp():
    """On a photo blurred over ~10 px, a matte 12 px too large: at full size the band and
    the patches see only a slope; on the reduced copy the refiner pulls the matte back,
    and only pixels near the outline change."""
    net = _bright_is_vehicle()
    truth = torch.roll(_disc(160, 200, 40.0), shifts=(60, 75), dims=(1, 2))
    image = _soft(truth.repeat(3, 1, 1) * 0.8 + 0.1, 4.0)
    coarse = torch.roll(_disc(160, 200, 52.0), shifts=(60, 75), dims=(1, 2))
    factor = edge_reduction(image, coarse)
    assert factor >= 4
    with torch.no_grad():
        full, reduced = refine_edges(image, coarse, net), refine_edges(image, coarse, net, reduce=factor)
    assert reduced.shape == coarse.shape and reduced.dtype == coarse.dtype
    assert float(reduced.min()) >= 0.0 and float(reduced.max()) <= 1.0
    assert _errors(reduced, truth) < _errors(coarse, truth) / 3
    assert _errors(reduced, truth) < _errors(full, truth) / 2
    # the change is carried up only around the outline: the band of the reduced copy
    near = edge_band(coarse, factor * (net.radius + 3))
    assert torch.equal(reduced[0][~near], coarse[0][~near])


def test_dilated_patches_sample_a_smoothed_image_every_other_pixel():
    from bgr_core.functional.guided_filter import box_filter

    image = torch.rand(3, 30, 40)
    alpha = torch.rand(1, 30, 40)
    ys, xs = torch.tensor([15, 0]), torch.tensor([20, 39])
    p = gather_patches(image, alpha, ys, xs, 5, dilation=2)
    smooth = box_filter(torch.cat([image, alpha])[None], 1)[0]
    assert p.shape == (2, 4, 5, 5)
    assert torch.allclose(p[0], smooth[:, 11:20:2, 16:25:2])
    assert torch.allclose(p[1, :, 2, 2], smooth[:, 0, 39])  # centred on its pixel at the border too


def test_refiner_with_two_scales_takes_both_patches():
    net = EdgeRefinerNet(patch=5, hidden=(8,), dilations=(1, 2)).eval()
    assert net.body[0].in_features == 2 * 4 * 25
    with torch.no_grad():
        out = refine_edges(torch.rand(3, 40, 50), _disc(), net, smooth=0)
    assert out.shape == (1, 40, 50)
    with pytest.raises(ValueError, match="start with 1"):
        EdgeRefinerNet(dilations=(2,))


@pytest.mark.parametrize("dilations", [(1,), (1, 2)])
def test_net_reads_colours_relative_to_the_patch_mean(dilations):
    torch.manual_seed(0)
    net = EdgeRefinerNet(patch=5, hidden=(8, 4), dilations=dilations).eval()
    for p in net.parameters():  # a net that is not the identity
        torch.nn.init.normal_(p, std=0.3)
    s = len(dilations)
    patches = torch.rand(64, 4 * s, 5, 5, dtype=torch.float64)
    net = net.double()
    with torch.no_grad():
        out = net(patches)
        # the normalisation written out: colours minus their patch mean, times 4; alpha to [-1, 1]
        grouped = patches.reshape(64, s, 4, 5, 5)
        rgb, alpha = grouped[:, :, :3], grouped[:, :, 3:]
        x = torch.cat([(rgb - rgb.mean(dim=(3, 4), keepdim=True)) * 4.0, alpha * 2.0 - 1.0], dim=2).flatten(1)
        centre = alpha[:, 0, 0, 2, 2].clamp(0.005, 0.995)
        expected = torch.sigmoid(torch.logit(centre) + net.out(net.body(x))[:, 0])
        assert torch.allclose(out, expected, atol=1e-12)
        # a colour cast over a whole patch changes nothing
        shifted = grouped.clone()
        shifted[:, :, :3] += torch.rand(64, s, 3, 1, 1, dtype=torch.float64)
        assert torch.allclose(net(shifted.reshape(64, 4 * s, 5, 5)), out, atol=1e-12)
        assert (out - centre).abs().max() > 0.01
