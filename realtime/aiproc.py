"""The AI (features + ONNX) in its own process, reading the analysis ring from shared memory.

Why a process (issue 16)
------------------------
In one process the AI worker shares the GIL with the audio callback.  Each
hop it runs ~12 ms (p50; p99 53 ms on the loaded 2-core VM) of feature code
and onnxruntime; the GIL is handed over at the switch interval, but only by
a thread that is *running*: when the kernel preempts the worker while it
holds the GIL, the real-time callback waits for it (see
:mod:`realtime.rtsys`).  ``make demo`` on main (AI every 0.5 s, meters on,
machine load ~10) had 28 xruns in 30 s, callback starts up to 59.8 ms
apart, and its first burst at 1.7-5.1 s, around the first AI windows
(``xrun_at_s`` in ``out/demo_stats.json``).  In its own process the AI can
be as slow or as preempted as it likes: the audio process never waits for
it.

Layout
------
* :class:`SharedAnalysisRing`: the engine's :class:`realtime.engine.AnalysisRing`
  with ``buf`` and ``written`` in one file in ``/dev/shm`` mapped by both
  processes.  The audio thread writes it exactly as before (the same Numba
  kernel on arrays of the same types), the AI process reads it with
  :meth:`AnalysisRing.read_latest`, whose overrun check works across
  processes as across threads (x86 keeps stores in order: frames are in
  the buffer before ``written`` says so).
* :class:`SharedTargets`: the published AI values, a seqlock (``seq`` odd
  while writing) with the hop's end position, run/error counters, the last
  1024 compute times and (for the tests) a CRC-32 of the window read.
* :class:`AIProcess` (audio process side): starts ``python -m
  mixpilot.realtime.aiproc`` with the configuration on its stdin, waits
  until the child has loaded the model and computed one window (the first
  onnxruntime run, its arena, the filterbank and soxr are warm before the
  stream starts), then a bridge thread sleeps in ``readline`` on the
  child's stdout.  The child writes a line per published hop (a doorbell);
  the bridge reads the values from :class:`SharedTargets` and hands them
  to ``publish`` (``Engine.publish_ai``): one reference assignment the
  callback picks up at its next block, as before.
* The shared-memory files are unlinked as soon as the child has opened them:
  nothing is left in ``/dev/shm`` however the processes end.

The estimator is built in the child from an :class:`AISpec`: the ``--model``
spec, the profile of ``--reference``/``--target`` as its dict (the analytic
matcher aims at it: :class:`inference.matcher.AnalyticMatcher`) and the
delivery the matcher is configured for -- plain data on the child's stdin,
never a pickled live object.  The audio process builds the same estimator
from the same spec when the AI runs in a thread (``ai_process=False``).

Faults: when the child dies (killed, crashed, out of memory) the bridge sees
end-of-file, says so ONCE through ``warn``, and the analytic fallback
(:meth:`AISpec.fallback`: the analytic matcher aiming at the run's profile,
else the shipped default one, in an in-process
:class:`inference.worker.InferenceWorker`, warmed at start-up) takes over
from the next hop.  Until its first window the chain stays on the last
targets.  The child ends when its stdin closes (the audio process died).
"""

from __future__ import annotations

import json
import mmap
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from mixpilot.dsp.params import PARAM_INDEX, PARAM_NAMES
from mixpilot.dsp.settings import setting

from .engine import AnalysisRing

if TYPE_CHECKING:
    from mixpilot.inference.worker import Estimator

__all__ = ["AIProcess", "AIProcessError", "AISpec", "SharedAnalysisRing", "SharedTargets", "child_main"]

_HEADER = 64  # bytes before the ring's samples (``written`` and padding to a cache line)
_N_VALUES = len(PARAM_NAMES)  # every table parameter: the AI's and a stream estimator's extras (NaN: absent)
_TIMES = 1024
# SharedTargets header slots (int64)
_SEQ, _END, _RUNS, _ERRORS, _NTIMES, _CRC, _PID = range(7)
_READY_TIMEOUT_S = 120.0  # a cold start imports onnxruntime and librosa and loads the model


class AIProcessError(RuntimeError):
    """The AI process did not come up (the caller falls back to an in-process worker)."""


@dataclass
class AISpec:
    """What builds a run's estimator, as plain data (JSON on the AI process's stdin).

    ``model``: the ``--model`` spec; ``profile``: :meth:`inference.profile.Profile.to_dict` of the
    ``--reference``/``--target`` profile (then the analytic matcher aims at it, whatever the model);
    ``configure``: the keywords of the matcher's ``configure`` (the delivery loudness, the ceiling,
    the width crossover: the running estimate aims at what is delivered).
    """

    model: str | None = "default"
    profile: dict | None = None
    configure: dict = field(default_factory=dict)

    def _configured(self, est: Any) -> Any:
        configure = getattr(est, "configure", None)
        if configure is not None and self.configure:
            configure(**self.configure)
        return est

    def _matcher(self) -> Any:
        from mixpilot.inference.matcher import AnalyticMatcher

        if self.profile is None:
            return AnalyticMatcher.for_target()
        from mixpilot.inference.profile import Profile

        return AnalyticMatcher(Profile.from_dict(self.profile))

    def build(self, warn: Callable[[str], None]) -> Estimator | None:
        """The estimator (None for ``--model none``); a model that cannot load: one warning, the matcher."""
        if self.model is not None and str(self.model).strip().lower() == "none":
            return None
        if self.profile is not None:  # the model or the analytic matcher aiming at the profile
            from mixpilot.inference.profile import Profile

            from .api import matcher_for

            return self._configured(matcher_for(Profile.from_dict(self.profile), self.model, warn))
        from mixpilot.inference.worker import load_estimator

        return self._configured(load_estimator(self.model, warn))

    def fallback(self) -> Any:
        """The analytic matcher aiming at the run's profile (else the shipped default), configured alike:
        what takes over when the AI process dies."""
        return self._configured(self._matcher())

    def to_dict(self) -> dict:
        return asdict(self)


def _child_command() -> list[str]:
    return [sys.executable, "-m", "mixpilot.realtime.aiproc"]


def _shm_dir() -> str:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()


class _Mapped:
    """A file of ``size`` bytes mapped read-write (created, or opened by path)."""

    def __init__(self, size: int, path: str | None = None) -> None:
        if path is None:
            fd, path = tempfile.mkstemp(prefix=f"mixpilot-{os.getpid()}-", suffix=".shm", dir=_shm_dir())
            os.ftruncate(fd, size)
        else:
            fd = os.open(path, os.O_RDWR)
        try:
            self.map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self.path = path
        self.size = size

    def unlink(self) -> None:
        try:
            os.unlink(self.path)
        except OSError:
            pass


class SharedAnalysisRing(AnalysisRing):
    """:class:`AnalysisRing` whose ``buf`` and ``written`` live in a shared-memory file.

    ``SharedAnalysisRing(capacity, channels)`` creates one; ``SharedAnalysisRing.attach(path,
    capacity, channels)`` maps an existing one (the AI process).
    """

    def __init__(self, capacity_frames: int, channels: int, *, path: str | None = None) -> None:
        if capacity_frames < 1 or channels not in (1, 2):
            raise ValueError("ring needs >= 1 frame and 1 or 2 channels")
        size = _HEADER + int(capacity_frames) * channels * 4
        self._mem = _Mapped(size, path)
        self.written = np.ndarray((1,), dtype=np.int64, buffer=self._mem.map, offset=0)
        self.buf = np.ndarray((int(capacity_frames), channels), dtype=np.float32, buffer=self._mem.map, offset=_HEADER)

    @classmethod
    def attach(cls, path: str, capacity_frames: int, channels: int) -> SharedAnalysisRing:
        return cls(capacity_frames, channels, path=path)

    @property
    def path(self) -> str:
        return self._mem.path

    def unlink(self) -> None:
        self._mem.unlink()


class SharedTargets:
    """The AI's published values in shared memory (one writer: the AI process; a seqlock)."""

    def __init__(self, path: str | None = None) -> None:
        size = 8 * 8 + 8 * _N_VALUES + 8 * _TIMES
        self._mem = _Mapped(size, path)
        m = self._mem.map
        self.head = np.ndarray((8,), dtype=np.int64, buffer=m, offset=0)
        self.values = np.ndarray((_N_VALUES,), dtype=np.float64, buffer=m, offset=64)
        self.times_ms = np.ndarray((_TIMES,), dtype=np.float64, buffer=m, offset=64 + 8 * _N_VALUES)

    @property
    def path(self) -> str:
        return self._mem.path

    def unlink(self) -> None:
        self._mem.unlink()

    # writer (AI process)
    def write(self, values: dict[str, float], end_frame: int, compute_ms: float, crc: int = 0) -> None:
        h = self.head
        h[_SEQ] += 1  # odd: being written
        self.values[:] = np.nan  # the worker never publishes a non-finite value: NaN marks a name it did not give
        for n, v in values.items():
            self.values[PARAM_INDEX[n]] = v
        h[_END] = end_frame
        h[_CRC] = crc
        k = int(h[_NTIMES])
        self.times_ms[k % _TIMES] = compute_ms
        h[_NTIMES] = k + 1
        h[_RUNS] += 1
        h[_SEQ] += 1  # even: consistent

    def count_error(self) -> None:
        self.head[_ERRORS] += 1

    # reader (audio process)
    def read(self) -> tuple[int, int, dict[str, float]] | None:
        """(seq, end_frame, values) of the newest consistent publication; None before the first."""
        h = self.head
        for _ in range(1000):
            s1 = int(h[_SEQ])
            if s1 & 1:
                time.sleep(0)
                continue
            vals = self.values.copy()
            end = int(h[_END])
            if int(h[_SEQ]) == s1:
                if s1 == 0:
                    return None
                return s1, end, {n: float(v) for n, v in zip(PARAM_NAMES, vals) if not np.isnan(v)}
        return None

    @property
    def runs(self) -> int:
        return int(self.head[_RUNS])

    @property
    def errors(self) -> int:
        return int(self.head[_ERRORS])

    @property
    def crc(self) -> int:
        return int(self.head[_CRC])

    def compute_times_ms(self) -> np.ndarray:
        n = int(self.head[_NTIMES])
        return self.times_ms[: min(n, _TIMES)].copy()


class _Named:
    def __init__(self, name: str) -> None:
        self.name = name


class AIProcess:
    """The AI worker as a child process; the audio-process side (module docstring).

    Same surface as :class:`inference.worker.InferenceWorker` where ``realtime.stream`` uses it:
    ``status``, ``estimator.name``, ``stats()``, ``start()``, ``stop()``, ``last_values``.

    Parameters
    ----------
    ring : SharedAnalysisRing
        the engine's ring (``engine.ring``), already shared.
    sample_rate : int
    publish : ``publish(values, glide_s, end_frame)`` (``Engine.publish_ai``: the engine merges the AI's
        values by the parameter state's rule and applies them at their stream position), called
        from the bridge thread.
    spec : the :class:`AISpec` the child builds its estimator from (its warnings come back through
        ``warn``); default: ``--model default``.
    warn : one line per warning (the start-up fallback, the child dying).
    on_update : ``on_update(t_s, values)`` after each publication (``--params-out``).
    fallback : an :class:`InferenceWorker` (on the same ring, publishing the same way) that takes
        over when the child dies; warmed by the caller.
    verify : the child stores a CRC-32 of each window it read (tests).
    """

    def __init__(
        self,
        ring: SharedAnalysisRing,
        sample_rate: int,
        publish: Callable[[dict, float, int], None],
        *,
        spec: AISpec | None = None,
        hop_s: float | None = None,
        crossfade_s: float | None = None,
        warn: Callable[[str], None] = lambda s: None,
        on_update: Callable[[float, dict], None] | None = None,
        fallback: Any = None,
        verify: bool = False,
        on_thread: Callable[[], None] | None = None,
    ) -> None:
        self.ring = ring
        self.sample_rate = int(sample_rate)
        self.publish = publish
        self.crossfade_s = float(crossfade_s if crossfade_s is not None else setting("crossfade_s").default)
        self.hop_s = float(hop_s if hop_s is not None else setting("ai_hop_s").default)
        self.warn = warn
        self.on_update = on_update
        self.fallback = fallback
        self.on_thread = on_thread  # called first thing in the bridge and fallback threads (priority)
        self.spec = spec or AISpec()
        self.targets = SharedTargets()
        self.status = "AI: starting"
        self.estimator = _Named("model")
        self.last_values: dict[str, float] | None = None
        self.last_t_s = 0.0
        #: what the AI says it moves and why, as :class:`inference.worker.InferenceWorker` keeps it (the
        #: child sends the words with a doorbell when they changed; :class:`realtime.meter_ui.MeterUI` prints them)
        self.reasons: tuple[str, ...] = ()
        self.reasons_t_s = 0.0
        self.reasons_seq = 0
        self.died: str | None = None
        self.published = 0
        self.late_ms: list[float] = []
        self._stopping = False
        self._seen_seq = 0
        self._thread: threading.Thread | None = None
        cfg = {
            "ring": ring.path,
            "capacity": ring.capacity,
            "channels": ring.buf.shape[1],
            "targets": self.targets.path,
            "sample_rate": self.sample_rate,
            "ai": self.spec.to_dict(),
            "hop_s": self.hop_s,
            "crossfade_s": self.crossfade_s,
            "verify": bool(verify),
        }
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", "1")
        self.proc = subprocess.Popen(
            _child_command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=env,
        )
        try:
            try:
                self._pipe(self.proc.stdin).write(json.dumps(cfg) + "\n")
                self._pipe(self.proc.stdin).flush()
            except OSError:  # the child is gone already (BrokenPipeError): _wait_ready says why
                pass
            ready = self._wait_ready()
        except BaseException:
            self._kill()
            raise
        finally:
            # the child has both files open (or failed): their names are no longer needed
            ring.unlink()
            self.targets.unlink()
        self.pid = self.proc.pid
        self.estimator = _Named(ready.get("name", "model"))
        self.status = f"AI: {self.estimator.name} (process {self.pid})"
        for w in ready.get("warnings", []):
            warn(w)

    @staticmethod
    def _pipe(f: IO[str] | None) -> IO[str]:
        if f is None:  # pragma: no cover - Popen was given PIPE for all three
            raise AIProcessError("the AI process has no pipe")
        return f

    @property
    def hop_frames(self) -> int:
        return max(1, int(round(self.hop_s * self.sample_rate)))

    def _wait_ready(self) -> dict:
        deadline = time.monotonic() + _READY_TIMEOUT_S
        fd = self._pipe(self.proc.stdout).fileno()
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.5)
            if not r:
                if self.proc.poll() is not None:
                    break
                continue
            line = self._pipe(self.proc.stdout).readline()
            if not line:
                break
            msg = json.loads(line)
            if msg.get("k") == "ready":
                return msg
            if msg.get("k") == "error":
                raise AIProcessError(msg.get("text", "the AI process failed"))
        err = (self._pipe(self.proc.stderr).read() or "").strip().splitlines() if self.proc.poll() is not None else []
        raise AIProcessError(
            "the AI process did not start" + (f" ({err[-1]})" if err else f" within {_READY_TIMEOUT_S:g} s")
        )

    # -- running ---------------------------------------------------------------------
    def start(self) -> None:
        """Let the child begin its hops (after the stream started) and start the bridge thread."""
        self._thread = threading.Thread(target=self._bridge, name="mixpilot-ai-bridge", daemon=True)
        self._thread.start()
        self._send("go")

    def _send(self, text: str) -> None:
        try:
            self._pipe(self.proc.stdin).write(text + "\n")
            self._pipe(self.proc.stdin).flush()
        except (OSError, ValueError):
            pass

    def _bridge(self) -> None:
        if self.on_thread is not None:
            self.on_thread()
        out = self._pipe(self.proc.stdout)
        while True:
            try:
                line = out.readline()
            except (OSError, ValueError):
                line = ""
            if not line:
                break
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            kind = msg.get("k")
            if kind == "t":
                self._take()
                if "why" in msg:
                    self.reasons, self.reasons_t_s = tuple(str(r) for r in msg["why"]), float(msg.get("why_t", 0.0))
                    self.reasons_seq += 1
            elif kind == "s":
                self.status = msg.get("text", self.status)
        if not self._stopping:
            self._died()

    def _take(self) -> None:
        got = self.targets.read()
        if got is None:
            return
        seq, end, values = got
        if seq == self._seen_seq:
            return
        self._seen_seq = seq
        # how long after its window ended the hop's values reached the engine (stream time)
        self.late_ms.append(1000.0 * (self.ring.frames_written - end) / self.sample_rate)
        self.publish(values, self.crossfade_s, end)
        self.published += 1
        self.last_values = values
        self.last_t_s = end / self.sample_rate
        self.status = f"AI: {self.estimator.name} (process {self.pid})"
        if self.on_update is not None:
            self.on_update(self.last_t_s, values)

    def _died(self) -> None:
        code = self.proc.wait()
        how = f"signal {-code}" if code < 0 else f"exit code {code}"
        err = ""
        try:
            lines = (self._pipe(self.proc.stderr).read() or "").strip().splitlines()
            err = f": {lines[-1][:160]}" if lines else ""
        except (OSError, ValueError):
            pass
        fb = self.fallback
        self.died = f"the AI process (pid {self.pid}) died ({how}{err})"
        if fb is None:
            self.warn(f"warning: {self.died}; audio continues on the last AI targets")
            self.status = f"AI: stopped ({self.died})"
            return
        self.warn(f"warning: {self.died}; audio continues on the last AI targets, the analytic fallback takes over")
        fb.resume_at(self.ring.frames_written)
        self.status = f"AI: {getattr(fb.estimator, 'name', 'matcher')} (fallback: the AI process died)"
        fb.status = self.status
        inner = fb.on_update
        seen = [fb.reasons_seq]

        def update(t: float, values: dict) -> None:
            self.last_values = values
            self.last_t_s = t
            if fb.reasons_seq != seen[0]:
                seen[0] = fb.reasons_seq
                self.reasons, self.reasons_t_s = fb.reasons, fb.reasons_t_s
                self.reasons_seq += 1
            if inner is not None:
                inner(t, values)

        fb.on_update = update

        def loop() -> None:
            if self.on_thread is not None:
                self.on_thread()
            fb._loop()

        fb._thread = threading.Thread(target=loop, name="mixpilot-inference-fallback", daemon=True)
        fb._thread.start()

    def stop(self) -> None:
        """Ask the child to finish, wait for it (then kill it), stop the bridge and any fallback."""
        self._stopping = True
        if self.proc.poll() is None:
            self._send("quit")
            try:
                self.proc.wait(3.0)
            except subprocess.TimeoutExpired:
                self._kill()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(3.0)
        if self.fallback is not None:
            self.fallback.stop()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                if f is not None:
                    f.close()
            except (OSError, ValueError):
                pass

    def _kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(3.0)
        except subprocess.TimeoutExpired:
            pass

    def stats(self) -> dict:
        t = self.targets.compute_times_ms()
        fb = self.fallback.stats() if (self.fallback is not None and self.died) else None
        out: dict[str, Any] = {
            "runs": self.targets.runs + (fb["runs"] if fb else 0),
            "errors": self.targets.errors + (fb["errors"] if fb else 0),
            "p50_ms": round(float(np.percentile(t, 50)), 3) if t.size else None,
            "p99_ms": round(float(np.percentile(t, 99)), 3) if t.size else None,
            "process": True,
            "pid": self.pid,
        }
        if self.late_ms:
            late = np.asarray(self.late_ms)
            out["published_after_window_ms"] = {
                "first": round(float(late[0]), 1),
                "p50": round(float(np.percentile(late, 50)), 1),
                "p99": round(float(np.percentile(late, 99)), 1),
                "max": round(float(late.max()), 1),
            }
        if self.died:
            out["died"] = self.died
            out["fallback"] = fb
        return out


# --- the child ------------------------------------------------------------------------------


def _emit(msg: dict) -> None:
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


class _Lines:
    """Lines from a file descriptor with a timeout (``select`` + ``os.read``; no hidden buffering)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""
        self.eof = False

    def get(self, timeout_s: float | None) -> str | None:
        """The next line (without the newline); None on timeout; "" at end of file."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while b"\n" not in self.buf:
            if self.eof:
                return ""
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            r, _, _ = select.select([self.fd], [], [], left)
            if not r:
                return None
            data = os.read(self.fd, 65536)
            if not data:
                self.eof = True
                if not self.buf:
                    return ""
                self.buf += b"\n"
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode()


def child_main() -> int:
    """The AI process: configuration on the first stdin line; ``go``/``quit`` after it (module docstring)."""
    try:  # never inherit the audio process's real-time scheduling
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (OSError, AttributeError):
        pass
    # a Ctrl-C (or a hang-up) in the terminal reaches the whole process group: the audio process ends
    # the run (realtime.interrupts) and then asks this one to quit; dying here first would read as a crash
    for name in ("SIGINT", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, signal.SIG_IGN)
    lines = _Lines(sys.stdin.fileno())
    line = lines.get(None)
    if not line:
        return 0
    cfg = json.loads(line)
    try:
        from mixpilot.inference.worker import InferenceWorker

        ring = SharedAnalysisRing.attach(cfg["ring"], int(cfg["capacity"]), int(cfg["channels"]))
        targets = SharedTargets(cfg["targets"])
        warnings: list[str] = []
        est = AISpec(**cfg["ai"]).build(lambda t: warnings.append("warning: " + t))
        if est is None:
            raise AIProcessError("--model none: no AI process needed")
        sr = int(cfg["sample_rate"])
        verify = bool(cfg.get("verify"))
        worker = InferenceWorker(
            est,
            ring,
            sr,
            lambda v, g, e: None,  # published through shared memory (on_update below)
            hop_s=cfg["hop_s"],
            crossfade_s=cfg["crossfade_s"],
        )
        worker.compute(0)  # the session, its arena, the filterbank and soxr: loaded before the stream
    except Exception as exc:
        _emit({"k": "error", "text": " ".join(f"{type(exc).__name__}: {exc}".split())})
        return 1

    said = [worker.reasons_seq]

    def published(t_s: float, values: dict) -> None:
        crc = zlib.crc32(worker._window.tobytes()) if verify else 0
        targets.write(values, int(round(t_s * sr)), worker.times_ms[-1], crc)
        del worker.times_ms[:-1]  # the times live in shared memory; keep the list short
        msg: dict[str, Any] = {"k": "t"}
        if worker.reasons_seq != said[0]:  # the AI's words changed (inference.worker.reasons_differ)
            said[0] = worker.reasons_seq
            msg["why"], msg["why_t"] = list(worker.reasons), worker.reasons_t_s
        _emit(msg)

    worker.on_update = published
    _emit({"k": "ready", "name": getattr(est, "name", "model"), "warnings": warnings, "pid": os.getpid()})

    state = {"go": False, "quit": False}

    def wait(seconds: float) -> bool:
        cmd = lines.get(seconds)
        if cmd is not None:
            if cmd.strip() in ("", "quit"):  # "" = end of file: the audio process went away
                state["quit"] = True
            elif cmd.strip() == "go":
                state["go"] = True
        return state["quit"]

    while not state["go"]:
        if wait(1.0):
            return 0
    errors = 0
    while True:
        if worker.turn(wait):
            return 0
        if worker.errors != errors:
            errors = worker.errors
            targets.count_error()
            _emit({"k": "s", "text": worker.status})


if __name__ == "__main__":
    raise SystemExit(child_main())
