"""The stage protocol: a small object with ``__call__(frames) -> frames`` over a batch."""

from __future__ import annotations

from typing import Sequence

from ..frame import Frame

__all__ = ["Stage", "FrameStage"]


class Stage:
    """Base of every stage. Subclasses set `name` and implement `__call__`.

    A stage is configured in its constructor, takes a batch of frames and returns a
    list of the same length and order. It must not mutate the frames it was given.
    """

    name: str = "stage"

    def __call__(self, frames: Sequence[Frame]) -> list[Frame]:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class FrameStage(Stage):
    """A stage that treats each frame on its own: subclasses implement `process`.

    Frames that carry an `error` pass through untouched.
    """

    def process(self, frame: Frame) -> Frame:  # pragma: no cover
        raise NotImplementedError

    def __call__(self, frames: Sequence[Frame]) -> list[Frame]:
        return [f if f.error is not None else self.process(f) for f in frames]
