"""Progress lines on stderr that behave on a terminal and in a log.

On a terminal a bar is redrawn in place (``\\r``), clipped to the terminal's
width, whenever its text changes.  When stderr is not a terminal (a pipe, a
CI log, ``2> file``) it degrades like tqdm does: a line at the start, then at
most one line every :data:`LOG_INTERVAL_S` seconds, and the line that
finishes (100 %), never one line per update.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["LOG_INTERVAL_S", "Progress", "ProgressBar", "bar_text"]

LOG_INTERVAL_S = 5.0


def bar_text(frac: float, width: int = 20) -> str:
    """``[#####...............]  25%`` for ``frac`` in 0..1."""
    frac = min(max(frac, 0.0), 1.0)
    filled = int(frac * width + 1e-9)
    return f"[{'#' * filled}{'.' * (width - filled)}] {int(frac * 100.0 + 1e-9):3d}%"


class Progress:
    """One progress line: ``show(key, line, done)``.

    ``key`` decides when a terminal redraw is needed (e.g. the percent);
    ``done`` marks a finishing line, which a log always gets.  ``clock`` is
    for tests.
    """

    def __init__(
        self,
        stream: TextIO,
        tty: bool | None = None,
        *,
        interval_s: float = LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.interval_s = float(interval_s)
        self.clock = clock
        self._key: object = None
        self._last_log = -float("inf")
        self._drawn = False
        self._width = 0

    def show(self, key: object, line: str, done: bool = False) -> None:
        if self.tty:
            if key == self._key:
                return
            self._key = key
            cols = shutil.get_terminal_size((100, 24)).columns
            text = line[: max(cols - 1, 10)]  # never wrap: a wrapped line cannot be redrawn in place
            self.stream.write("\r" + text.ljust(self._width))  # blanks cover a longer previous line
            self._width = len(text)
            self._drawn = True
        else:
            now = self.clock()
            if key == self._key or (not done and now - self._last_log < self.interval_s):
                return
            self._key = key
            self._last_log = now
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """End a terminal line (a log's lines are already complete)."""
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
            self._width = 0


class ProgressBar(Progress):
    """``render``'s callback: ``[#########...........]  45%  12.2 s / 27.0 s  pass 1``."""

    WIDTH = 20

    def __call__(self, pass_no: int, done_s: float, total_s: float) -> None:
        frac = min(max(done_s / total_s, 0.0), 1.0) if total_s > 0 else 1.0
        pct = int(frac * 100.0 + 1e-9)
        what = f"pass {pass_no}" if pass_no else "reading"  # pass 0: the first read, which measures the input
        line = f"{bar_text(frac, self.WIDTH)}  {done_s:.1f} s / {total_s:.1f} s  {what}"
        self.show((pass_no, pct), line, done=pct >= 100)
