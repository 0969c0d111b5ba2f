"""Offline render: a file through the :class:`realtime.engine.Engine`, delivered at a loudness.

:func:`render_file` is what ``mixpilot render IN OUT`` runs:

1. **Validate everything before writing anything**: the model, the numbers,
   the parameters (against :mod:`dsp.params`), the input file (exists,
   readable, audio, not empty, 8..192 kHz, at most 8 channels), the output
   (``.wav``/``.flac``, not the input file by any path, its folder exists and
   is writable, not already there unless ``overwrite``).
2. **Process** the file at its own sample rate in blocks of ``block_size``
   frames (mono as mono, stereo as stereo, 3..8 channels downmixed by
   :func:`realtime.audio_io.read_audio`).  The limiter's lookahead delays the
   chain by ``latency_samples``; the input is followed by that many zeros and
   the first ``latency_samples`` output frames are dropped, so the output is
   aligned with the input and exactly as long.
3. **Deliver the loudness** (EBU R 128 / BS.1770-4 integrated loudness,
   measured by :func:`dsp.meter.measure`): pass 1 renders with the delivery
   gain ``loudness_gain_db`` at ``target - input loudness`` (exact for the
   default chain below the ceiling, so one pass is often enough) and
   measures the output; the gain
   moves toward the target and the file is rendered again, until the
   output is within :data:`LOUDNESS_AIM_LU` of the target or
   :data:`MAX_PASSES` passes are done (the search is in :func:`_next_gain`:
   the limiter makes loudness grow slower than the gain near the ceiling).
   The pass closest to the target is written.  Only the first pass runs the
   whole chain (and the AI): nothing before the delivery gain depends on it,
   so passes 2+ feed the first pass's pre-delivery tap to the output gain
   and the limiter alone, with the same parameter updates at the same
   stream positions (:func:`_replay_pass`; the same samples as a full pass,
   tested), and each pass is measured without the true peak, which is
   measured once on the pass that is written.  A target that cannot be
   reached (the limiter is saturated, or the gain would pass its hard range)
   is reported in ``notes``, not raised.  Silent or too short input
   (integrated loudness ``-inf``: nothing above the -70 LUFS gate for
   400 ms) is rendered once without any gain change.  A ``loudness_gain_db``
   given in ``params`` is a fixed delivery gain: one pass, no search.
   ``loudness_mode="follow"`` (``--loudness-mode follow``) renders once with
   the real-time loudness follower instead: the samples ``mixpilot play``
   would have played.
4. **Write atomically** (:func:`realtime.audio_io.write_audio_atomic`):
   24-bit PCM by default, 32-bit float with ``float_output``.

The limiter holds ``ceiling_dbtp`` (``limiter_ceiling_dbtp``) on the float
output, so the file has no true-peak overs beyond the interpolation error of
a 4x true-peak meter.

**Streaming.**  :func:`render_file` never holds the file: it decodes it in
chunks (:class:`realtime.audio_io.AudioReader`), once to measure it (and to
gather the analytic matcher's whole-file statistics), then once per full
pass; every pass goes to a raw scratch file beside the output
(:mod:`realtime.frames`, removed at the end), metered as it is written, and
the chosen one is read back in chunks by :func:`realtime.encode.deliver`.
:func:`render_frames` is the pass loop for both: over arrays for
:func:`render_array` (``mixpilot.master``), over files for the render, with
the same blocks (:func:`_feed` assembles a block that straddles two chunks),
so both give the same samples bit for bit.  ``--report`` and
``--output-rate`` keep the in-memory path.
"""

from __future__ import annotations

import errno
import itertools
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import closing
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from mixpilot.dsp.errors import MixpilotError, OutputError, UsageError
from mixpilot.dsp.meter import LoudnessMeter, TruePeakMeter, measure
from mixpilot.dsp.params import PARAM_INDEX, PARAMS, ParameterError, validate_value
from mixpilot.dsp.settings import setting
from mixpilot.dsp.spec import ProcessSpec

from .audio_io import LAYOUTS, WHOLE_READ_FORMATS, probe_audio, read_audio_file, write_text_atomic
from .engine import Engine
from .frames import CHUNK_FRAMES, ArrayFrames, DiskFrames, Frames, FrameSink
from .parameter_state import ParamsLog, clamp_value, params_out_text
from .session import Session, build_session

if TYPE_CHECKING:
    from mixpilot.inference.worker import Estimator, InferenceWorker

    from .api import MasterSettings
    from .midi import MidiFileAutomation

__all__ = [
    "BLOCK_SIZE_RANGE",
    "LOUDNESS_AIM_LU",
    "LOUDNESS_TOLERANCE_LU",
    "MAX_PASSES",
    "LOUDNESS_MODES",
    "TARGET_LUFS_RANGE",
    "ArrayRender",
    "PassResult",
    "RenderError",
    "RenderReport",
    "RenderUsageError",
    "render_array",
    "render_file",
]

MAX_PASSES = 4
LOUDNESS_AIM_LU = 0.1  # stop iterating inside this
LOUDNESS_TOLERANCE_LU = 0.5  # the delivery promise; outside it the summary says "not reached"
TARGET_LUFS_RANGE = (setting("target_lufs").minimum, setting("target_lufs").maximum)  # dsp.settings
BLOCK_SIZE_RANGE = (setting("block_size").minimum, setting("block_size").maximum)
LOUDNESS_MODES = ("search", "follow")
_MIN_SLOPE = 0.15  # LU per dB: below this the limiter is taken as saturated
_MAX_STEP_DB = 12.0  # more gain than this, at the measured slope, also counts as saturated

ProgressCallback = Callable[[int, float, float], None]
"""``progress(pass_number, done_seconds, total_seconds)``, called after every block (pass 0: a streamed
render's first read of the input, which measures it)."""


class RenderError(MixpilotError):
    """A render that cannot run; the message is one line.  ``exit_code`` 1 (run time)."""

    exit_code = 1


class RenderUsageError(RenderError, UsageError):
    """A render asked for with arguments that cannot work (exit code 2)."""

    exit_code = 2


@dataclass
class RenderReport:
    """What :func:`render_file` did: :class:`realtime.api.MasterReport`'s fields and the file's.

    Loudness in LUFS, peaks in dBTP, gain reduction in dB (>= 0).  ``output_*``
    are measured on the delivered file's samples (decoded, for MP3 and Ogg);
    ``sample_rate`` is the output's, ``input_sample_rate`` the input file's;
    ``trim_db`` is gain taken off after the limiter to hold the ceiling in
    the file (:mod:`realtime.encode`).
    """

    input_path: str
    output_path: str
    sample_rate: int
    frames: int
    input_channels: int
    output_channels: int
    subtype: str
    target_lufs: float
    ceiling_dbtp: float
    input_integrated_lufs: float
    input_true_peak_dbtp: float
    input_lra_lu: float
    output_integrated_lufs: float
    output_true_peak_dbtp: float
    output_lra_lu: float
    loudness_gain_db: float
    max_comp_gain_reduction_db: float
    max_limiter_gain_reduction_db: float
    passes: int
    target_reached: bool
    seconds: float
    realtime_factor: float
    latency_samples: int
    nonfinite_samples: int
    notes: list[str] = field(default_factory=list)
    model: str = "none"  # the estimator that ran: a model name, "heuristic", or "none"
    ai_updates: int = 0
    inference: dict | None = None
    limiter_ceiling_dbtp: float = -1.0
    input_sample_rate: int = 0
    format: str = "WAV"
    trim_db: float = 0.0
    encodes: int = 1

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate

    @property
    def loudness_error_lu(self) -> float:
        return self.output_integrated_lufs - self.target_lufs

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class PassResult:
    """One render pass: its delivery gain and what the output measured.

    ``true_peak_dbtp`` is measured on the chosen pass only (NaN on the others).
    """

    gain_db: float
    integrated_lufs: float
    true_peak_dbtp: float
    lra_lu: float
    comp_gr_db: float
    limiter_gr_db: float
    nonfinite: int


@dataclass
class ArrayRender:
    """What :func:`render_array` returns."""

    out: np.ndarray  # [frames, channels] float32, the chosen pass
    passes: list[PassResult]
    chosen: PassResult
    notes: list[str]
    latency_samples: int
    ai_updates: list = field(default_factory=list)  # [(t_s, {name: value})] of the chosen pass
    inference: dict | None = None  # worker stats (runs, p50_ms, p99_ms)
    events: ParamsLog | None = None  # the chosen pass's --params-out events (AI, MIDI automation)


# --- validation ----------------------------------------------------------------------


def _validated_params(params: Mapping[str, object] | None) -> dict[str, float]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise ParameterError(f"parameters must be a mapping of name -> number, got {type(params).__name__}")
    out: dict[str, float] = {}
    for name, value in params.items():
        if not isinstance(name, str):
            raise ParameterError(f"parameter names must be strings, got {name!r}")
        out[name] = validate_value(name, value)
    return out


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.exists(b) and os.path.samefile(a, b)
    except OSError:
        return False


def _check_writable_target(path: str, what: str, *, overwrite: bool, protect: tuple[str, ...]) -> str:
    """Checks for a file we are about to create; returns its absolute path."""
    p = os.path.abspath(path)
    for other in protect:
        if _same_file(other, p):
            raise RenderUsageError(
                f"{path}: {what} is the same file as the input {other}; "
                f"choose another {what} path (the input is never overwritten)"
            )
    if os.path.isdir(p):
        raise RenderUsageError(f"{path}: {what} is a directory; give a file name")
    folder = os.path.dirname(p)
    if not os.path.exists(folder):
        raise RenderError(f"{path}: {what} folder {folder} does not exist")
    if not os.path.isdir(folder):
        raise RenderError(f"{path}: {what} folder {folder} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RenderError(f"{path}: {what} folder {folder} is not writable")
    if os.path.lexists(p) and not overwrite:
        raise RenderUsageError(f"{path}: {what} exists; pass --overwrite to replace it")
    return p


# --- processing ----------------------------------------------------------------------


def _feed(
    engine: Engine,
    pieces: Iterable[np.ndarray],
    n: int,
    channels: int,
    dtype: Any,
    sink: FrameSink,
    block_size: int,
    sample_rate: int,
    pass_no: int,
    progress: ProgressCallback | None,
    tap_sink: FrameSink | None = None,
) -> None:
    """``pieces`` (``n`` frames and the ``latency_samples`` that flush the lookahead, in any split)
    through ``engine`` in blocks of ``block_size``; the output, latency removed, into ``sink``.

    The blocks are the same whatever the split (a block that straddles two pieces is assembled in a
    scratch buffer), so the engine sees the same calls as over one array.  ``tap_sink``, when given,
    receives the engine's pre-delivery tap of every frame, the latency flush included
    (:func:`_replay_pass` feeds it back).
    """
    lat = engine.latency_samples
    scratch_in = np.zeros((block_size, channels), dtype=dtype)
    scratch_out = np.zeros((block_size, channels), dtype=np.float32)
    total_s = n / sample_rate
    pos = 0

    def run(blk: np.ndarray) -> None:
        nonlocal pos
        m = blk.shape[0]
        y = scratch_out[:m]
        engine.process_block(blk, y)
        if tap_sink is not None:
            tap_sink.write(engine.tap[:m])
        start = max(pos, lat)  # output frame ``start`` is input frame ``start - lat``
        if start < pos + m:
            sink.write(y[start - pos :])
        pos += m
        if progress is not None:
            progress(pass_no, min(pos, n) / sample_rate, total_s)

    held = 0  # frames waiting in scratch_in for the rest of their block
    for piece in pieces:
        k = piece.shape[0]
        i = 0
        if held:
            i = min(block_size - held, k)
            scratch_in[held : held + i] = piece[:i]
            held += i
            if held == block_size:
                run(scratch_in)
                held = 0
        while k - i >= block_size:
            run(piece[i : i + block_size])
            i += block_size
        if i < k:
            scratch_in[: k - i] = piece[i:]
            held = k - i
    if held:
        run(scratch_in[:held])


def _render_pass(
    engine: Engine,
    source: Frames,
    sink: FrameSink,
    block_size: int,
    sample_rate: int,
    pass_no: int,
    progress: ProgressCallback | None,
    tap_sink: FrameSink | None = None,
) -> None:
    """One pass of ``source`` through ``engine`` (already reset) into ``sink``, latency removed
    (the input followed by ``latency_samples`` zeros)."""
    ch = source.channels
    flush = np.zeros((engine.latency_samples, ch), dtype=np.float32)
    with closing(source.chunks(_chunk_frames(block_size))) as chunks:  # closed (the file too) however it ends
        pieces = itertools.chain(chunks, (flush,))
        _feed(engine, pieces, source.frames, ch, np.float32, sink, block_size, sample_rate, pass_no, progress, tap_sink)
    sink.close()
    if tap_sink is not None:
        tap_sink.close()


def _replay_pass(
    engine: Engine,
    tap: Frames,
    sink: FrameSink,
    block_size: int,
    sample_rate: int,
    pass_no: int,
    progress: ProgressCallback | None,
) -> None:
    """A loudness pass from the first pass's tap: ``engine`` holds only the output gain and the limiter.

    The stages before the tap do not depend on the delivery gain, so their output (``tap``, every
    frame of the first pass, latency flush included) is fed to an engine whose chain is the output
    gain and the limiter, with the same parameters and the same AI updates at the same stream
    positions (the worker's memo): the limiter sees the samples it would see in a full pass, and
    ``sink`` gets what a full pass would write.  (The chain's input check reads samples under 1e-30
    as zero: below -600 dBFS, where a full pass would carry them on.)
    """
    n = tap.frames - engine.latency_samples
    with closing(tap.chunks(_chunk_frames(block_size))) as chunks:
        _feed(engine, chunks, n, 2, np.float64, sink, block_size, sample_rate, pass_no, progress)
    sink.close()


def _chunk_frames(block_size: int) -> int:
    """Frames per chunk read from a store: a whole number of blocks, about :data:`CHUNK_FRAMES`."""
    return max(1, CHUNK_FRAMES // block_size) * block_size


#: Loudness passes 2+ replay the first pass's tap (:func:`_replay_pass`) when it fits in this many
#: bytes (float64 stereo: 16 bytes a frame, about 58 min at 48 kHz); longer files render every pass.
REPLAY_MAX_BYTES = 1 << 30


def render_array(
    x: np.ndarray,
    sample_rate: int,
    *,
    target_lufs: float = -14.0,
    ceiling_dbtp: float = -1.0,
    params: Mapping[str, float] | None = None,
    block_size: int = 1024,
    progress: ProgressCallback | None = None,
    input_integrated_lufs: float | None = None,
    loudness_mode: str = "search",
    estimator: Estimator | None = None,
    ai_amount: float = 1.0,
    ai_hop_s: float = 0.5,
    crossfade_s: float = 2.0,
    midi_file: MidiFileAutomation | None = None,
    amounts: Mapping[str, float] | None = None,
) -> ArrayRender:
    """Render a buffer through the engine with loudness delivery (the core of :func:`render_file`).

    Parameters
    ----------
    x : np.ndarray [shape=(frames, 1 or 2), dtype=float32], C-contiguous
    sample_rate : int
        Hz.
    target_lufs, ceiling_dbtp : float
        Delivery loudness (LUFS) and limiter ceiling (dBTP), already validated.
    params : mapping, optional
        Validated static parameter values; ``loudness_gain_db`` there fixes
        the delivery gain (one pass, no search, no follower).
    input_integrated_lufs : float, optional
        The input's integrated loudness if already measured; ``-inf`` means
        silent / unmeasurable: one pass, no gain change.
    loudness_mode : ``"search"`` or ``"follow"``
        ``"search"``: render passes with a static delivery gain until the
        file meets the target (module docstring).  ``"follow"``: one pass
        with the real-time loudness follower (:mod:`realtime.engine`),
        exactly what ``mixpilot play`` would have played.
    estimator : optional
        An AI estimator (:func:`inference.worker.load_estimator`); its
        :class:`inference.worker.InferenceWorker` runs synchronously inside
        the engine at every ``ai_hop_s`` of stream time, gliding over
        ``crossfade_s``.  ``ArrayRender.ai_updates`` lists the chosen pass's
        updates ``(t_s, {name: value})``.

    Returns
    -------
    ArrayRender
        ``out`` is the pass closest to the target (``chosen``).
    """
    r = render_frames(
        ArrayFrames(x),
        sample_rate,
        new_store=_memory_store,
        analyse=lambda est: est.analyse(x),
        target_lufs=target_lufs,
        ceiling_dbtp=ceiling_dbtp,
        params=params,
        block_size=block_size,
        progress=progress,
        input_integrated_lufs=input_integrated_lufs,
        loudness_mode=loudness_mode,
        estimator=estimator,
        ai_amount=ai_amount,
        ai_hop_s=ai_hop_s,
        crossfade_s=crossfade_s,
        midi_file=midi_file,
        amounts=amounts,
        replay_max_bytes=REPLAY_MAX_BYTES,
    )
    return ArrayRender(
        cast(ArrayFrames, r.best).array, r.passes, r.chosen, r.notes, r.latency_samples, r.ai_updates, r.inference,
        r.events,
    )  # fmt: skip


StoreFactory = Callable[[str, int, int, Any], Frames]
"""``new_store(name, frames, channels, dtype)``: an empty frame store for a render pass (or its tap)."""


def _memory_store(name: str, frames: int, channels: int, dtype: Any) -> Frames:
    return ArrayFrames(np.empty((frames, channels), dtype=dtype))


def disk_store(folder: str) -> StoreFactory:
    """Scratch stores as raw files in ``folder`` (:class:`realtime.frames.DiskFrames`)."""

    def new(name: str, frames: int, channels: int, dtype: Any) -> Frames:
        return DiskFrames(os.path.join(folder, f"{name}.raw"), channels, dtype)

    return new


@dataclass
class FramesRender:
    """What :func:`render_frames` returns: :class:`ArrayRender` with the chosen pass in a store."""

    best: Frames
    passes: list[PassResult]
    chosen: PassResult
    notes: list[str]
    latency_samples: int
    ai_updates: list
    inference: dict | None
    events: ParamsLog | None


def render_frames(
    source: Frames,
    sample_rate: int,
    *,
    new_store: StoreFactory,
    analyse: Callable[[Any], Any],
    target_lufs: float = -14.0,
    ceiling_dbtp: float = -1.0,
    params: Mapping[str, float] | None = None,
    block_size: int = 1024,
    progress: ProgressCallback | None = None,
    input_integrated_lufs: float | None = None,
    loudness_mode: str = "search",
    estimator: Estimator | None = None,
    ai_amount: float = 1.0,
    ai_hop_s: float = 0.5,
    crossfade_s: float = 2.0,
    midi_file: MidiFileAutomation | None = None,
    amounts: Mapping[str, float] | None = None,
    replay_max_bytes: float = math.inf,
) -> FramesRender:
    """:func:`render_array` over a frame store: ``source`` in, every pass into stores from ``new_store``.

    ``analyse(estimator)`` is the analytic matcher's whole-file analysis
    (``estimator.analyse(x)``, or ``estimator.analyse_stats(stats)`` with
    statistics gathered while the file was read); loudness passes 2+ replay
    the first pass's tap when it holds at most ``replay_max_bytes``.  The
    chosen pass is returned in its store, with the other passes' stores
    removed.
    """
    if loudness_mode not in LOUDNESS_MODES:
        raise RenderUsageError(f"--loudness-mode must be one of {', '.join(LOUDNESS_MODES)}, not {loudness_mode!r}")
    params = dict(params or {})
    notes: list[str] = []
    p_gain = PARAMS[PARAM_INDEX["loudness_gain_db"]]
    measurable = input_integrated_lufs is None or math.isfinite(input_integrated_lufs)
    fixed = "loudness_gain_db" in params
    follow = loudness_mode == "follow" and not fixed
    if fixed:
        gain = float(params["loudness_gain_db"])
    elif input_integrated_lufs is not None and measurable:
        gain = clamp_value("loudness_gain_db", target_lufs - input_integrated_lufs)
    else:
        gain = p_gain.default
    if not follow:
        params["loudness_gain_db"] = gain
    streaming = estimator is not None and bool(getattr(estimator, "wants_audio", False))
    stream_est: Any = cast(Any, estimator)  # inference.matcher.AnalyticMatcher when streaming
    if streaming and hasattr(estimator, "configure"):
        stream_est.configure(
            delivery_lufs=target_lufs,
            ceiling_dbtp=ceiling_dbtp,
            crossover_hz=params.get("width_crossover_hz"),
            follow_changes=False,  # a file is one piece of material (as `play FILE`; `live` follows changes)
        )
    # the loudness search renders the whole file several times: the analytic matcher reads the whole
    # file first and its parameters hold from the first sample (play/live and --loudness-mode follow
    # use the running estimate, exactly as in real time)
    whole = streaming and not follow and hasattr(estimator, "analyse")
    # the session play and live build too (realtime.session): the same engine, state, worker and controls
    session = build_session(
        sample_rate,
        source.channels,
        max_block_size=block_size,
        params=params,
        target_lufs=target_lufs,
        ceiling_dbtp=ceiling_dbtp,
        loudness_mode="follow" if follow else "static",
        meters=False,
        estimator=estimator,
        ai_amount=ai_amount,
        amounts=amounts,
        ai_hop_s=ai_hop_s,
        crossfade_s=crossfade_s,
        automation=midi_file,
        sync_ai=not whole,
    )
    engine, worker = session.engine, session.worker
    whole_file: dict | None = None
    if worker is not None:
        if whole:
            matched = analyse(stream_est)
            whole_file = engine.state.ai_targets(stream_est.values())
            if getattr(matched, "reasons", None):
                notes.append(f"AI ({getattr(estimator, 'name', 'matcher')}): " + "; ".join(matched.reasons))
            worker.runs += 1
            for name, v in whole_file.items():
                engine.set_static(name, v)
        elif not streaming:  # every pass reads the same input: later loudness passes reuse pass 1's AI values
            worker.memo = {}
    best_updates: list[tuple[float, dict]] = []
    best_events = ParamsLog()

    # loudness passes 2+ from the first pass's tap (stereo, no MIDI: the bypass buttons act on stages
    # the replay does not run); see _replay_pass
    replay: Engine | None = None
    rsession: Session | None = None
    tap_store = None
    ai_replayable = worker is None or whole_file is not None or worker.memo is not None
    if (
        not follow
        and not fixed
        and measurable
        and midi_file is None
        and ai_replayable
        and source.channels == 2
        and (source.frames + engine.latency_samples) * 16 <= replay_max_bytes
    ):
        # the same session without the stages before the tap (no bank: midi_file is None here)
        rsession = build_session(
            sample_rate,
            2,
            max_block_size=block_size,
            params=params,
            target_lufs=target_lufs,
            ceiling_dbtp=ceiling_dbtp,
            loudness_mode="static",
            meters=False,
            estimator=estimator if whole_file is None else None,
            ai_amount=ai_amount,
            amounts=amounts,
            ai_hop_s=ai_hop_s,
            crossfade_s=crossfade_s,
            sync_ai=True,
            stages=("output_gain", "limiter"),
        )
        replay = rsession.engine
        for name, v in (whole_file or {}).items():  # the analytic matcher's whole-file values
            replay.set_static(name, v)
        if rsession.worker is not None and worker is not None:
            rsession.worker.memo = worker.memo  # every value comes from the first pass (the ring holds the tap)
        tap_store = new_store("tap", source.frames + engine.latency_samples, 2, np.float64)

    cur = new_store("pass-a", source.frames, source.channels, np.float32)
    best = new_store("pass-b", source.frames, source.channels, np.float32)
    best_err = math.inf
    passes: list[PassResult] = []
    for pass_no in range(1, MAX_PASSES + 1):
        ran: Session
        if replay is not None and rsession is not None and tap_store is not None and pass_no > 1:
            replay.set_static("loudness_gain_db", gain)
            rsession.rewind()
            if whole_file is not None:
                replay.state.record_ai(0.0, whole_file)
            meter = _pass_meter(sample_rate, 2)
            _replay_pass(replay, tap_store, cur.sink(meter), block_size, sample_rate, pass_no, progress)
            limiter_gr_db = replay.max_limiter_gain_reduction_db
            ran = rsession
        else:
            if not follow:
                engine.set_static("loudness_gain_db", gain)
            session.rewind()  # parameters settle on their targets: no glide between passes (and the log restarts)
            if whole_file is not None:
                engine.state.record_ai(0.0, whole_file)
            meter = _pass_meter(sample_rate, source.channels)
            tap_sink = tap_store.sink() if tap_store is not None and pass_no == 1 else None
            _render_pass(engine, source, cur.sink(meter), block_size, sample_rate, pass_no, progress, tap_sink)
            limiter_gr_db = engine.max_limiter_gain_reduction_db
            ran = session
        if follow:
            gain = engine.loudness_gain_db
        res = PassResult(
            gain,
            meter.integrated_lufs,
            math.nan,  # measured on the chosen pass only, below
            meter.loudness_range_lu,
            engine.max_comp_gain_reduction_db,  # before the tap: the first pass's on a replay
            limiter_gr_db,
            engine.nonfinite_samples,
        )
        passes.append(res)
        err = abs(res.integrated_lufs - target_lufs) if math.isfinite(res.integrated_lufs) else math.inf
        if err < best_err or pass_no == 1:
            best_err = err
            cur, best = best, cur
            best_updates = ran.ai_updates()
            best_events = ran.events()
        if not measurable:
            notes.append(
                "input is silent or too short to measure (no 400 ms block above -70 LUFS); no loudness gain applied"
            )
            break
        if not math.isfinite(res.integrated_lufs):
            notes.append("output is below the -70 LUFS gate (check the gain parameters); no loudness gain applied")
            break
        if fixed or follow:
            break
        if err <= LOUDNESS_AIM_LU:
            break
        if pass_no == MAX_PASSES:
            break
        new_gain, why = _next_gain(passes, target_lufs, p_gain.minimum, p_gain.maximum)
        if why:
            notes.append(why.format(target=target_lufs, ceiling=ceiling_dbtp))
            break
        gain = new_gain
    chosen = min(
        passes, key=lambda r: abs(r.integrated_lufs - target_lufs) if math.isfinite(r.integrated_lufs) else math.inf
    )
    # the search needs each pass's loudness only; the true peak (4x interpolation, most of a
    # measurement's cost) is measured once, on the pass that is delivered
    tpm = TruePeakMeter(best.channels)  # measure()'s true peak without its loudness (tested equal)
    with closing(best.chunks()) as chunks:
        for chunk in chunks:
            tpm.process(chunk)
    chosen.true_peak_dbtp = tpm.dbtp()
    for store in (cur, tap_store):
        if isinstance(store, DiskFrames):
            store.remove()
    return FramesRender(
        best,
        passes,
        chosen,
        notes,
        engine.latency_samples,
        best_updates,
        _worker_stats(worker, replay),
        best_events,
    )


def _worker_stats(worker: InferenceWorker | None, replay: Engine | None) -> dict | None:
    """The AI worker's stats; ``reused`` counts the windows every later pass took from the memo."""
    if worker is None:
        return None
    stats = worker.stats()
    if replay is not None and replay.sync_worker is not None:
        stats["reused"] += replay.sync_worker.memo_hits
    return stats


def _pass_meter(sample_rate: int, channels: int) -> LoudnessMeter:
    """The meter of a pass's integrated loudness and loudness range (:func:`dsp.meter.measure`'s, without
    the true peak; fed block by block as the pass is written, which gives the whole buffer's values, tested)."""
    return LoudnessMeter(
        ProcessSpec(sample_rate=sample_rate, max_block_size=CHUNK_FRAMES, num_channels=channels), true_peak=False
    )


def _secant(a: PassResult, b: PassResult) -> float:
    """Measured slope between two passes, LU of output loudness per dB of delivery gain."""
    if b.gain_db == a.gain_db or not (math.isfinite(a.integrated_lufs) and math.isfinite(b.integrated_lufs)):
        return math.nan
    return (b.integrated_lufs - a.integrated_lufs) / (b.gain_db - a.gain_db)


def _root_bounds(pts: list[tuple[float, float]], target: float) -> tuple[float, float]:
    """Bounds on the gain that gives ``target``, from passes ``(loudness, gain)``.

    Two properties of ``L(g)`` (output loudness vs delivery gain through a
    limiter) give them: its slope is at most 1 LU/dB (the limiter only takes
    level away), and it is concave (the slope falls as the limiter works
    harder).  Slope <= 1: a pass below the target puts the root at least the
    remaining error above its gain, a pass above at most its excess below.
    Concavity: between two passes the curve lies above their chord (a chord
    crossing the target bounds the root from above), outside them below the
    chord's extension (which bounds it from below).
    """
    lb, ub = -math.inf, math.inf
    for lufs, g in pts:
        if lufs < target:
            lb = max(lb, g + (target - lufs))
        elif lufs > target:
            ub = min(ub, g - (lufs - target))
    by_gain = sorted(pts, key=lambda q: q[1])
    for i, (lp, gp) in enumerate(by_gain):
        for lq, gq in by_gain[i + 1 :]:
            if gq == gp or lq <= lp:
                continue
            s = (lq - lp) / (gq - gp)
            if lq < target:
                lb = max(lb, gq + (target - lq) / s)
            elif lp > target:
                lb = max(lb, gp - (lp - target) / s)
            else:
                ub = min(ub, gp + (target - lp) / s)
    return lb, ub


def _next_gain(passes: list[PassResult], target: float, lo: float, hi: float) -> tuple[float, str]:
    """The delivery gain for the next pass, or a note saying why there is none.

    Output loudness ``L(g)`` rises with the delivery gain ``g`` with a slope
    of 1 LU/dB while the limiter is idle, falling toward 0 as it saturates.
    :func:`_root_bounds` turns the passes so far into an interval for the
    gain that meets the target; the next gain is its middle when both ends
    are known (the arithmetic mean when passes bracket the target; the
    geometric mean of the two step sizes when all passes are above it, whose
    lower end comes from a possibly much flatter secant).  When every pass is
    below the target there is no upper end: the step is the remaining error
    over the last secant slope, extrapolated by the ratio of the last two
    secants because the curve keeps bending (never less than the lower
    bound, and at most ``_MAX_STEP_DB`` further).  With the target still
    above, a last secant below ``_MIN_SLOPE`` LU/dB, or one that would need
    more than ``_MAX_STEP_DB`` of extra gain (that much more limiting), means
    the limiter is saturated: the target is not reachable, and the search
    stops rather than crush the signal.
    """
    b = passes[-1]
    err = target - b.integrated_lufs
    pts = [(p.integrated_lufs, p.gain_db) for p in passes if math.isfinite(p.integrated_lufs)]
    lb, ub = _root_bounds(pts, target)
    bracketed = any(q[0] < target for q in pts) and any(q[0] > target for q in pts)
    s_last = _secant(passes[-2], b) if len(passes) >= 2 else math.nan
    if ub < lb:  # the curve broke the model (e.g. release dynamics): fall back to a plain secant
        lb, ub = -math.inf, math.inf
    if math.isfinite(lb) and math.isfinite(ub):
        if bracketed:
            g = 0.5 * (lb + ub)
        else:
            g = b.gain_db - math.sqrt(max(b.gain_db - lb, 0.0) * max(b.gain_db - ub, 0.0))
    elif err > 0.0:
        saturated = (
            "target {target:g} LUFS not reachable: the limiter at {ceiling:g} dBTP is saturated "
            f"(loudness rises only {s_last:.2f} LU per dB of gain)"
        )
        if math.isfinite(s_last) and (s_last < _MIN_SLOPE or err / s_last > _MAX_STEP_DB):
            return b.gain_db, saturated
        slope = s_last if math.isfinite(s_last) else 1.0
        if len(passes) >= 3:
            s_prev = _secant(passes[-3], passes[-2])
            if math.isfinite(s_prev) and 0.0 < s_last < s_prev:
                slope = s_last * s_last / s_prev
        g = b.gain_db + err / min(max(slope, _MIN_SLOPE), 1.0)
        if math.isfinite(s_last):
            g = min(g, b.gain_db + _MAX_STEP_DB)
        if math.isfinite(lb):
            g = max(g, lb)
    else:
        slope = s_last if math.isfinite(s_last) else 1.0
        g = b.gain_db + err / min(max(slope, _MIN_SLOPE), 1.0)
    g = min(max(g, lo), hi)
    if g == b.gain_db:
        return g, (
            "target {target:g} LUFS not reachable: the delivery gain is at its limit "
            f"({g:+g} dB, range {lo:g}..{hi:g} dB)"
        )
    return g, ""


def _write_params_out(
    path: str, params: Mapping[str, float], loudness_gain_db: float, events: ParamsLog | None
) -> None:
    """JSON lines per INTERFACE.md (``{"t", "param", "value", "source"}``), atomically: the static values
    (the delivery gain the render chose last) at t = 0, then the chosen pass's events
    (:meth:`realtime.session.Session.events`: AI updates per changed parameter, MIDI automation)."""
    static = {k: v for k, v in params.items() if k != "loudness_gain_db"}
    static["loudness_gain_db"] = loudness_gain_db
    write_text_atomic(path, params_out_text(static, events if events is not None else ParamsLog()))


def _write_report(
    report: str | os.PathLike[str],
    report_abs: str,
    x_before: Any,
    out_abs: str,
    rate: int,
    checked: Any,
    settings: Any,
    rep: Any,
    result: Any,
    in_str: str,
    out_str: str,
    overwrite: bool,
) -> None:
    """``--report``: the delivered file read back, compared with the input and the target; written atomically."""
    from .audio_io import to_processing_layout
    from .render_report import build_report, write_report

    profile = checked.profile
    if profile is None:
        from mixpilot.inference.profile import Profile

        profile, kind = Profile.load("default"), "target"
        note = "no --reference or --target: the shipped default profile, what the AI aims at then"
    else:
        kind = "reference" if settings.reference else "target"
        note = "the profile the analytic matcher aimed at"
    y, _sr, _info = read_audio_file(out_abs)
    doc = build_report(
        x_before, to_processing_layout(y), rate, profile=profile, target_kind=kind, target_note=note, rep=rep,
        static_values=dict(checked.values), ai_updates=result.ai_updates, input_path=in_str, output_path=out_str,
    )  # fmt: skip
    try:
        write_report(doc, report_abs, overwrite=overwrite)
    except OSError as exc:
        raise OutputError(
            f"--report {os.fspath(report)}: cannot write ({exc.strerror or exc}); the output {out_str} is complete, "
            f"the report was not written"
        ) from None


def _render_streamed(
    in_str: str,
    out_abs: str,
    checked: Any,
    delivery: Any,
    progress: ProgressCallback | None,
    estimator: Estimator | None,
) -> tuple[Any, Any, Any, int]:
    """Decode, master and deliver from disk in chunks; the passes live in a scratch folder beside the
    output (removed at the end, however the render ends)."""
    import tempfile

    from .api import master_stream
    from .audio_io import AudioReader
    from .encode import deliver

    reader = AudioReader(in_str)
    folder, name = os.path.split(out_abs)
    try:
        with tempfile.TemporaryDirectory(prefix=f".{name}.tmp-scratch-", dir=folder) as scratch:
            result, rep, _info = master_stream(
                reader,
                checked,
                scratch_dir=scratch,
                progress=progress,
                limiter_margin_db=delivery.limiter_margin_db(checked.ceiling_dbtp),
                estimator=estimator,
            )
            out = deliver(
                result.best,
                reader.sample_rate,
                delivery,
                out_abs,
                ceiling_dbtp=checked.ceiling_dbtp,
                true_peak_dbtp=rep.output_true_peak_dbtp,
                integrated_lufs=rep.output_integrated_lufs,
                lra_lu=rep.output_lra_lu,
            )
    except OSError as exc:  # the scratch files (the rest are MixpilotErrors with their own words)
        if isinstance(exc, MixpilotError):
            raise
        from mixpilot.fileio import disk_full

        kind = f"{delivery.format} " if delivery.lossy else ""
        if exc.errno == errno.ENOSPC or disk_full(folder):
            raise OutputError(f"{out_abs}: cannot write {kind}(no space left on the device)") from None
        raise OutputError(
            f"{out_abs}: cannot write the render's scratch files beside it ({exc.strerror or exc})"
        ) from None
    return rep, result, out, reader.sample_rate


def _render_in_memory(
    in_str: str,
    out_abs: str,
    out_rate: int,
    checked: Any,
    delivery: Any,
    progress: ProgressCallback | None,
    estimator: Estimator | None,
    keep_input: bool,
) -> tuple[Any, Any, Any, int, Any]:
    """The whole file in memory: ``--output-rate`` (soxr over the whole file) and ``--report`` (which
    compares the input with the delivered file) take this path."""
    from .api import master_core
    from .audio_io import to_processing_layout
    from .encode import deliver, resample

    raw, sample_rate, info = read_audio_file(in_str)
    notes = list(info.notes)
    m_src = None
    if out_rate != sample_rate:
        weights = LAYOUTS[info.channels].weights if info.channels in LAYOUTS else None
        m_src = measure(raw, sample_rate, channel_weights=weights)
        raw = resample(raw, sample_rate, out_rate)
        notes.append(f"resampled {sample_rate} -> {out_rate} Hz (soxr, very high quality) before mastering")
    y, rep, result = master_core(
        raw,
        out_rate,
        checked,
        progress=progress,
        notes=notes,
        nonfinite_samples=info.nonfinite_samples,
        limiter_margin_db=delivery.limiter_margin_db(checked.ceiling_dbtp),
        estimator=estimator,
    )
    x_before = to_processing_layout(raw) if keep_input else None
    del raw
    if m_src is not None:  # the input's own figures, at its own rate
        rep.input_integrated_lufs = m_src["integrated_lufs"]
        rep.input_true_peak_dbtp = m_src["true_peak_dbtp"]
        rep.input_lra_lu = m_src["loudness_range_lu"]
    out = deliver(
        y,
        out_rate,
        delivery,
        out_abs,
        ceiling_dbtp=checked.ceiling_dbtp,
        true_peak_dbtp=rep.output_true_peak_dbtp,
        integrated_lufs=rep.output_integrated_lufs,
        lra_lu=rep.output_lra_lu,
    )
    return rep, result, out, sample_rate, x_before


def render_file(
    in_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    target_lufs: float | None = -14.0,
    ceiling_dbtp: float | None = -1.0,
    params: Mapping[str, float] | None = None,
    model: str | None = "default",
    ai_amount: float = 1.0,
    amounts: Mapping[str, float] | None = None,
    float_output: bool = False,
    overwrite: bool = False,
    block_size: int = 1024,
    progress: ProgressCallback | None = None,
    params_out: str | os.PathLike[str] | None = None,
    loudness_mode: str = "search",
    ai_hop_s: float = 0.5,
    crossfade_s: float = 2.0,
    midi_file: str | None = None,
    midi_map: str | None = None,
    bit_depth: str | None = None,
    output_rate: int | None = None,
    settings: MasterSettings | None = None,
    estimator: Estimator | None = None,
    report: str | os.PathLike[str] | None = None,
) -> RenderReport:
    """Render ``in_path`` through the mixing chain into ``out_path`` at ``target_lufs``.

    The processing is :func:`realtime.api.master_stream` (:func:`realtime.api.master_core`, what
    ``mixpilot.master`` runs, with the same defaults -- the shipped AI model, -14 LUFS, -1 dBTP --
    streamed from disk; the in-memory function itself with ``report`` or ``output_rate``);
    delivery into the file is :func:`realtime.encode.deliver`.

    Parameters
    ----------
    in_path, out_path : path-like
        Any file soundfile reads; a ``.wav``, ``.flac``, ``.ogg`` or ``.mp3`` to write.  Never the same file.
    target_lufs : float
        Integrated loudness to deliver, LUFS (-60..0); met within
        :data:`LOUDNESS_TOLERANCE_LU` unless the notes say otherwise.
    ceiling_dbtp : float or None
        True-peak ceiling of the delivered file, dBTP (the range of
        ``limiter_ceiling_dbtp``).  ``None`` takes ``limiter_ceiling_dbtp`` from
        ``params`` or the table default.  A number overrides a value in ``params``.
    params : mapping of str to number, optional
        Static parameter values, validated against :mod:`dsp.params`.
    model : str
        ``"default"`` (the shipped model), a model name from ``models_onnx/``,
        a path to an ``.onnx`` with its card, or ``"none"`` (static
        parameters).  A model that cannot be used gives a note and the
        heuristic estimator.
    ai_amount : float
        0..1, blend between neutral and the AI's parameters.
    amounts : mapping aspect -> 0..1, optional
        Per-aspect AI amounts (``--amount tone=0.5``), on top of ``ai_amount``.
    ai_hop_s, crossfade_s : float
        AI update interval and glide time (seconds of stream time).
    midi_file, midi_map : path, optional
        ``--midi-file`` CC automation through ``--midi-map`` (built-in map by default).
    bit_depth : ``"16"``, ``"24"`` or ``"32f"``, optional
        PCM outputs: 24 by default; 16 is TPDF-dithered (:mod:`realtime.encode`).
    float_output : bool
        Same as ``bit_depth="32f"`` (``--float``).
    output_rate : int, optional
        Deliver at this sample rate (the input is resampled with soxr before mastering).
    overwrite : bool
        Replace an existing output file.
    block_size : int
        Frames per ``Engine.process_block`` call (1..65536); the result does not depend on it.
    progress : callable, optional
        ``progress(pass_number, done_seconds, total_seconds)`` after every block.
    params_out : path-like, optional
        JSON lines of the parameters set at t = 0 and the AI's changes (INTERFACE.md ``--params-out``).
    loudness_mode : ``"search"`` or ``"follow"``
        See :func:`render_array`.
    settings : realtime.api.MasterSettings, optional
        All processing settings at once (batch workers); replaces the keyword
        arguments from ``target_lufs`` to ``midi_map``.
    estimator : optional
        An already loaded model (batch workers load it once per process).
    report : path-like, optional
        ``--report``: a ``.png`` chart, a self-contained ``.html`` page, or a
        folder with ``report.png``, ``report.json`` and ``report.html``: the
        input and the delivered file against the target, loudness over time,
        the AI's parameters over time (:mod:`realtime.render_report`).

    Returns
    -------
    RenderReport

    Raises
    ------
    RenderError, RenderUsageError, ParameterError, AudioFileError, OSError
        All before anything is written, except errors of the final write itself
        (disk full, ...), which leave no partial file behind.
    """
    from .api import MasterSettings
    from .encode import Delivery

    t0 = time.perf_counter()
    # 1. arguments
    if settings is None:
        settings = MasterSettings(
            target_lufs=target_lufs,
            ceiling_dbtp=ceiling_dbtp,
            model=model,
            params=params,
            ai_amount=ai_amount,
            ai_hop_s=ai_hop_s,
            crossfade_s=crossfade_s,
            loudness_mode=loudness_mode,
            block_size=block_size,
            midi_file=midi_file,
            midi_map=midi_map,
            amounts=amounts,
        )
    checked = settings.checked()
    if float_output:
        if bit_depth not in (None, "32f"):
            raise RenderUsageError(f"--float and --bit-depth {bit_depth} disagree; give one of them")
        bit_depth = "32f"

    # 2. paths (nothing has been written yet)
    in_str = os.fspath(in_path)
    out_str = os.fspath(out_path)
    delivery = Delivery.for_path(out_str, bit_depth, output_rate)
    sinfo = probe_audio(in_str)
    out_rate = delivery.rate_for(out_str, sinfo.samplerate)
    out_abs = _check_writable_target(out_str, "output", overwrite=overwrite, protect=(in_str,))
    po_abs = None
    if params_out is not None:
        po_str = os.fspath(params_out)
        po_abs = _check_writable_target(po_str, "--params-out file", overwrite=overwrite, protect=(in_str,))
        if _same_file(out_abs, po_abs):
            raise RenderUsageError(f"{po_str}: --params-out is the same file as the output")
    report_abs = None
    if report is not None:
        from .render_report import check_report_path

        refs: list[str] = []
        if settings.reference:
            from mixpilot.inference.profile import expand_sources

            refs = [os.fspath(r) for r in expand_sources(list(settings.reference))]
        protect = (in_str, out_abs, *([po_abs] if po_abs else []), *refs)
        report_abs = check_report_path(os.fspath(report), protect=protect, overwrite=overwrite)

    # 3. read, master, deliver
    x_before = None
    if report_abs is None and out_rate == sinfo.samplerate and sinfo.format not in WHOLE_READ_FORMATS:
        # streamed from disk: a few chunks in memory whatever the length (realtime.api.master_stream)
        rep, result, out, sample_rate = _render_streamed(in_str, out_abs, checked, delivery, progress, estimator)
    else:
        rep, result, out, sample_rate, x_before = _render_in_memory(
            in_str, out_abs, out_rate, checked, delivery, progress, estimator, report_abs is not None
        )
    if po_abs is not None:
        try:
            _write_params_out(po_abs, checked.values, rep.loudness_gain_db, result.events)
        except OSError as exc:  # the audio is complete: say so, and which file is missing
            reason = exc.strerror or str(exc)
            raise OutputError(
                f"--params-out {os.fspath(params_out or po_abs)}: cannot write ({reason}); the output {out_str} is "
                f"complete, the parameter log was not written"
            ) from None
    rep.notes += out.notes
    if report is not None and report_abs is not None:  # (the in-memory render: x_before is the input)
        _write_report(report, report_abs, x_before, out_abs, out_rate, checked, settings, rep, result, in_str,
                      out_str, overwrite)  # fmt: skip
        del x_before
    reached = math.isfinite(out.integrated_lufs) and abs(out.integrated_lufs - rep.target_lufs) <= LOUDNESS_TOLERANCE_LU
    seconds = time.perf_counter() - t0
    fields = rep.as_dict()
    fields.update(
        output_integrated_lufs=out.integrated_lufs,
        output_true_peak_dbtp=out.true_peak_dbtp,
        output_lra_lu=out.lra_lu,
        target_reached=reached if math.isfinite(rep.input_integrated_lufs) else rep.target_reached,
        seconds=seconds,
        realtime_factor=rep.duration_s / seconds if seconds > 0 else math.inf,
    )
    return RenderReport(
        input_path=in_str,
        output_path=out_str,
        input_sample_rate=int(sample_rate),
        format=delivery.format,
        subtype=out.subtype,
        trim_db=out.trim_db,
        encodes=out.encodes,
        **fields,
    )
