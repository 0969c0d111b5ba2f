"""``--record``: the processed output into a WAV file, written by its own thread from a ring the callback fills."""

from __future__ import annotations

import os
import tempfile
import threading
from typing import Any

import numpy as np
from numba import njit

from mixpilot.fileio import umask as _umask
from mixpilot.fileio import write_failure

__all__ = ["Recorder"]


@njit(cache=True)
def _ring_put(buf: np.ndarray, w: int, x: np.ndarray) -> int:  # pragma: no cover
    """Append x [frames, ch] at absolute write position w (mod capacity); returns the new position."""
    cap = buf.shape[0]
    for n in range(x.shape[0]):
        i = (w + n) % cap
        for c in range(buf.shape[1]):
            buf[i, c] = x[n, c]
    return w + x.shape[0]


class Recorder:
    """The processed output into a WAV file, written by its own thread from a ring the callback fills.

    The file is 32-bit float WAV (what the chain produced, bit for bit),
    written to a temporary file beside the target and renamed onto it by
    :meth:`close`, which every way out of :func:`run` calls; the ring holds
    ``ring_s`` seconds, far more than the writer's 50 ms wake-up.
    """

    def __init__(self, path: str, sample_rate: int, channels: int, ring_s: float = 4.0) -> None:
        import soundfile as sf

        self.path = os.path.abspath(path)
        self.sample_rate = int(sample_rate)
        folder = os.path.dirname(self.path)
        fd, self._tmp = tempfile.mkstemp(prefix=".mixpilot-rec-", suffix=".wav", dir=folder)
        os.close(fd)
        try:
            self._file: Any = sf.SoundFile(
                self._tmp, "w", samplerate=sample_rate, channels=channels, format="WAV", subtype="FLOAT"
            )
        except BaseException:
            os.unlink(self._tmp)
            raise
        self.buf = np.zeros((int(ring_s * sample_rate), channels), dtype=np.float32)
        self.w = np.zeros(1, dtype=np.int64)  # written by the callback
        self.r = 0  # read position (writer thread only)
        self.dropped = 0
        self.frames = 0
        self.error: str | None = None  # one line for the user when the recording is not all there
        self._failure: str | None = None  # why writing stopped (the disk is full, ...)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mixpilot-recorder", daemon=True)
        self._thread.start()

    def put(self, block: np.ndarray) -> None:  # audio thread
        self.w[0] = _ring_put(self.buf, int(self.w[0]), block)

    def _drain(self) -> None:
        w = int(self.w[0])
        cap = self.buf.shape[0]
        if w - self.r > cap:  # the writer fell a whole ring behind: those frames are lost
            self.dropped += w - cap - self.r
            self.r = w - cap
        while self.r < w:
            a = self.r % cap
            m = min(w - self.r, cap - a)
            self._file.write(self.buf[a : a + m])
            self.r += m
            self.frames += m

    def _fail(self, exc: BaseException) -> None:
        if self._failure is None:  # the first reason; the temporary file still exists here (write_failure)
            self._failure = write_failure(self._tmp, str(exc))

    def _loop(self) -> None:
        try:
            while not self._stop.wait(0.05):
                self._drain()
        except Exception as exc:  # disk full, ...: keep the audio running, report at the end
            self._fail(exc)

    def close(self) -> None:
        """Finish writing and move the file into place (idempotent).

        When writing failed part-way (a full disk), what was written is kept
        and :attr:`error` says so: the file, the reason, the seconds kept of
        the seconds played (issue 13 item 7: a run that exited 0 with a quarter
        of its recording).
        """
        if self._file is None:
            return
        self._stop.set()
        self._thread.join(5)
        if self._failure is None:
            try:
                self._drain()
            except Exception as exc:
                self._fail(exc)
        try:
            self._file.close()  # the WAV header gets its final length (rewritten in place)
        except Exception as exc:
            self._fail(exc)
        self._file = None
        try:
            os.chmod(self._tmp, 0o666 & ~_umask())  # mkstemp made it 0600; a recording gets the usual mode
            os.replace(self._tmp, self.path)
        except Exception as exc:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass
            self.error = f"--record {self.path}: cannot keep the recording ({write_failure(self.path, str(exc))})"
            return
        if self._failure is not None:
            import soundfile as sf

            try:
                kept = sf.info(self.path).frames / self.sample_rate
            except Exception:
                kept = 0.0
            played = int(self.w[0]) / self.sample_rate
            self.error = (
                f"--record {self.path}: cannot write ({self._failure}); kept the first {kept:.2f} s "
                f"of the {played:.2f} s played"
            )
