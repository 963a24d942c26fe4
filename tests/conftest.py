from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def cpu_pipeline():
    from bgr_core import Pipeline

    return Pipeline("cpu", batch_size=4)


@pytest.fixture(scope="session")
def fast_pipeline():
    """A CPU Pipeline whose segment stage runs U2NetP once at 96 px (no flip, no crop
    pass): for tests about sharing, files, inputs and errors, not matte quality."""
    from bgr_core import Pipeline
    from bgr_core.stages.segment import VehicleMatte

    net = Pipeline("cpu").segment.net
    return Pipeline("cpu", components={"segment": VehicleMatte(net, net_size=96, flip=False, crop_pass=False)})
