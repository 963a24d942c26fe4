"""notebooks/explore.ipynb runs headless, every cell, without an error.

Executed with nbclient in a kernel of this very interpreter (ipykernel installed in the
same environment), from notebooks/ so its relative paths work as in Jupyter. Skips
only when nbclient is not installed (``pip install ".[test]"`` brings it).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore.ipynb"

nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed: pip install '.[test]' or '.[notebook]'")
nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed: pip install '.[test]' or '.[notebook]'")


def _read():
    return nbformat.read(NOTEBOOK, as_version=4)


def test_notebook_is_committed_without_outputs():
    nb = _read()
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"clear the outputs of code cells {dirty} before committing"


def test_notebook_runs_without_errors(monkeypatch, capsys):
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # silences jupyter_core's path-migration warning
    nb = _read()
    client = nbclient.NotebookClient(
        nb,
        timeout=600,  # per cell
        kernel_name="python3",  # jupyter_client starts it with sys.executable: this environment
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},  # the kernel's working directory
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, on the first failing cell
    elapsed = time.perf_counter() - start
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    # the stage figures and results really displayed as images
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 6, f"expected the notebook to show images, got {len(images)}"
    with capsys.disabled():
        sys.stderr.write(f"\n[notebook] explore.ipynb ran in {elapsed:.1f} s\n")
