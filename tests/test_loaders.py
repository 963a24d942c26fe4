"""bgr_core.loaders: the weight files that are data (not nets)."""

import json

import pytest

from bgr_core import loaders


def test_matte_confidence_per_net(tmp_path):
    shipped = {name: loaders.load_matte_confidence(name) for name in loaders.MATTE_MODELS}
    assert shipped["u2netp_vehicle_half"] == 0.75 and shipped["u2netp_vehicle"] == 0.8
    assert shipped["u2netp"] == 0.0  # the generic net is no vehicle detector: no test
    own = tmp_path / "confidence.json"
    own.write_text(json.dumps({"min_confidence": {"u2netp": 0.5}}))
    assert loaders.load_matte_confidence("u2netp", own) == 0.5
    assert loaders.load_matte_confidence("u2netp_vehicle_half", own) == 0.0


@pytest.mark.parametrize("content", [{"min_confidence": {"u2netp": 1.5}}, {"weights": {}}, [0.8]])
def test_matte_confidence_rejects_other_files(tmp_path, content):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(content))
    with pytest.raises(ValueError, match="not a matte confidence file"):
        loaders.load_matte_confidence("u2netp", bad)


def test_nets_first_loaded_in_inference_mode_are_plain_tensors():
    # a notebook wrapping its calls in torch.inference_mode() used to load (and cache) the
    # nets as inference tensors, whose version counters the fused convolutions' weight
    # copies read: every later photo failed with request_failed, inside the mode or not
    import numpy as np
    import torch

    from bgr_core import Pipeline
    from bgr_core.testing import synthetic_car_scene

    loaders.clear_cache()
    image = synthetic_car_scene(200, 300, seed=1).image
    try:
        with torch.inference_mode():
            nets = [loaders.load_matte_net(), loaders.load_edge_refiner(), loaders.load_glass_cues()]
            inside = Pipeline("cpu").remove_background(image_file=image)
        assert not any(p.is_inference() for net in nets for p in net.parameters())
        outside = Pipeline("cpu").remove_background(image_file=image)
        assert inside.ok and outside.ok, (inside.error_description, outside.error_description)
        assert np.array_equal(inside.array, outside.array)
    finally:
        loaders.clear_cache()  # later tests load their nets afresh
