"""Where a render keeps a file's frames: in memory, or in a raw scratch file on disk.

``mixpilot render`` streams: the input is decoded from disk in chunks, every
loudness pass is written to a scratch file as it is rendered (and measured on
the way), and the pass that is delivered is read back in chunks by the
encoder, so the process holds a few chunks whatever the file's length
(:func:`realtime.render.render_file`).  :func:`realtime.render.render_array`
(``mixpilot.master``) keeps the same frames in arrays.  Both go through the
same pass loop with the same blocks, so they give the same samples.

A store is written once, in order (:meth:`sink`), then read any number of
times (:meth:`chunks`); writing it again starts it over.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any, Protocol

import numpy as np

__all__ = ["CHUNK_FRAMES", "ArrayFrames", "DiskFrames", "FrameSink", "Frames"]

#: frames per chunk read from or written to disk (1.4 s at 48 kHz; 512 KiB of float32 stereo)
CHUNK_FRAMES = 1 << 16


class FrameSink(Protocol):
    def write(self, block: np.ndarray) -> None: ...

    def close(self) -> None: ...


class Frames(Protocol):
    """Frames of one channel count: ``frames`` long once written; :meth:`chunks` reads them in order."""

    channels: int
    frames: int

    def chunks(self, size: int = CHUNK_FRAMES) -> Generator[np.ndarray, None, None]: ...

    def sink(self, meter: Any = None) -> FrameSink: ...


class ArrayFrames:
    """Frames in an array [frames, channels] (one chunk: the whole array)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.frames = int(array.shape[0])
        self.channels = int(array.shape[1])

    def chunks(self, size: int = CHUNK_FRAMES) -> Generator[np.ndarray, None, None]:
        yield self.array

    def sink(self, meter: Any = None) -> FrameSink:
        return _ArraySink(self.array, meter)


class _ArraySink:
    def __init__(self, array: np.ndarray, meter: Any) -> None:
        self.array = array
        self.meter = meter
        self.pos = 0

    def write(self, block: np.ndarray) -> None:
        self.array[self.pos : self.pos + block.shape[0]] = block
        self.pos += block.shape[0]

    def close(self) -> None:
        if self.meter is not None:
            self.meter.process(self.array[: self.pos])


class DiskFrames:
    """Frames in a raw file of ``dtype`` samples (native byte order, interleaved) at ``path``."""

    def __init__(self, path: str, channels: int, dtype: Any = np.float32) -> None:
        self.path = path
        self.channels = int(channels)
        self.dtype = np.dtype(dtype)
        self.frames = 0

    def chunks(self, size: int = CHUNK_FRAMES) -> Generator[np.ndarray, None, None]:
        buf = np.empty((size, self.channels), dtype=self.dtype)
        left = self.frames
        with open(self.path, "rb") as f:
            while left > 0:
                m = min(size, left)
                view = buf[:m]
                got = f.readinto(view.data.cast("B"))
                if got != view.nbytes:
                    raise OSError(f"{self.path}: scratch file cut short ({got} of {view.nbytes} bytes)")
                left -= m
                yield view  # the same buffer every time: a reader copies what it keeps

    def sink(self, meter: Any = None) -> FrameSink:
        self.frames = 0
        return _DiskSink(self, meter)

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class _DiskSink:
    def __init__(self, store: DiskFrames, meter: Any) -> None:
        self.store = store
        self.meter = meter
        self.buf = np.empty((CHUNK_FRAMES, store.channels), dtype=store.dtype)
        self.held = 0
        self.f: Any = open(store.path, "wb")  # noqa: SIM115 - closed in close()

    def write(self, block: np.ndarray) -> None:
        i, n = 0, block.shape[0]
        while i < n:
            take = min(n - i, CHUNK_FRAMES - self.held)
            self.buf[self.held : self.held + take] = block[i : i + take]
            self.held += take
            i += take
            if self.held == CHUNK_FRAMES:
                self._flush()

    def _flush(self) -> None:
        if self.held:
            part = self.buf[: self.held]
            if self.meter is not None:
                self.meter.process(part)
            self.f.write(part.data.cast("B"))
            self.store.frames += self.held
            self.held = 0

    def close(self) -> None:
        try:
            self._flush()
        finally:
            self.f.close()
