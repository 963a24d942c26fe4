"""The CPU allocator setting: applied once, only where it can be, never required."""

import sys

from bgr_core import memory
from bgr_core.pipeline import Pipeline


def test_keep_freed_memory_is_idempotent_and_reports_what_it_did():
    first = memory.keep_freed_memory()
    assert isinstance(first, bool)
    assert memory.keep_freed_memory() is first
    if sys.platform.startswith("linux"):
        import platform

        if platform.libc_ver()[0] == "glibc":
            assert first is True


def test_pipeline_applies_it_only_when_asked(monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "keep_freed_memory", lambda: calls.append(1) or True)
    Pipeline(device="cpu", keep_freed_memory=False)
    assert calls == []
    Pipeline(device="cpu")
    assert calls == [1]


def test_not_glibc_is_a_no_op(monkeypatch):
    monkeypatch.setattr(memory.sys, "platform", "darwin")
    assert memory.apply_malloc_settings() is False
