"""The whole pipeline's outputs on the shared photos match the golden ones written by
`tools/golden_outputs.py --write` (shape exact, 24 x 24 block means within 2 levels; the
tool's `--check` compares every output bit for bit on the machine that wrote them)."""

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import golden_outputs as G  # noqa: E402


@pytest.fixture(scope="module")
def outputs(shared_data):
    return G.run(shared_data)


def test_every_case_matches_its_golden(outputs):
    golden = np.load(G.GOLDEN)
    assert len(outputs) == 40
    for name, array in outputs.items():
        stored = str(golden[f"{name}|sha256"])
        if array.ndim == 0:  # an error code: the same error
            assert stored.endswith("()") and f"{name}|blocks" not in golden, name
            continue
        assert stored.endswith(str(array.shape)), (name, stored, array.shape)
        diff = np.abs(G.block_means(array).astype(int) - golden[f"{name}|blocks"].astype(int))
        assert diff.max() <= 2, (name, diff.max())
