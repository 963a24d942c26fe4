"""bgr_core.loaders: the weight files that are data (not nets)."""

import json

import pytest

from bgr_core import loaders


def test_matte_confidence_per_net(tmp_path):
    shipped = {name: loaders.load_matte_confidence(name) for name in loaders.MATTE_MODELS}
    assert shipped["u2netp_vehicle_half"] == shipped["u2netp_vehicle"] == 0.8
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
