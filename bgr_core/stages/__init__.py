"""Stages: small objects with ``__call__(frames) -> frames``, configured in their constructor."""

from .base import Stage

__all__ = ["Stage"]
