"""The Python API behind ``mixpilot.master`` and ``mixpilot.analyze`` -- and behind ``mixpilot render``.

``mixpilot render`` (:func:`realtime.render.render_file`) is this module plus
file reading and delivery: both validate their settings with
:meth:`MasterSettings.checked` and process with :func:`master_core`, so a
script and the command line give bit-identical samples for the same settings
(``tests/realtime/test_api.py`` checks it against a ``--bit-depth 32f``
render).  The defaults are the command line's: the shipped AI model, -14 LUFS,
-1 dBTP, the loudness search.

>>> import numpy as np, mixpilot
>>> y, report = mixpilot.master(x, 44100)                        # doctest: +SKIP
>>> y, report = mixpilot.master(x, 44100, target_lufs=-23, model="none")  # doctest: +SKIP

Layouts: a 1-D array is mono and comes back 1-D; ``[frames, 1]`` and
``[frames, 2]`` come back in their own shape; ``[frames, 3..8]`` (surround,
WAV channel order) is measured in its own layout and mastered as its ITU-R
BS.775 stereo downmix, so it comes back ``[frames, 2]`` (a note says so).
The output is float32, aligned with the input (the limiter latency is
compensated) and exactly as long.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from mixpilot.dsp.params import ASPECTS, PARAM_INDEX, PARAMS
from mixpilot.dsp.settings import setting
from mixpilot.dsp.settings import validate as validate_setting
from mixpilot.dsp.spec import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

from .render import (
    LOUDNESS_MODES,
    LOUDNESS_TOLERANCE_LU,
    ArrayRender,
    FramesRender,
    ProgressCallback,
    RenderUsageError,
    _validated_params,
    render_array,
)

if TYPE_CHECKING:
    from mixpilot.inference.profile import Profile
    from mixpilot.inference.worker import Estimator

    from .audio_io import AudioInfo, AudioReader

__all__ = [
    "DEFAULT_CEILING_DBTP",
    "DEFAULT_MODEL",
    "DEFAULT_TARGET_LUFS",
    "CheckedSettings",
    "Engine",
    "MasterReport",
    "MasterSettings",
    "analyze",
    "json_ready",
    "master",
    "master_core",
    "master_stream",
]

DEFAULT_TARGET_LUFS: float = setting("target_lufs").default  # dsp.settings: -14
DEFAULT_CEILING_DBTP: float = setting("ceiling_dbtp").default  # -1
DEFAULT_MODEL = "default"
AMOUNT_ASPECTS = tuple(a for a in ASPECTS if a != "safety")  # what --amount ASPECT=A takes


@dataclass(frozen=True)
class CheckedSettings:
    """:class:`MasterSettings` after validation: plain numbers, the parameter values, notes."""

    target_lufs: float
    ceiling_dbtp: float
    values: dict
    model: str | None
    ai_amount: float
    ai_hop_s: float
    crossfade_s: float
    loudness_mode: str
    block_size: int
    midi_file: str | None
    midi_map: str | None
    amounts: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    profile: Profile | None = None  # inference.profile.Profile of --reference / --target (None: neither)


@dataclass(frozen=True)
class MasterSettings:
    """Everything that decides the mastered samples (not the file they are delivered in).

    Picklable, so a batch hands the same settings to every worker process or
    Ray task.  ``ceiling_dbtp=None`` takes ``limiter_ceiling_dbtp`` from
    ``params`` (or the table default, -1 dBTP); a number overrides ``params``.
    ``model`` is ``"default"``, a name in ``models_onnx/``, a path to an
    ``.onnx`` with its card, or ``"none"`` for static parameters.

    ``reference`` (audio files or folders) or ``target`` (a shipped profile
    name or a profile JSON) give the AI a target: the analytic matcher
    (:mod:`inference.matcher`) then sets the AI parameters (reading the whole
    input first), whatever ``model`` says unless it is ``"none"``; and
    ``target_lufs=None`` delivers the target's integrated loudness.
    """

    target_lufs: float | None = DEFAULT_TARGET_LUFS
    ceiling_dbtp: float | None = DEFAULT_CEILING_DBTP
    model: str | None = DEFAULT_MODEL
    params: Mapping[str, float] | None = None
    ai_amount: float = setting("ai_amount").default
    ai_hop_s: float = setting("ai_hop_s").default
    crossfade_s: float = setting("crossfade_s").default
    loudness_mode: str = "search"
    block_size: int = setting("block_size").default
    midi_file: str | None = None
    midi_map: str | None = None
    amounts: Mapping[str, float] | None = None  # per-aspect AI amounts (--amount tone=0.5), on top of ai_amount
    reference: tuple[str, ...] | str | None = None  # --reference FILE|DIR ...
    target: str | None = None  # --target NAME|PATH

    def checked(self) -> CheckedSettings:
        """Validate every value against the settings table (:mod:`dsp.settings`) and the parameter table.

        Raises one-line :class:`RenderUsageError` / ``ParameterError`` (usage errors, exit code 2), and
        for a bad reference or profile ``ProfileError`` / ``AudioFileError`` (exit code 1).
        """

        def check(name: str, value: object, flag: str | None = None) -> Any:
            return validate_setting(name, value, flag=flag, error=RenderUsageError)

        amounts = {k: check("aspect_amount", v, f"--amount {k}") for k, v in dict(self.amounts or {}).items()}
        bad = sorted(set(amounts) - set(AMOUNT_ASPECTS))
        if bad:
            raise RenderUsageError(f"--amount {bad[0]}: not an aspect; the aspects are {', '.join(AMOUNT_ASPECTS)}")
        if self.loudness_mode not in LOUDNESS_MODES:
            raise RenderUsageError(
                f"--loudness-mode must be one of {', '.join(LOUDNESS_MODES)}, not {self.loudness_mode!r}"
            )
        values = _validated_params(self.params)
        notes: list[str] = []
        from .references import delivery_for, resolve_target

        profile = resolve_target(self.reference, self.target)
        given = self.ceiling_dbtp if self.ceiling_dbtp is not None else values.get("limiter_ceiling_dbtp")
        target_lufs, ceiling_dbtp, delivery_notes = delivery_for(
            profile, self.target_lufs, given, what="reference's" if self.reference else "target's"
        )
        notes += delivery_notes
        target = check("target_lufs", DEFAULT_TARGET_LUFS if target_lufs is None else target_lufs)
        if ceiling_dbtp is None:
            ceiling = values.get("limiter_ceiling_dbtp", PARAMS[PARAM_INDEX["limiter_ceiling_dbtp"]].default)
        else:
            ceiling = check("ceiling_dbtp", ceiling_dbtp)
            if "limiter_ceiling_dbtp" in values and values["limiter_ceiling_dbtp"] != ceiling:
                notes.append(
                    f"--ceiling-dbtp {ceiling:g} overrides limiter_ceiling_dbtp "
                    f"{values['limiter_ceiling_dbtp']:g} from the parameters"
                )
        if "limiter_ceiling_dbtp" in values:
            values["limiter_ceiling_dbtp"] = ceiling
        return CheckedSettings(
            target_lufs=target,
            ceiling_dbtp=float(ceiling),
            values=values,
            model=self.model,
            ai_amount=check("ai_amount", self.ai_amount),
            ai_hop_s=check("ai_hop_s", self.ai_hop_s),
            crossfade_s=check("crossfade_s", self.crossfade_s),
            loudness_mode=self.loudness_mode,
            block_size=check("block_size", self.block_size),
            midi_file=None if self.midi_file is None else os.fspath(self.midi_file),
            midi_map=None if self.midi_map is None else os.fspath(self.midi_map),
            amounts=amounts,
            notes=tuple(notes),
            profile=profile,
        )


@dataclass
class MasterReport:
    """What :func:`master` did.  Loudness in LUFS, peaks in dBTP, gain reduction in dB (>= 0).

    ``output_*`` describe the returned float samples; ``limiter_ceiling_dbtp``
    is the ceiling the limiter ran at (``ceiling_dbtp`` less a delivery margin
    when a file format needs one, see :mod:`realtime.encode`).
    """

    sample_rate: int
    frames: int
    input_channels: int
    output_channels: int
    target_lufs: float
    ceiling_dbtp: float
    limiter_ceiling_dbtp: float
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

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate

    @property
    def loudness_error_lu(self) -> float:
        return self.output_integrated_lufs - self.target_lufs

    def as_dict(self) -> dict:
        return asdict(self)


def master_core(
    raw: np.ndarray,
    sample_rate: int,
    settings: CheckedSettings,
    *,
    progress: ProgressCallback | None = None,
    notes: list[str] | None = None,
    nonfinite_samples: int = 0,
    limiter_margin_db: float = 0.0,
    estimator: Estimator | None = None,
    warn: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, MasterReport, ArrayRender]:
    """Master ``raw`` [frames, 1..8] float32 at ``sample_rate``: measure, downmix, render, report.

    The one processing path of :func:`master` and :func:`realtime.render.render_file`
    (which streams it from disk: :func:`master_stream`, the same samples).
    ``limiter_margin_db`` lowers the limiter's ceiling for a delivery format
    that overshoots (lossy codecs, dither); ``estimator`` reuses a loaded
    model (batch workers), otherwise ``settings.model`` is loaded.

    Returns the rendered [frames, 1|2] float32, the report and the raw
    :class:`realtime.render.ArrayRender` (its ``ai_updates`` feed ``--params-out``).
    """
    from mixpilot.dsp.meter import measure

    from .audio_io import LAYOUTS, to_processing_layout

    t0 = time.perf_counter()
    notes = list(notes or []) + list(settings.notes)
    automation, estimator = _controls_and_estimator(settings, notes.append, warn, estimator)
    channels = int(raw.shape[1])
    # input loudness of the audio as it is (BS.1770-4 weights of its layout, audio_io.LAYOUTS)
    weights = LAYOUTS[channels].weights if channels in LAYOUTS else None
    m_in = measure(raw, sample_rate, channel_weights=weights)
    x = to_processing_layout(raw)
    limiter_ceiling, values = _limiter_values(settings, limiter_margin_db)
    result = render_array(
        x,
        sample_rate,
        target_lufs=settings.target_lufs,
        ceiling_dbtp=limiter_ceiling,
        params=values,
        block_size=settings.block_size,
        progress=progress,
        input_integrated_lufs=m_in["integrated_lufs"],
        loudness_mode=settings.loudness_mode,
        estimator=estimator,
        ai_amount=settings.ai_amount,
        ai_hop_s=settings.ai_hop_s,
        crossfade_s=settings.crossfade_s,
        midi_file=automation,
        amounts=settings.amounts,
    )
    report = _master_report(
        result, settings, sample_rate, int(x.shape[0]), channels, int(x.shape[1]), m_in, limiter_ceiling, notes,
        nonfinite_samples, estimator, t0,
    )  # fmt: skip
    return result.out, report, result


def master_stream(
    reader: AudioReader,
    settings: CheckedSettings,
    *,
    scratch_dir: str,
    progress: ProgressCallback | None = None,
    limiter_margin_db: float = 0.0,
    estimator: Estimator | None = None,
) -> tuple[FramesRender, MasterReport, AudioInfo]:
    """:func:`master_core` of a file read from disk in chunks, with every pass in scratch files.

    A first pass over the file (progress pass 0) measures the input (the
    meter :func:`dsp.meter.measure` runs, fed chunk by chunk) and, for the
    analytic matcher's whole-file estimate, gathers its statistics
    (:meth:`inference.matcher.AnalyticMatcher.analyse_stats`); then
    :func:`realtime.render.render_frames` renders the passes from the file
    into raw scratch files in ``scratch_dir`` (:mod:`realtime.frames`).  Each
    of these is the same computation as on the whole array, block for block,
    so the chosen pass holds :func:`master_core`'s samples (tested bit for
    bit); memory is a few chunks whatever the file's length.

    Returns the render (its ``best`` is the chosen pass, on disk), the report
    and the input's :class:`realtime.audio_io.AudioInfo`.
    """
    from mixpilot.dsp.meter import LoudnessMeter
    from mixpilot.dsp.spec import ProcessSpec

    from .audio_io import LAYOUTS, to_processing_layout
    from .frames import CHUNK_FRAMES
    from .render import disk_store, render_frames

    t0 = time.perf_counter()
    early: list[str] = []
    automation, estimator = _controls_and_estimator(settings, early.append, None, estimator)
    rate, channels = reader.sample_rate, reader.channels
    processed = min(channels, 2)
    follow = settings.loudness_mode == "follow" and "loudness_gain_db" not in settings.values
    # render_array's condition for the analytic matcher's whole-file estimate
    whole = (
        estimator is not None
        and bool(getattr(estimator, "wants_audio", False))
        and not follow
        and hasattr(estimator, "analyse")
    )
    stats = cast(Any, estimator).whole_file_stats(rate, processed) if whole else None
    weights = LAYOUTS[channels].weights if channels in LAYOUTS else None
    meter = LoudnessMeter(
        ProcessSpec(sample_rate=rate, max_block_size=CHUNK_FRAMES, num_channels=channels), channel_weights=weights
    )
    total_s = reader.sinfo.frames / rate
    done = 0
    with closing(reader.chunks(CHUNK_FRAMES)) as chunks:  # the file is closed however the pass ends
        for raw in chunks:
            meter.process(raw)
            if stats is not None:
                stats.update(to_processing_layout(raw))
            done += raw.shape[0]
            if progress is not None:
                progress(0, min(done / rate, total_s), total_s)
    meter.flush_true_peak()
    m_in = {
        "integrated_lufs": meter.integrated_lufs,
        "true_peak_dbtp": meter.true_peak_dbtp,
        "loudness_range_lu": meter.loudness_range_lu,
    }
    info = reader.info()
    notes = list(info.notes) + list(settings.notes) + early
    limiter_ceiling, values = _limiter_values(settings, limiter_margin_db)
    result = render_frames(
        _DecodedFrames(reader, info.frames, processed),
        rate,
        new_store=disk_store(scratch_dir),
        analyse=lambda est: est.analyse_stats(stats),
        target_lufs=settings.target_lufs,
        ceiling_dbtp=limiter_ceiling,
        params=values,
        block_size=settings.block_size,
        progress=progress,
        input_integrated_lufs=m_in["integrated_lufs"],
        loudness_mode=settings.loudness_mode,
        estimator=estimator,
        ai_amount=settings.ai_amount,
        ai_hop_s=settings.ai_hop_s,
        crossfade_s=settings.crossfade_s,
        midi_file=automation,
        amounts=settings.amounts,
    )
    report = _master_report(
        result, settings, rate, info.frames, channels, processed, m_in, limiter_ceiling, notes,
        info.nonfinite_samples, estimator, t0,
    )  # fmt: skip
    return result, report, info


class _DecodedFrames:
    """The input of a streamed render: the file decoded again for each pass, in the processing layout."""

    def __init__(self, reader: AudioReader, frames: int, channels: int) -> None:
        self.reader = reader
        self.frames = frames
        self.channels = channels

    def chunks(self, size: int = 1 << 16) -> Generator[np.ndarray, None, None]:
        from .audio_io import to_processing_layout

        with closing(self.reader.chunks(size)) as raws:
            for raw in raws:
                yield to_processing_layout(raw)

    def sink(self, meter: Any = None) -> Any:
        raise TypeError("the input file is read-only")


def _controls_and_estimator(
    settings: CheckedSettings,
    note: Callable[[str], None],
    warn: Callable[[str], None] | None,
    estimator: Estimator | None,
) -> tuple[Any, Estimator | None]:
    """The ``--midi-file`` automation (None without one) and the estimator ``settings.model`` asks for."""
    automation = None
    if settings.midi_file is not None or settings.midi_map is not None:
        from .session import load_controls

        # a broken --midi-map is an error even with nothing to apply
        _, automation = load_controls(
            settings.midi_map, settings.midi_file, ceiling_dbtp=settings.ceiling_dbtp, note=note
        )
        if settings.midi_file is None:
            note(f"--midi-map {settings.midi_map}: no --midi-file to apply it to; the render has no MIDI")
    return automation, estimator_for(settings, warn or note, estimator)


def _limiter_values(settings: CheckedSettings, limiter_margin_db: float) -> tuple[float, dict]:
    """The limiter's ceiling (the delivery's less its format margin) and the parameter values with it."""
    p_ceil = PARAMS[PARAM_INDEX["limiter_ceiling_dbtp"]]
    limiter_ceiling = max(settings.ceiling_dbtp - max(limiter_margin_db, 0.0), p_ceil.minimum)
    values = dict(settings.values)
    if "limiter_ceiling_dbtp" in values:
        values["limiter_ceiling_dbtp"] = limiter_ceiling
    return limiter_ceiling, values


def _master_report(
    result: ArrayRender | FramesRender,
    settings: CheckedSettings,
    sample_rate: int,
    frames: int,
    input_channels: int,
    output_channels: int,
    m_in: Mapping[str, float],
    limiter_ceiling: float,
    notes: list[str],
    nonfinite_samples: int,
    estimator: Estimator | None,
    t0: float,
) -> MasterReport:
    notes += result.notes
    chosen = result.chosen
    target = settings.target_lufs
    reached = math.isfinite(chosen.integrated_lufs) and abs(chosen.integrated_lufs - target) <= LOUDNESS_TOLERANCE_LU
    if not reached and math.isfinite(chosen.integrated_lufs):
        notes.append(f"output is {chosen.integrated_lufs:.1f} LUFS, not the {target:g} LUFS asked for")
    seconds = time.perf_counter() - t0
    duration = frames / sample_rate
    return MasterReport(
        sample_rate=int(sample_rate),
        frames=int(frames),
        input_channels=input_channels,
        output_channels=output_channels,
        target_lufs=target,
        ceiling_dbtp=settings.ceiling_dbtp,
        limiter_ceiling_dbtp=limiter_ceiling,
        input_integrated_lufs=m_in["integrated_lufs"],
        input_true_peak_dbtp=m_in["true_peak_dbtp"],
        input_lra_lu=m_in["loudness_range_lu"],
        output_integrated_lufs=chosen.integrated_lufs,
        output_true_peak_dbtp=chosen.true_peak_dbtp,
        output_lra_lu=chosen.lra_lu,
        loudness_gain_db=chosen.gain_db,
        max_comp_gain_reduction_db=chosen.comp_gr_db,
        max_limiter_gain_reduction_db=chosen.limiter_gr_db,
        passes=len(result.passes),
        target_reached=reached,
        seconds=seconds,
        realtime_factor=duration / seconds if seconds > 0 else math.inf,
        latency_samples=result.latency_samples,
        nonfinite_samples=nonfinite_samples,
        notes=notes,
        model=getattr(estimator, "name", "none") if estimator is not None else "none",
        ai_updates=len(result.ai_updates),
        inference=result.inference,
    )


class Engine:
    """Block-by-block mastering of your own stream: the chain, the AI and the loudness follower.

    ``mixpilot.Engine`` is what ``mixpilot play``/``live`` run, without the
    audio device: give it blocks as they come and take the processed blocks
    back.  The defaults are :func:`master`'s (the shipped AI, -14 LUFS,
    -1 dBTP); the delivery gain comes from the real-time loudness follower
    (BS.1770-4 integrated, retargeted every 0.5 s of stream time), so the
    output is exactly ``master(..., loudness_mode="follow")`` of the same
    audio when the blocks are ``block_size`` frames (``tests/realtime/test_api.py``)::

        engine = mixpilot.Engine(48000, 2)
        for block in my_blocks:                    # float32 [frames, 2], frames <= max_block_size
            out = engine.process(block)            # or engine.process_block(block, out) (no allocation)
        print(engine.latency_samples, engine.meters()["integrated_lufs"])

    The AI runs inside :meth:`process_block`, synchronously, at every
    ``ai_hop_s`` of stream time (the stream positions a render uses), so a
    block that reaches a hop also computes one analysis window (a few
    milliseconds on one core); the output is reproducible.  ``mixpilot play``
    computes the same windows on a background thread instead, so that the
    audio callback never waits.

    Parameters
    ----------
    sample_rate : int
        Hz (8 000..192 000).
    channels : int
        1 or 2: the layout of the input and the output blocks.
    max_block_size : int
        Largest block :meth:`process_block` will be given (the ``block_size`` setting's range).
    model : str or None
        ``"default"``, a name in ``models_onnx/``, a path to an ``.onnx``, or
        ``"none"``/``None`` for static parameters.  A model that cannot be
        loaded gives a note (:attr:`notes`) and the analytic matcher instead.
    target_lufs, ceiling_dbtp, params, amount, ai_amount, ai_hop_s, crossfade_s
        As for :func:`master` (validated against the same tables); ``target_lufs``
        is the follower's target.

    Attributes
    ----------
    core : realtime.engine.Engine
        The engine itself (MIDI controls, A/B, bypass, meters' raw snapshot).
    model : str
        The estimator that runs: a model name, ``"matcher"``, ``"heuristic"`` or ``"none"``.
    notes : list[str]
        What was adjusted or replaced while setting up.
    """

    def __init__(
        self,
        sample_rate: int,
        channels: int = 2,
        *,
        max_block_size: int = 1024,
        model: str | None = DEFAULT_MODEL,
        target_lufs: float = DEFAULT_TARGET_LUFS,
        ceiling_dbtp: float | None = DEFAULT_CEILING_DBTP,
        params: Mapping[str, float] | None = None,
        ai_amount: float = setting("ai_amount").default,
        ai_hop_s: float = setting("ai_hop_s").default,
        crossfade_s: float = setting("crossfade_s").default,
        amount: Mapping[str, float] | None = None,
    ) -> None:
        from mixpilot.inference.worker import load_estimator

        from .session import build_session

        sr = _checked_rate(sample_rate)
        self.notes: list[str] = []
        if isinstance(channels, bool) or channels not in (1, 2):
            raise RenderUsageError(f"channels must be 1 or 2, not {channels!r}")
        c = MasterSettings(
            target_lufs=target_lufs,
            ceiling_dbtp=ceiling_dbtp,
            model=model if model is not None else "none",
            params=params,
            ai_amount=ai_amount,
            ai_hop_s=ai_hop_s,
            crossfade_s=crossfade_s,
            loudness_mode="follow",
            block_size=max_block_size,
            amounts=amount,
        ).checked()
        self.notes += c.notes
        self.sample_rate = sr
        self.channels = int(channels)
        self.max_block_size = int(c.block_size)
        values = dict(c.values)
        estimator = load_estimator(c.model, self.notes.append)
        self.model: str = getattr(estimator, "name", "none") if estimator is not None else "none"
        # the session render, play and live build (realtime.session): the worker steps inside the engine;
        # level belongs to the loudness follower, as in play/live and follow renders (the parameter state)
        session = build_session(
            sr,
            self.channels,
            max_block_size=self.max_block_size,
            params=values,
            target_lufs=c.target_lufs,
            ceiling_dbtp=c.ceiling_dbtp,
            loudness_mode="follow",
            estimator=estimator,
            ai_amount=c.ai_amount,
            amounts=c.amounts,
            ai_hop_s=c.ai_hop_s,
            crossfade_s=c.crossfade_s,
            sync_ai=True,
            keep_log=False,  # a stream of any length keeps no --params-out events
        )
        self.core = session.engine
        self.worker = session.worker
        self._out = np.zeros((self.max_block_size, self.channels), dtype=np.float32)

    @property
    def latency_samples(self) -> int:
        """Output frame ``n`` is input frame ``n - latency_samples`` (the limiter's lookahead)."""
        return int(self.core.latency_samples)

    def process_block(self, block: np.ndarray, out: np.ndarray) -> None:
        """Process ``block`` into ``out``: float32 C-contiguous ``[frames, channels]``, frames <= max_block_size.

        Allocates nothing (between AI hops); ``out`` may not be ``block``.
        """
        self.core.process_block(block, out)

    def process(self, block: np.ndarray) -> np.ndarray:
        """Process one block and return a new float32 array of its shape (1-D mono stays 1-D)."""
        a = np.asarray(block)
        mono = a.ndim == 1
        x = a[:, None] if mono else a
        if x.ndim != 2 or x.shape[1] != self.channels:
            raise RenderUsageError(f"a block must be [frames, {self.channels}], not {a.shape}")
        if x.shape[0] > self.max_block_size:
            raise RenderUsageError(
                f"a block of {x.shape[0]} frames is longer than max_block_size {self.max_block_size}"
            )
        x = np.ascontiguousarray(x, dtype=np.float32)
        y = self._out[: x.shape[0]]
        self.core.process_block(x, y)
        return y[:, 0].copy() if mono else y.copy()

    def reset(self) -> None:
        """Back to stream position 0: every state cleared, the AI starts again from its first window."""
        self.core.reset()

    def meters(self) -> dict[str, float]:
        """The output meters (refreshed every 100 ms of stream time) and the chain's gains.

        ``momentary_lufs``, ``short_term_lufs``, ``integrated_lufs``,
        ``loudness_range_lu``, ``true_peak_dbtp``, ``sample_peak_dbfs`` (the
        delivered signal, BS.1770-4; ``-inf`` before there is a gated block),
        ``comp_gr_db``, ``limiter_gr_db`` and their maxima, ``loudness_gain_db``
        (the follower's delivery gain), ``stream_s``, ``nonfinite_samples``.
        """
        from .engine import SNAPSHOT_NAMES

        return {name: float(v) for name, v in zip(SNAPSHOT_NAMES, self.core.snapshot)}

    def parameter_targets(self) -> dict[str, float]:
        """The parameters the chain is gliding toward now (static values, the AI's targets, the follower's gain)."""
        from mixpilot.dsp.params import PARAMS as _P

        return {p.name: float(v) for p, v in zip(_P, self.core.chain.targets)}


def _checked_rate(sample_rate: object) -> int:
    """An integer sample rate inside the supported range (one-line usage error otherwise)."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
        if isinstance(sample_rate, float) and sample_rate.is_integer():
            sample_rate = int(sample_rate)
        else:
            raise RenderUsageError(f"sample_rate must be an integer number of Hz, got {sample_rate!r}")
    sr = int(sample_rate)
    if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        raise RenderUsageError(f"sample_rate {sr} Hz is outside the supported {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz")
    return sr


def estimator_for(
    settings: CheckedSettings, warn: Callable[[str], None], loaded: Estimator | None = None
) -> Estimator | None:
    """The AI of a run: the default model or the analytic matcher aiming at ``settings.profile`` when there is
    one (:func:`matcher_for`; unless the model is ``none``), else ``loaded`` (a model a batch worker
    keeps) or :func:`inference.worker.load_estimator`.
    """
    from mixpilot.inference.worker import load_estimator

    model = None if settings.model is None else str(settings.model).strip().lower()
    if settings.profile is not None and model != "none":
        return matcher_for(settings.profile, settings.model, warn)
    if loaded is not None:
        return loaded
    return load_estimator(settings.model, warn)


def matcher_for(profile: Profile, spec: str | None, warn: Callable[[str], None]) -> Estimator:
    """The AI aiming at ``profile``: a target-conditioned model (``--model target``, a path to one, or the
    default model when the default is one) on the analytic matcher's dynamics
    (:class:`inference.model_matcher.ModelMatcher`), else the analytic matcher itself.  A window model
    cannot aim at a target, and a model that cannot be used gives one warning: the analytic matcher."""
    from mixpilot.inference.matcher import AnalyticMatcher
    from mixpilot.inference.model import DEFAULT_MODEL

    low = None if spec is None else str(spec).strip().lower()
    if low == "matcher":
        return AnalyticMatcher(profile)
    name = DEFAULT_MODEL if low in (None, "", "default") else str(spec)
    try:
        from mixpilot.inference.model_matcher import ModelMatcher
        from mixpilot.inference.target_model import TargetModel, is_target_model

        if is_target_model(name):
            return ModelMatcher(TargetModel.load(name), profile)
    except Exception as exc:  # missing, corrupt or mismatched: the analytic matcher, said once
        warn(f"model {spec or name!r} cannot be used ({' '.join(str(exc).split())}); using the analytic matcher")
        return AnalyticMatcher(profile)
    if low not in (None, "", "default"):
        warn(f"--model {spec}: a window model cannot aim at a reference or target; using the analytic matcher")
    return AnalyticMatcher(profile)


def json_ready(v):
    """``v`` with every non-finite float as None: JSON has no infinities (silence reads -inf LUFS)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: json_ready(w) for k, w in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_ready(w) for w in v]
    return v


def _as_frames(audio: object, sample_rate: object) -> tuple[np.ndarray, int, bool]:
    """``audio`` as C-contiguous float32 [frames, channels]; whether it was 1-D; the checked rate."""
    sr = _checked_rate(sample_rate)
    a = np.asarray(audio)
    if a.dtype.kind != "f":
        raise RenderUsageError(
            f"audio must be floating point (-1..1 full scale), got {a.dtype}; divide integer PCM by its full scale"
        )
    mono = a.ndim == 1
    if mono:
        a = a[:, None]
    if a.ndim != 2:
        raise RenderUsageError(f"audio must be 1-D (mono) or [frames, channels], got shape {a.shape}")
    from .audio_io import MAX_CHANNELS

    if not 1 <= a.shape[1] <= MAX_CHANNELS:
        raise RenderUsageError(
            f"audio has {a.shape[1]} channels (shape {a.shape}); 1..{MAX_CHANNELS} channels as [frames, channels]"
        )
    if a.shape[0] == 0:
        raise RenderUsageError("audio is empty (0 frames)")
    return np.ascontiguousarray(a, dtype=np.float32), sr, mono


def master(
    audio: np.ndarray,
    sample_rate: int,
    *,
    target_lufs: float | None = None,
    ceiling_dbtp: float | None = DEFAULT_CEILING_DBTP,
    model: str | None = DEFAULT_MODEL,
    amount: Mapping[str, float] | None = None,
    params: Mapping[str, float] | None = None,
    ai_amount: float = 1.0,
    ai_hop_s: float = 0.5,
    crossfade_s: float = 2.0,
    loudness_mode: str = "search",
    block_size: int = 1024,
    midi_file: str | os.PathLike[str] | None = None,
    midi_map: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
    reference: str | os.PathLike[str] | list | tuple | None = None,
    target: str | os.PathLike[str] | None = None,
) -> tuple[np.ndarray, MasterReport]:
    """Master a buffer: the whole mixing chain with the AI, delivered at a loudness under a true-peak ceiling.

    Parameters
    ----------
    audio : np.ndarray
        Float samples at full scale 1.0: 1-D (mono) or ``[frames, channels]``
        with 1..8 channels (3..8 are downmixed to stereo, ITU-R BS.775).
        NaN/Inf samples are processed as silence (counted in the report).
    sample_rate : int
        Hz, 8000..192000.
    target_lufs : float, optional
        Integrated loudness to deliver (BS.1770-4), -60..0 LUFS; ``None`` means -14, or the
        reference's / target's integrated loudness when one is given.
    ceiling_dbtp : float or None
        True-peak ceiling of the limiter, dBTP (default -1); ``None`` takes
        ``limiter_ceiling_dbtp`` from ``params`` or the table default.
    model : str or None
        ``"default"`` (the shipped model), a name in ``models_onnx/``, a path
        to an ``.onnx`` with its ``.json`` card, ``"matcher"`` (the analytic
        matcher), ``"heuristic"``, or ``"none"`` for static parameters.  A
        model that cannot be used gives a note and the analytic matcher.
    amount : mapping of aspect to 0..1, optional
        Per-aspect AI amounts (``{"tone": 0.5, "width": 0}``; aspects
        ``tone``, ``width``, ``dynamics``, ``loudness``, ``space``), on top of
        ``ai_amount`` (``--amount tone=0.5,width=0``).
    params : mapping of str to float, optional
        Static parameter values (``mixpilot params`` lists them); the AI starts from them.
    ai_amount : float
        0..1, blend between neutral parameters and the AI's.
    ai_hop_s, crossfade_s : float
        Seconds between AI updates and the glide into each.
    loudness_mode : ``"search"`` or ``"follow"``
        ``"search"`` renders passes until the output meets the target;
        ``"follow"`` one pass with the real-time loudness follower.
    block_size : int
        Frames per engine block (the result does not depend on it).
    midi_file, midi_map : path, optional
        CC automation from a MIDI file through a controller map.
    progress : callable, optional
        ``progress(pass_number, done_seconds, total_seconds)`` after every block.
    reference : path or list of paths, optional
        Audio files or folders to match (``--reference``): the analytic
        matcher aims at their combined profile; ``target_lufs=None`` then
        delivers their integrated loudness.
    target : str or path, optional
        A shipped profile name or a profile JSON (``--target``); as ``reference``.

    Returns
    -------
    audio : np.ndarray, float32
        The master, the input's layout (1-D stays 1-D; 3..8 channels come back as stereo).
    report : MasterReport

    Raises
    ------
    realtime.render.RenderUsageError, dsp.params.ParameterError
        Bad arguments (one-line messages).
    """
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
        midi_file=None if midi_file is None else os.fspath(midi_file),
        midi_map=None if midi_map is None else os.fspath(midi_map),
        amounts=amount,
        reference=_paths(reference),
        target=None if target is None else os.fspath(target),
    ).checked()
    from .audio_io import content_notes

    raw, sr, mono = _as_frames(audio, sample_rate)
    bad, notes = content_notes(raw)
    y, report, _ = master_core(raw, sr, settings, progress=progress, notes=notes, nonfinite_samples=bad)
    return (y[:, 0].copy() if mono else y), report


def _paths(p: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None) -> tuple[str, ...] | None:
    if p is None:
        return None
    return (os.fspath(p),) if isinstance(p, (str, os.PathLike)) else tuple(os.fspath(q) for q in p)


def analyze(
    audio: np.ndarray | str | os.PathLike[str],
    sample_rate: int | None = None,
    *,
    model: str | None = DEFAULT_MODEL,
    hop_s: float = 1.5,
    reference: str | os.PathLike[str] | list | tuple | None = None,
    target: str | os.PathLike[str] | None = None,
) -> dict:
    """What ``mixpilot analyze`` reports, as a dict: loudness, true peak, LRA, spectrum, AI suggestions.

    ``reference`` (audio files or folders) or ``target`` (a shipped profile
    name or a profile JSON), as for :func:`master`, add ``"target"``: the
    audio against their profile (``analyze --reference/--target``;
    :mod:`realtime.target_report`), and the AI suggestions are then the
    analytic matcher's aiming at it.

    ``audio`` is a path to an audio file, or an array as for :func:`master`
    with its ``sample_rate``.  Files and buffers shorter than the AI's 3 s
    window are analysed as they are, without AI suggestions (a note says so).
    Non-finite values (silence, mono width) are ``+-inf`` floats; ``mixpilot
    analyze --json`` writes them as ``null``.
    """
    from .analyze import analyze_array, analyze_file
    from .references import resolve_target

    profile = resolve_target(_paths(reference), None if target is None else os.fspath(target))
    kind = "reference" if reference is not None else "target"
    if isinstance(audio, (str, os.PathLike)):
        if sample_rate is not None:
            raise RenderUsageError("sample_rate is read from the file; give it only with an array")
        return analyze_file(os.fspath(audio), model=model, hop_s=hop_s, profile=profile, target_kind=kind)
    if sample_rate is None:
        raise RenderUsageError("analyze(array) needs the sample_rate")
    raw, sr, _ = _as_frames(audio, sample_rate)
    from .audio_io import content_notes, to_processing_layout

    _, notes = content_notes(raw)
    return analyze_array(
        to_processing_layout(raw), sr, notes=notes, model=model, hop_s=hop_s, profile=profile, target_kind=kind
    )
