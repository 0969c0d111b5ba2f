"""``--record``: the processed output into a WAV file, written by its own thread from a ring the callback fills."""

from __future__ import annotations

import os
import tempfile
import threading

import numpy as np
from numba import njit

from mixpilot.fileio import umask as _umask

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
        folder = os.path.dirname(self.path)
        fd, self._tmp = tempfile.mkstemp(prefix=".mixpilot-rec-", suffix=".wav", dir=folder)
        os.close(fd)
        self._file = sf.SoundFile(
            self._tmp, "w", samplerate=sample_rate, channels=channels, format="WAV", subtype="FLOAT"
        )
        self.buf = np.zeros((int(ring_s * sample_rate), channels), dtype=np.float32)
        self.w = np.zeros(1, dtype=np.int64)  # written by the callback
        self.r = 0  # read position (writer thread only)
        self.dropped = 0
        self.frames = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mixpilot-recorder", daemon=True)
        self._thread.start()
        self.error: str | None = None

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

    def _loop(self) -> None:
        try:
            while not self._stop.wait(0.05):
                self._drain()
        except Exception as exc:  # disk full, ...: keep the audio running, report at the end
            self.error = f"--record {self.path}: {exc}"

    def close(self) -> None:
        """Finish writing and rename the file into place (idempotent)."""
        if self._file is None:
            return
        self._stop.set()
        self._thread.join(5)
        try:
            if self.error is None:
                self._drain()
            self._file.close()
            os.chmod(self._tmp, 0o666 & ~_umask())  # mkstemp made it 0600; a recording gets the usual mode
            os.replace(self._tmp, self.path)
        except Exception as exc:
            self.error = self.error or f"--record {self.path}: {exc}"
            try:
                os.unlink(self._tmp)
            except OSError:
                pass
        self._file = None
