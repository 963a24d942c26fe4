"""`Pipeline(components=...)`: named parts replace the ones the pipeline would build."""

import pytest
import torch

from bgr_core import Pipeline
from bgr_core.stages.plates import PlateDetection
from bgr_core.testing import synthetic_car_scene


def test_unknown_components_are_refused():
    with pytest.raises(ValueError, match="unknown component"):
        Pipeline("cpu", components={"segmenter": object()})


def test_segment_and_plate_detector_are_used(cpu_pipeline):
    scene = synthetic_car_scene(240, 320, seed=2)
    calls = []

    class Recording:
        name = "segment"

        def __call__(self, frames):
            calls.append(len(frames))
            return cpu_pipeline.segment(frames)

    class OnePlate:
        def detect(self, image, alpha=None, box=None):
            return [PlateDetection(torch.tensor([[100, 150], [140, 150], [140, 160], [100, 160]]), 0.9)]

    pipe = Pipeline("cpu", components={"segment": Recording(), "plate_detector": OnePlate()})
    r = pipe.remove_background(image_file=scene.image, plate_replacement="blank", effect="none")
    assert r.ok and calls == [1]
    assert r.plate_quads.shape == (1, 4, 2)
    assert abs(r.plate_quads[0, 0, 0] - 100) < 1e-3 and abs(r.plate_quads[0, 2, 1] - 160) < 1e-3


def test_a_sam_component_makes_auto_use_it(cpu_pipeline):
    seen = []

    class Sam:
        name = "sam"

        def __call__(self, frames):
            seen.append(len(frames))
            return frames

    pipe = Pipeline("cpu", components={"segment": cpu_pipeline.segment, "sam": Sam()})
    assert pipe.sam_configured()
    r = pipe.remove_background(image_file=synthetic_car_scene(240, 320, seed=2).image)
    assert r.ok and seen == [1]
