"""The Engine: one block through the analysis ring, the parameter targets, the chain and the meters.

:meth:`Engine.process_block` is the one path for live input, file playback
and offline render.  Per block it

1. copies the input block into the :class:`AnalysisRing` (the AI worker reads
   the last few seconds from there, on its own thread);
2. takes the newest published :class:`TargetUpdate` by one reference read
   (other threads publish by one reference assignment, never by writing into
   arrays the callback is reading) and, when it is new, writes its values and
   glide times into the chain's target vector;
3. applies MIDI overrides from a :class:`realtime.midi.ControlBank` when one
   is attached (sequence numbers written by the MIDI side; last value wins
   per parameter per block); first, when :attr:`Engine.midi_poll` is set, it
   drains the MIDI input itself (``MidiInput.poll``: rtmidi's queue, read
   without giving up the GIL), so that no thread has to wake every
   millisecond for it (issue 16);
4. runs one fused, GIL-holding Numba call (``_engine_kernel``): the whole
   :class:`dsp.chain.MixChain`, the pre-delivery tap into the loudness
   follower's meter, the output :class:`dsp.meter.LoudnessMeter`, and every
   100 ms the meter readouts into :attr:`Engine.snapshot`.

Loudness delivery in real time (the **follower**): a BS.1770-4 meter
(without true peak) integrates the signal just before the delivery gain
(the chain's tap), and every ``follow_hop_s`` seconds of stream time the
delivery gain ``loudness_gain_db`` is retargeted to
``target_lufs - I_pre - output_gain_db`` and glides there over
``follow_glide_s``.  Blocks are split at exactly those stream positions, so
the result does not depend on the block size: ``mixpilot render
--loudness-mode follow`` gives the same samples as a real-time run.  A
``loudness_gain_db`` given in the parameters turns the follower off (static
delivery gain).  The follower starts when the meter has its first gated
400 ms block.

``I_pre`` is not the integrated loudness since the start but the same gated
measure with older blocks weighted down by ``exp(-age / follow_memory_s)``
(10 s; ``None`` restores the integrated loudness): a song that grows louder
was delivered up to 2 LU over the target for its first 30 s, since the
integrated estimate still held the quiet intro.  And the limiter after the
delivery gain takes loudness from peaky material raised to a loud target;
the follower adds its running estimate of that loss (up to
``MAX_LIMITER_LOSS_DB``; :meth:`Engine._estimate_limiter_loss`).

**The AI's loudness changes are anticipated, not measured after the fact.**
When the AI (or anyone) publishes new targets, :meth:`Engine.publish` predicts
on the publishing thread the change of the pre-delivery loudness they bring:
the K-weighted power gain of the EQ, tonal-match EQ and width change on the
spectrum of the AI's own input window (:mod:`dsp.loudness_change`, exact for a
stationary signal).  The update carries it (``loudness_change_db``); when it
is applied the delivery gain glides down (up) by it over the update's own
glide, and the follower's memory is moved by the part that has glided in at
each hop (:func:`_shift_memory`: the histograms of what was measured with the
old parameters read as if measured with the new ones), so the 10 s memory is
never stale.  Measured (``python -m mixpilot.benchmarks.follow_loudness``,
first 30 s): the synthesised demo song with the default model -13.92 LUFS
against -14 (before: -12.68; without AI -13.95); on the first 20
reference-matching cases (``play --reference``, against the reference's
loudness) 15 of 20 within 1 LU, |error| mean 0.84, median 0.66 LU (before,
same run: 14 of 20, 0.83, 0.64).  What is left there is the material's own
level changing within the 30 s (fades, a quiet intro before a loud part),
which no causal follower with a 10 s memory can know in advance.

Why one GIL-holding kernel: the callback runs on PortAudio's thread, and
every Numba ``nogil`` call releases the GIL and must take it back.  With a
busy Python thread beside it (UI, file reader, inference, MIDI), taking it
back waits for that thread's switch interval.  One call that keeps the GIL
costs one acquisition per callback (the one PortAudio's cffi callback makes
anyway).  The measurement is in :mod:`realtime.stream`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numba import njit

from mixpilot.dsp.chain import P_LOUD, P_OUT, STAGE_GLIDE_S, STAGES, MixChain
from mixpilot.dsp.kernels import (
    ST_COMP_GR_DB,
    ST_LIM_GAIN_MIN,
    ST_NONFINITE,
    chain_kernel,
    meter_kernel,
    meter_read_kernel,
)
from mixpilot.dsp.loudness_change import LoudnessChange
from mixpilot.dsp.meter import HIST_BIN_LU, HIST_BINS, READOUT_NAMES, RELATIVE_GATE_LU, LoudnessMeter, _gated_lufs
from mixpilot.dsp.params import (
    AI_PARAM_NAMES,
    N_PARAMS,
    PARAM_INDEX,
    ParameterError,
    validate_value,
)
from mixpilot.dsp.spec import ProcessSpec

from .parameter_state import ACTION_AB, ACTION_AI, ACTION_BYPASS, ParameterState, apply_controls, apply_update

if TYPE_CHECKING:
    from mixpilot.inference.worker import InferenceWorker

    from .midi import ControlBank, MidiFileAutomation

__all__ = ["AnalysisRing", "Engine", "TargetUpdate", "SNAPSHOT_NAMES", "ANALYSIS_SECONDS"]

ANALYSIS_SECONDS = 8.0  # ring length: the AI window (3 s) with room for a late reader
SNAPSHOT_NAMES = READOUT_NAMES + (
    "comp_gr_db",
    "limiter_gr_db",
    "max_comp_gr_db",
    "max_limiter_gr_db",
    "loudness_gain_db",
    "stream_s",
    "nonfinite_samples",
)
_SNAP_COMP, _SNAP_LIM, _SNAP_MAX_COMP, _SNAP_MAX_LIM, _SNAP_LOUD, _SNAP_T, _SNAP_NONFINITE = range(
    len(READOUT_NAMES), len(SNAPSHOT_NAMES)
)
_ST_LIM_GAIN_MIN = ST_LIM_GAIN_MIN  # the chain's stats slots
_ST_COMP_GR = ST_COMP_GR_DB
_ST_NONFINITE = ST_NONFINITE
FOLLOW_MEMORY_S = 10.0  # the follower's loudness memory (time constant); see Engine
_STEADY_HOPS = 7  # 3 s of 0.5 s hops: the short-term window the limiter-loss reading compares
_STEADY_DB = 0.5  # the delivery gain moved at most this much over those hops
MAX_LIMITER_LOSS_DB = 6.0  # the follower never raises its gain by more than this to make up for the limiter
_NEVER = 1 << 62
_AI_INDEX = [PARAM_INDEX[n] for n in AI_PARAM_NAMES]
STAGE_SWITCH_S = STAGE_GLIDE_S  # bypass / A/B gain switches glide like a stage bypass (no click)


@dataclass(frozen=True)
class TargetUpdate:
    """A set of parameter targets published by another thread (AI worker, UI, script).

    ``vector`` float64 [N_PARAMS] (already validated/clamped), ``glide_s``
    float64 [N_PARAMS] per-parameter glide time for this change, ``mask``
    bool [N_PARAMS] which parameters this update sets, ``at`` the stream
    position where it takes effect (the engine cuts the block there; -1 or a
    position already passed: at the next block start), ``loudness_change_db``
    the change of the follower's loudness it is predicted to bring (the
    follower's memory is shifted by it when the update is applied).
    """

    vector: np.ndarray
    glide_s: np.ndarray
    mask: np.ndarray
    source: str = "user"
    at: int = -1  # stream position where it takes effect (-1: at the next block start)
    #: predicted change of the follower's pre-delivery loudness (dB) this update brings
    #: (:mod:`dsp.loudness_change`, computed by the publishing thread); 0: none predicted
    loudness_change_db: float = 0.0


# --- the analysis ring -----------------------------------------------------------------


@njit(cache=True)
def _ring_write(buf: np.ndarray, written: np.ndarray, x: np.ndarray, start: int, stop: int) -> None:  # pragma: no cover
    """Append ``x[start:stop]`` (frames, 1|2 channels) to ``buf`` (capacity, channels); advance ``written``."""
    cap = buf.shape[0]
    nch = x.shape[1]
    w = written[0]
    for n in range(start, stop):
        i = w % cap
        for c in range(buf.shape[1]):
            buf[i, c] = x[n, c if c < nch else nch - 1]
        w += 1
    written[0] = w


class AnalysisRing:
    """Single-producer ring of the engine's input for the AI worker (no locks).

    The audio thread appends every block (:meth:`write`); readers copy the
    newest frames with :meth:`read_latest`, which detects (and retries) a
    read that the writer overran.  ``written`` counts frames since the start,
    so a reader also knows the stream position of what it read.
    """

    def __init__(self, capacity_frames: int, channels: int) -> None:
        if capacity_frames < 1 or channels not in (1, 2):
            raise ValueError("ring needs >= 1 frame and 1 or 2 channels")
        self.buf = np.zeros((int(capacity_frames), channels), dtype=np.float32)
        self.written = np.zeros(1, dtype=np.int64)

    @property
    def capacity(self) -> int:
        return self.buf.shape[0]

    @property
    def frames_written(self) -> int:
        return int(self.written[0])

    def reset(self) -> None:
        self.buf[...] = 0.0
        self.written[0] = 0

    def write(self, block: np.ndarray) -> None:
        _ring_write(self.buf, self.written, block, 0, block.shape[0])

    def read_latest(self, out: np.ndarray, end: int | None = None) -> int:
        """Copy the ``out.shape[0]`` frames ending at stream position ``end`` (default: newest).

        Frames before the stream start read as zeros.  Returns the end
        position.  Raises ``ValueError`` if those frames are no longer in
        the ring.
        """
        n = out.shape[0]
        if n > self.capacity:
            raise ValueError(f"asked for {n} frames from a ring of {self.capacity}")
        for _ in range(8):
            w = int(self.written[0]) if end is None else int(end)
            start = w - n
            self._copy(start, w, out)
            # the writer may have lapped the frames we copied while we copied them
            if int(self.written[0]) - self.capacity <= max(start, 0):
                return w
            if end is not None:
                break
        raise ValueError("the analysis ring was overrun while reading (reader too slow)")

    def _copy(self, start: int, stop: int, out: np.ndarray) -> None:
        cap = self.capacity
        k0 = 0
        if start < 0:
            k0 = min(-start, out.shape[0])
            out[:k0] = 0.0
            start = 0
        if stop <= start:
            return
        a = start % cap
        m = stop - start
        first = min(m, cap - a)
        out[k0 : k0 + first] = self.buf[a : a + first]
        if first < m:
            out[k0 + first : k0 + m] = self.buf[: m - first]


# --- the fused block kernel ------------------------------------------------------------


@njit(cache=True)
def _engine_kernel(
    x,
    out,
    start,
    stop,
    chain_args,
    tap,
    follow_args,
    meter_args,
    read_args,
    snap,
    stats,
    ring_buf,
    ring_written,
    pos,
    read_every,
    in_args,
    in_read_args,
    in_snap,
):  # pragma: no cover
    """Frames ``[start, stop)`` of one block: ring, chain (with tap), follower meter, output meter.

    Holds the GIL for the whole call on purpose (see the module docstring).
    ``pos`` is the stream position of frame ``start``; the readouts go into
    ``snap`` whenever a multiple of ``read_every`` frames is crossed.
    """
    xs = x[start:stop]
    ys = out[start:stop]
    _ring_write(ring_buf, ring_written, x, start, stop)
    if in_args[0].shape[0] > 0:
        meter_kernel(xs, *in_args)  # the unprocessed side, for the loudness-matched A/B
    n = stop - start
    chain_kernel(xs, ys, *chain_args, tap[start:stop])
    if follow_args[0].shape[0] > 0:  # follower on: meter the pre-delivery tap
        meter_kernel(tap[start:stop], *follow_args)
    if meter_args[0].shape[0] > 0:
        meter_kernel(ys, *meter_args)
    cgr = stats[_ST_COMP_GR]
    g = stats[_ST_LIM_GAIN_MIN]
    lgr = -20.0 * math.log10(g) if g > 1e-12 else 240.0
    snap[_SNAP_COMP] = cgr
    snap[_SNAP_LIM] = lgr
    if cgr > snap[_SNAP_MAX_COMP]:
        snap[_SNAP_MAX_COMP] = cgr
    if lgr > snap[_SNAP_MAX_LIM]:
        snap[_SNAP_MAX_LIM] = lgr
    snap[_SNAP_NONFINITE] += stats[_ST_NONFINITE]
    end = pos + n
    if end // read_every != pos // read_every and meter_args[0].shape[0] > 0:
        meter_read_kernel(*read_args, snap)
        meter_read_kernel(*in_read_args, in_snap)


@njit(cache=True, nogil=True)
def _push_steady(hist, value, span):  # pragma: no cover - jitted
    """Shift ``value`` into ``hist`` (oldest first); True when every entry is finite and they span <= ``span``."""
    n = hist.shape[0]
    for i in range(n - 1):
        hist[i] = hist[i + 1]
    hist[n - 1] = value
    lo = np.inf
    hi = -np.inf
    for i in range(n):
        v = hist[i]
        if not np.isfinite(v):
            return False
        lo = min(lo, v)
        hi = max(hi, v)
    return hi - lo <= span


@njit(cache=True, nogil=True)
def _shift_memory(w, delta_db, rest):  # pragma: no cover - jitted
    """Move the follower's weighted histograms (``w[0]`` counts, ``w[1]`` energies) by ``delta_db``.

    What the memory holds was measured with the old parameters; an update predicted to change the
    loudness by ``delta_db`` makes it read as if measured with the new ones: every block moves by the
    nearest whole number of bins (``HIST_BIN_LU``) and its energy by the same factor; ``rest[0]``
    carries what the rounding left over to the next shift, so that small steps add up.  Blocks moved
    below the histogram (under the absolute gate) leave it, those moved above pile into the top bin.
    In place, no allocation (called on the audio thread when the update is applied).
    """
    want = delta_db + rest[0]
    k = int(math.floor(want / HIST_BIN_LU + 0.5))
    rest[0] = want - k * HIST_BIN_LU
    n = w.shape[1]
    k = max(-(n - 1), min(n - 1, k))
    if k == 0:
        return
    scale = 10.0 ** (k * HIST_BIN_LU / 10.0)
    if k > 0:
        for b in range(n - 1 - k, n - 1):  # the top bins overflow into the last
            w[0, n - 1] += w[0, b]
            w[1, n - 1] += w[1, b]
        w[1, n - 1] *= scale
        for b in range(n - 2, -1, -1):
            src = b - k
            if src >= 0:
                w[0, b] = w[0, src]
                w[1, b] = w[1, src] * scale
            else:
                w[0, b] = 0.0
                w[1, b] = 0.0
    else:
        for b in range(n):
            src = b - k
            if src < n:
                w[0, b] = w[0, src]
                w[1, b] = w[1, src] * scale
            else:
                w[0, b] = 0.0
                w[1, b] = 0.0


@njit(cache=True, nogil=True)
def _forgetting_lufs(count, energy, w, forget):  # pragma: no cover - jitted
    """Gated loudness (BS.1770-4 gating) of the follower meter's blocks, older ones weighted down.

    ``w`` [4, HIST_BINS]: the weighted count and energy histograms, then the meter's raw histograms at
    the last call; the blocks gated since then enter with weight 1, everything before is multiplied
    by ``forget`` (exp(-hop / memory)).  ``forget == 1`` is the integrated loudness since the start.
    """
    for b in range(count.shape[0]):
        dc = count[b] - w[2, b]
        de = energy[b] - w[3, b]
        w[0, b] = w[0, b] * forget + dc
        w[1, b] = w[1, b] * forget + de
        w[2, b] = count[b]
        w[3, b] = energy[b]
    return _gated_lufs(w[0], w[1], RELATIVE_GATE_LU)


_FLAT: dict[tuple[int, ...], object] = {}


def _flat_kernel(counts: tuple[int, ...]) -> Any:
    """``_engine_kernel`` taking every array as its own argument (generated once per argument count).

    A Numba call unboxes a tuple argument element by element through a slow path: the six argument
    tuples (about 120 arrays) cost ~7.5 us per call, against ~0.02 us per plain array argument.
    This wrapper takes them flat and rebuilds the tuples inside compiled code (free there).
    ``counts``: lengths of the chain, follower, meter, read, input-meter and input-read tuples.
    """
    fn = _FLAT.get(counts)
    if fn is not None:
        return fn
    from mixpilot.dsp import fused

    groups = [[f"{g}{k}" for k in range(n)] for g, n in zip("cfmrij", counts)]

    def tup(names: list[str]) -> str:
        return "(" + ", ".join(names) + ("," if len(names) == 1 else "") + ")"

    flat = ", ".join(a for g in groups for a in g)
    c, f, m, r, i, j = (tup(g) for g in groups)
    text = "\n".join(
        [
            '"""Generated by mixpilot.realtime.engine._flat_kernel: do not edit."""',
            "from numba import njit",
            "",
            "from mixpilot.realtime.engine import _engine_kernel",
            "",
            "",
            "@njit(cache=True, _nrt=False)",
            "def engine_kernel_flat(x, out, start, stop, pos, tap, snap, stats, ring_buf, ring_written, read_every,"
            f" in_snap, {flat}):  # pragma: no cover",
            f"    _engine_kernel(x, out, start, stop, {c}, tap, {f}, {m}, {r}, snap, stats, ring_buf, ring_written,"
            f" pos, read_every, {i}, {j}, in_snap)",
            "",
        ]
    )
    fn = fused.load_source(text, "engine").engine_kernel_flat
    _FLAT[counts] = fn
    return fn


class Engine:
    """Everything between an input block and an output block.

    Parameters
    ----------
    sample_rate : int
        Hz (8 000..192 000).
    channels : int
        1 or 2: the block layout of both input and output.
    max_block_size : int
        Largest block :meth:`process_block` will be given.
    params : mapping, optional
        Static parameter values (validated against :mod:`dsp.params`).
    target_lufs : float
        Delivery loudness for the follower.
    ceiling_dbtp : float or None
        Limiter ceiling; ``None`` keeps ``limiter_ceiling_dbtp`` from ``params``/defaults.
        Also the highest ceiling the chain will hold (``MixChain.limit``): a MIDI
        knob or automation asking for more is held here.  (Note for the session
        builder / ParameterState: say so once when a control asks above it.)
    loudness_mode : ``"follow"`` or ``"static"``
        ``"follow"`` (default) unless ``params`` sets ``loudness_gain_db``,
        which always means static.
    follow_memory_s : float or None
        Time constant of the follower's loudness memory (module docstring); None: since the start.
    follow_hop_s, follow_glide_s : float
        Follower update interval and glide time.
    stages : tuple of str
        The chain's stages (:data:`dsp.chain.STAGES` by default).  ``render``'s
        loudness passes run ``("output_gain", "limiter")`` on the first pass's
        :attr:`tap`.
    meters : bool
        Run the output and input meters (the UI snapshot and the A/B match).
        ``render`` turns them off: it measures the whole output afterwards, and
        the meters are not part of the audio path (the follower's own meter
        stays on).
    """

    def __init__(
        self,
        sample_rate: int,
        channels: int,
        *,
        max_block_size: int = 1024,
        params: dict | None = None,
        target_lufs: float = -14.0,
        ceiling_dbtp: float | None = -1.0,
        loudness_mode: str = "follow",
        follow_hop_s: float = 0.5,
        follow_glide_s: float = 3.0,
        follow_memory_s: float | None = FOLLOW_MEMORY_S,
        glide_ms: float = 50.0,
        analysis_seconds: float = ANALYSIS_SECONDS,
        meters: bool = True,
        stages: tuple[str, ...] = STAGES,
        ai_amount: float = 1.0,
        amounts: Mapping[str, float] | None = None,
    ) -> None:
        if loudness_mode not in ("follow", "static"):
            raise ValueError(f"loudness_mode must be 'follow' or 'static', not {loudness_mode!r}")
        params = dict(params or {})
        if ceiling_dbtp is not None:
            params["limiter_ceiling_dbtp"] = validate_value("limiter_ceiling_dbtp", ceiling_dbtp)
        self.spec = ProcessSpec(
            sample_rate=int(sample_rate), max_block_size=int(max_block_size), num_channels=int(channels)
        )
        # static values, AI targets, amounts, controls, buttons and the rule that merges them
        follow = loudness_mode == "follow" and "loudness_gain_db" not in params
        self.state = ParameterState(params, ai_amount=ai_amount, amounts=amounts, follow_level=follow)
        self.params = self.state.params
        self.target_lufs = float(target_lufs)
        self.follow = follow
        self.follow_hop = max(1, int(round(follow_hop_s * sample_rate)))
        self.follow_glide_s = float(follow_glide_s)
        # the follower's loudness forgets with this time constant (None: integrated since the start)
        mem = follow_memory_s
        self._forget = 1.0 if mem is None or not math.isfinite(mem) else math.exp(-follow_hop_s / float(mem))
        self._wgate = np.zeros((4, HIST_BINS))  # forgetting gate histogram (count, energy) and the last raw one
        self._shift_rest = np.zeros(1)  # what _shift_memory's rounding left over (dB)
        # the loudness change an update brings, predicted by the publishing thread (dsp.loudness_change)
        self.predictor: LoudnessChange | None = LoudnessChange(sample_rate, stages) if follow else None
        self._predict_buf = np.zeros(
            (self.predictor.window_frames if self.predictor is not None else 0, channels), dtype=np.float32
        )
        self.chain = MixChain(stages, glide_ms=glide_ms)
        self.chain.set_params(self.params)
        if ceiling_dbtp is not None:  # the run's ceiling is a bound no control can lift
            self.chain.limit("limiter_ceiling_dbtp", maximum=ceiling_dbtp)
        self.chain.prepare(self.spec)
        # the output meter also feeds the follower's limiter-loss estimate; without the UI meters it runs
        # without its true peak (4x interpolation, most of a meter's cost)
        self.meter = LoudnessMeter(self.spec, true_peak=bool(meters))
        weights = (1.0, 0.0) if channels == 1 else (1.0, 1.0)  # the tap is stereo; mono has L == R
        self.follow_meter = LoudnessMeter(
            ProcessSpec(sample_rate, max_block_size, 2), channel_weights=weights, true_peak=False
        )
        self._tap = np.zeros((self.spec.max_block_size, 2))
        self.input_meter = LoudnessMeter(self.spec, true_peak=False)
        self.input_snapshot = np.full(len(READOUT_NAMES), -np.inf)
        self.ring = AnalysisRing(int(round(analysis_seconds * sample_rate)), channels)
        self.snapshot = np.full(len(SNAPSHOT_NAMES), -np.inf)
        self._read_every = max(1, int(round(0.1 * sample_rate)))
        self._follow_read = np.zeros(len(READOUT_NAMES))
        self._out_read = np.zeros(len(READOUT_NAMES))
        self._gain_hist = np.zeros(_STEADY_HOPS)  # the delivery gain at the last hops (steadiness)
        self.pending: TargetUpdate | None = None  # written by other threads (one reference assignment)
        self._applied: TargetUpdate | None = None
        self.controls: ControlBank | None = None  # attach_controls, when MIDI is on
        self.midi_file: MidiFileAutomation | None = None  # realtime.midi.MidiFileAutomation, applied at block starts
        self.midi_poll: Callable[[], None] | None = None  # drains a MIDI input at each block start
        self.midi_lat = np.zeros(1 << 14, dtype=np.int64)  # message -> applied, ns (ring)
        self.midi_lat_n = np.zeros(1, dtype=np.int64)
        self._ab_gain_db = 0.0
        self.ai_delay_frames = 0  # an AI update for the window ending at P takes effect at P + this
        self.ai_late = 0  # AI updates that arrived after their position (applied at the next block)
        self.sync_worker: InferenceWorker | None = (
            None  # inference.worker.InferenceWorker stepped inside process_block (render)
        )
        self.meters = bool(meters)
        self._build_args()
        self.reset()

    # -- set-up ----------------------------------------------------------------------
    def _build_args(self) -> None:
        self._chain_args = self.chain.kernel_args()
        self._meter_args = self.meter.kernel_args()
        self._read_args = self.meter.read_args()
        self._in_args = self.input_meter.kernel_args()
        self._in_read_args = self.input_meter.read_args()
        if not self.meters:  # empty coefficient arrays switch the meters off inside the kernel
            if not self.follow:  # the follower reads the output meter (its limiter-loss estimate)
                self._meter_args = (np.zeros((0, 5)),) + self._meter_args[1:]
            self._in_args = (np.zeros((0, 5)),) + self._in_args[1:]
        if self.follow:
            self._follow_args = self.follow_meter.kernel_args()
        else:  # an empty coefficient array switches the follower meter off inside the kernel
            self._follow_args = (np.zeros((0, 5)),) + self.follow_meter.kernel_args()[1:]
        groups = (
            self._chain_args,
            self._follow_args,
            self._meter_args,
            self._read_args,
            self._in_args,
            self._in_read_args,
        )
        self._kernel = _flat_kernel(tuple(len(g) for g in groups))
        self._flat_args = tuple(a for g in groups for a in g)

    def reset(self) -> None:
        """Back to stream position 0 with every state cleared; targets settle on the static values.

        Published updates are dropped (call from the thread that owns the engine, not during a stream).
        """
        self.state.reset()
        self.pending = None
        self.chain.enabled[:] = 1.0
        self.chain.targets[:] = self.state.base
        self.chain.reset()
        self.meter.reset()
        self.follow_meter.reset()
        self.input_meter.reset()
        self.input_snapshot[:] = -np.inf
        if self.controls is not None:
            self._sync_seen()
        self.midi_lat_n[0] = 0
        self.ring.reset()
        self.snapshot[:] = -np.inf
        self.snapshot[_SNAP_COMP : _SNAP_MAX_LIM + 1] = 0.0
        self.snapshot[_SNAP_NONFINITE] = 0.0
        self.snapshot[_SNAP_LOUD] = self.chain.targets[P_LOUD]
        self.snapshot[_SNAP_T] = 0.0
        self.position = 0  # frames processed since reset
        self._next_follow = self.follow_hop
        self._next_ai = self.sync_worker.first_end if self.sync_worker is not None else _NEVER
        self._next_event = min(self._next_follow if self.follow else _NEVER, self._next_ai)
        self._applied = self.pending
        self.follow_updates = 0
        self.limiter_loss_db = 0.0  # the follower's estimate of the loudness the limiter takes
        self._loss_sum = 0.0
        self._loss_n = 0
        self._gain_hist[:] = np.nan
        self._wgate[:] = 0.0
        self._shift_rest[0] = 0.0
        self._comp_pending_db = 0.0  # predicted loudness change not yet glided in (dB)
        self._comp_left = 0  # frames until it has
        self._comp_pos = 0  # stream position of that count
        self.predicted_db = 0.0  # the loudness changes predicted for the applied updates, summed (dB)

    @property
    def latency_samples(self) -> int:
        return self.chain.latency_samples

    @property
    def tap(self) -> np.ndarray:
        """float64 [max_block_size, 2]: rows ``[:frames]`` hold the last block's signal just before the
        output gain stage (the chain's pre-delivery tap, what the follower meters)."""
        return self._tap

    @property
    def sample_rate(self) -> int:
        return int(self.spec.sample_rate)

    # the parameter state's fields under their earlier names
    @property
    def base(self) -> np.ndarray:
        return self.state.base

    @property
    def manual_active(self) -> np.ndarray:
        return self.state.manual_active

    @property
    def ai_on(self) -> bool:
        return self.state.ai_on

    @property
    def bypassed(self) -> bool:
        return self.state.bypassed

    @property
    def ab_b(self) -> bool:
        return self.state.ab_b

    # -- other threads ---------------------------------------------------------------
    def publish(
        self,
        values: dict[str, float],
        *,
        glide_s: float = 0.05,
        source: str = "user",
        at: int = -1,
        end_frame: int | None = None,
    ) -> TargetUpdate:
        """Validate ``values`` and publish them as the next targets (one reference assignment),
        taking effect at stream position ``at`` (-1: the next block start).

        While the follower runs, the update carries the loudness change it will bring, predicted on
        the input that ends at stream position ``end_frame`` (default: the newest in the ring; the AI
        passes the end of the window it analysed, so that play and render predict the same).
        """
        old = self.state.base if self.pending is None else self.pending.vector
        vec = old.copy()
        mask = np.zeros(N_PARAMS, dtype=bool)
        for name, v in values.items():
            if name not in PARAM_INDEX:
                raise ParameterError(f"unknown parameter {name!r}")
            vec[PARAM_INDEX[name]] = validate_value(name, v)
            mask[PARAM_INDEX[name]] = True
        change = self._predict_change(old, vec, end_frame)
        upd = TargetUpdate(vec, np.full(N_PARAMS, float(glide_s)), mask, source, int(at), change)
        self.pending = upd
        return upd

    def publish_ai(self, values: dict[str, float], glide_s: float, end_frame: int | None = None) -> None:
        """The AI worker's way in (its targets for the window ending at ``end_frame``): merged by the
        parameter state's rule, then published; dropped while the AI is toggled off."""
        state = self.state
        if state.ai_on:
            merged = state.ai_targets(values)
            at = end_frame + self.ai_delay_frames if end_frame is not None else -1
            self.publish(merged, glide_s=glide_s, source="ai", at=at, end_frame=end_frame)
            state.record_ai((at if at >= 0 else self.position) / self.spec.sample_rate, merged)

    def _predict_change(self, old: np.ndarray, new: np.ndarray, end_frame: int | None) -> float:
        """The follower's loudness change from targets ``old`` to ``new`` on the input ending at ``end_frame``
        (:class:`dsp.loudness_change.LoudnessChange`; 0 without the follower, when nothing it models
        changed, or when the ring no longer holds that input)."""
        pred = self.predictor
        if pred is None or not pred.relevant(old, new):
            return 0.0
        buf = self._predict_buf
        try:
            self.ring.read_latest(buf, end=end_frame)
        except ValueError:  # overrun: that input is gone; the follower measures the change instead
            return 0.0
        return pred.change_db(old, new, buf)

    # -- the audio path --------------------------------------------------------------
    def process_block(self, inp: np.ndarray, out: np.ndarray) -> None:
        """Process one block (float32 [frames, channels]); allocates no audio buffers, never raises on audio.

        ``out`` may be ``inp``.  Frames beyond ``max_block_size`` are an error
        of the caller (checked here because it is cheap).  The block is cut
        at the follower's and the synchronous AI worker's stream positions.
        """
        n = inp.shape[0]
        if n > self.spec.max_block_size:
            raise ValueError(f"block of {n} frames > max_block_size {self.spec.max_block_size}")
        poll = self.midi_poll
        if poll is not None:  # MIDI read here, from rtmidi's queue (realtime.midi_ports.MidiInput.poll)
            poll()
        pos = self.position
        self._due(pos)
        bank = self.controls
        if bank is not None:
            if self.midi_file is not None:
                self.midi_file.apply_until(self.position / self.spec.sample_rate, bank)
            st = self.state
            toggled = apply_controls(
                self.chain.targets,
                self.chain.glide_s,
                st.base,
                bank.manual_value,
                bank.manual_seq,
                bank.release_seq,
                bank.action_seq,
                st.seen,
                st.manual_active,
                bank.current,
                self.chain.current_values,
                bank.msg_time_ns,
                self.midi_lat,
                self.midi_lat_n,
                time.perf_counter_ns(),
                st.manual_glide_s,
                st.release_glide_s,
                P_LOUD if self.follow else -1,
            )
            if toggled:
                self._actions(toggled)
        start = 0
        while start < n:
            stop = n
            nxt = self._next_event
            upd = self.pending
            if upd is not None and upd is not self._applied and pos < upd.at < nxt:
                nxt = upd.at  # a scheduled update (the AI's) takes effect at its exact position
            if pos + (stop - start) >= nxt:
                stop = start + (nxt - pos)
            if stop > start:
                self.snapshot[_SNAP_T] = pos / self.spec.sample_rate
                self._kernel(
                    inp,
                    out,
                    start,
                    stop,
                    pos,
                    self._tap,
                    self.snapshot,
                    self.chain.stats,
                    self.ring.buf,
                    self.ring.written,
                    self._read_every,
                    self.input_snapshot,
                    *self._flat_args,
                )
                pos += stop - start
                start = stop
            self._due(pos)  # before the events: an update due here comes before the next one is computed
            if pos == self._next_event:
                self._events(pos)
        self.position = pos

    def _due(self, pos: int) -> None:
        """Apply the published update if it is due at ``pos`` (one at a scheduled, later position waits)."""
        upd = self.pending
        if upd is not self._applied:
            if upd is None or upd.at <= pos:
                if upd is not None and 0 <= upd.at < pos and upd.source == "ai":
                    self.ai_late += 1  # arrived after its position: this block starts it instead
                self._apply(upd, pos)

    def _events(self, pos: int) -> None:
        """Follower and synchronous-AI work due at stream position ``pos`` (rare: twice a second)."""
        if self.follow and pos == self._next_follow:
            self._follow_step(pos)
            self._next_follow += self.follow_hop
        w = self.sync_worker
        if w is not None and pos == self._next_ai:
            w.step(pos)
            self._next_ai += w.hop_frames
            self._due(pos)  # an update without a delay takes effect here, as the worker's window ends
        self._schedule(pos)

    def _schedule(self, pos: int) -> None:
        """The next stream position where :meth:`process_block` must stop for an event (after ``pos``).

        The follower's positions are the multiples of ``follow_hop`` since :meth:`reset`; while it is
        frozen (A/B on the B side) they are not consumed, so one left behind ``pos`` is moved to the
        next multiple after it.  A position at or before ``pos`` would never be reached by the block
        loop, which only advances toward a later one (issue 13: A/B off during follow hung here).
        """
        if self.follow and self._next_follow <= pos:
            self._next_follow = (pos // self.follow_hop + 1) * self.follow_hop
        w = self.sync_worker
        self._next_event = min(self._next_follow if self.follow else _NEVER, self._next_ai if w is not None else _NEVER)

    def attach_sync_worker(self, worker: InferenceWorker) -> None:
        """Run ``worker.step(position)`` inside :meth:`process_block` at its hop positions (render)."""
        self.sync_worker = worker
        self._next_ai = max(worker.first_end, worker.hop_frames * max(1, -(-self.position // worker.hop_frames)))
        self._events(-1)

    def _apply(self, upd: TargetUpdate | None, pos: int = -1) -> None:
        self._applied = upd
        if upd is not None:
            st = self.state
            if self.follow and upd.loudness_change_db != 0.0 and not (st.bypassed or st.ab_b):
                self._anticipate(upd, self.position if pos < 0 else pos)
            apply_update(
                self.chain.targets,
                self.chain.glide_s,
                self.state.base,
                upd.vector,
                upd.glide_s,
                upd.mask,
                P_LOUD if self.follow else -1,
                self.state.manual_active,
            )

    # -- MIDI ------------------------------------------------------------------------
    def attach_controls(self, bank: ControlBank, midi_file: MidiFileAutomation | None = None) -> None:
        """Read manual overrides from a :class:`realtime.midi.ControlBank` at every block start."""
        self.controls = bank
        self.state.controls = bank
        self.midi_file = midi_file
        self._sync_seen()
        bank.current[:] = self.chain.current_values

    def _sync_seen(self) -> None:
        b = self.controls
        if b is None:
            return
        n = N_PARAMS
        seen = self.state.seen
        seen[:n] = b.manual_seq
        seen[n : 2 * n] = b.release_seq
        seen[2 * n :] = b.action_seq

    def _actions(self, toggled: int) -> None:
        """Button toggles (rare; Python is fine here): bypass, loudness-matched A/B, AI on/off."""
        st = self.state
        if toggled & (1 << ACTION_BYPASS):
            self.set_bypass(not st.bypassed)
        if toggled & (1 << ACTION_AB):
            self.set_ab(not st.ab_b)
        if toggled & (1 << ACTION_AI):
            self.set_ai(not st.ai_on)

    def _stage_mix(self) -> None:
        en = self.chain.enabled
        keep = ("output_gain", "limiter")  # the limiter always guards the ceiling
        for i, name in enumerate(STAGES):
            on = not (self.state.bypassed or self.state.ab_b) or name in keep
            en[i] = 1.0 if on else 0.0

    def set_bypass(self, on: bool) -> None:
        """Bypass every stage but the output gain and the limiter (the ceiling always holds)."""
        self.state.bypassed = bool(on)
        self._stage_mix()

    def set_ab(self, b_side: bool) -> None:
        """Loudness-matched A/B: B is the unprocessed input at the processed side's short-term loudness."""
        if b_side and not self.state.ab_b:
            s_out = self.snapshot[1]
            s_in = self.input_snapshot[1]
            match = s_out - s_in if math.isfinite(s_out) and math.isfinite(s_in) else 0.0
            self._ab_saved = (self.follow, float(self.chain.targets[P_LOUD]))
            self.follow = False  # freeze the follower while listening to B
            self.chain.glide_s[P_LOUD] = STAGE_SWITCH_S
            self.chain.targets[P_LOUD] = self.state.clamp("loudness_gain_db", match - self.chain.targets[P_OUT])
            self._ab_gain_db = match
        elif not b_side and self.state.ab_b:
            follow, gain = self._ab_saved
            self.follow = follow
            self.chain.glide_s[P_LOUD] = STAGE_SWITCH_S
            self.chain.targets[P_LOUD] = gain
            self._schedule(self.position)
        self.state.ab_b = bool(b_side)
        self._stage_mix()

    def set_ai(self, on: bool) -> None:
        """AI loop on/off; off glides the AI parameters back to the static values."""
        st = self.state
        st.ai_on = bool(on)
        if not on:
            mask = np.zeros(N_PARAMS, dtype=bool)
            mask[_AI_INDEX] = True
            self.pending = TargetUpdate(st.static.copy(), np.full(N_PARAMS, st.release_glide_s), mask, "user")

    def midi_latency_ms(self) -> dict:
        n = int(min(self.midi_lat_n[0], self.midi_lat.shape[0]))
        if n == 0:
            return {"n": 0, "p50_ms": None, "p99_ms": None}
        d = self.midi_lat[:n] / 1e6
        return {
            "n": int(self.midi_lat_n[0]),
            "p50_ms": round(float(np.percentile(d, 50)), 3),
            "p99_ms": round(float(np.percentile(d, 99)), 3),
        }

    # -- render helpers ---------------------------------------------------------------
    def set_static(self, name: str, value: float) -> None:
        """Change a static value between renders (takes effect at the next :meth:`reset`)."""
        self.state.set_static(name, value)

    def value(self, name: str) -> float:
        return self.chain.value(name)

    @property
    def max_comp_gain_reduction_db(self) -> float:
        return float(self.snapshot[_SNAP_MAX_COMP])

    @property
    def max_limiter_gain_reduction_db(self) -> float:
        return float(self.snapshot[_SNAP_MAX_LIM])

    @property
    def nonfinite_samples(self) -> int:
        """NaN/Inf input samples replaced by zero since :meth:`reset`."""
        return int(self.snapshot[_SNAP_NONFINITE])

    @property
    def loudness_gain_db(self) -> float:
        """The delivery gain the chain is at (or gliding to)."""
        return float(self.chain.targets[P_LOUD])

    def _anticipate(self, upd: TargetUpdate, pos: int) -> None:
        """An update predicted to change the pre-delivery loudness by ``upd.loudness_change_db`` starts at ``pos``.

        Its parameters glide from where they are to the new targets over the update's glide time, and
        so does the predicted change: what was still to come of earlier ones and the new one are spread
        linearly over the new glide (:meth:`_realise` moves the follower's memory by what has happened),
        and the delivery gain answers at once over the same glide instead of 10 s of memory later.
        """
        self._realise(pos)
        d = upd.loudness_change_db
        self._comp_pending_db += d
        self._comp_left = max(1, int(round(float(upd.glide_s[P_LOUD]) * self.spec.sample_rate)))
        self.predicted_db += d
        self.chain.glide_s[P_LOUD] = min(self._comp_left / self.spec.sample_rate, self.follow_glide_s)
        self.chain.targets[P_LOUD] = self.state.clamp("loudness_gain_db", self.chain.targets[P_LOUD] - d)

    def _realise(self, pos: int) -> None:
        """Move the follower's memory by the part of the predicted changes that has glided in by ``pos``."""
        left = self._comp_left
        pending = self._comp_pending_db
        if pending != 0.0:
            done = pos - self._comp_pos
            part = pending if done >= left else pending * done / left
            if part != 0.0:
                _shift_memory(self._wgate, part, self._shift_rest)
            self._comp_pending_db = pending - part
            self._comp_left = max(0, left - done)
        self._comp_pos = pos

    def _follow_step(self, pos: int) -> None:
        """Retarget the delivery gain from the pre-delivery integrated loudness (stream-position exact).

        The loudness aimed for is the memory's plus the predicted change still gliding in, and while
        one is, the delivery gain lands with it (the shorter of its rest and ``follow_glide_s``).
        """
        self._realise(pos)
        ra = self.follow_meter.read_args()
        meter_read_kernel(*ra, self._follow_read)
        i_pre = _forgetting_lufs(ra[2], ra[3], self._wgate, self._forget)
        if not math.isfinite(i_pre):
            return
        self._estimate_limiter_loss(i_pre)
        pending = self._comp_pending_db
        gain = self.target_lufs - (i_pre + pending) - self.chain.targets[P_OUT] + self.limiter_loss_db
        gain = self.state.clamp("loudness_gain_db", gain)
        # every retarget glides over follow_glide_s, the first too: a quick first one (0.5 s, tried) raised
        # the synthesised demo to -11.3 LUFS against -14 (its opening is quieter than what follows)
        glide = self.follow_glide_s
        if pending != 0.0 and self._comp_left > 0:
            glide = min(glide, self._comp_left / self.spec.sample_rate)
        self.chain.glide_s[P_LOUD] = glide
        self.chain.targets[P_LOUD] = gain
        self.snapshot[_SNAP_LOUD] = gain
        self.follow_updates += 1

    def _estimate_limiter_loss(self, i_pre: float) -> None:
        """What the limiter takes from the delivered loudness, averaged over the stream so far.

        The follower meters the signal before the delivery gain; the limiter comes after it and,
        when a quiet dynamic input is raised to a loud target, takes several LU (measured: `play
        --reference` delivered 1 LU under the reference on average, up to 3.3 LU, while `render`'s
        search, which meters after the limiter, was within 0.14 LU).  At every hop where the gain
        has been steady for the short-term window (3 s) and the passage is not gated away, the loss
        is short-term(pre) + delivery and output gains - short-term(output); the follower adds the
        mean of those readings (0 to MAX_LIMITER_LOSS_DB) to its gain.  Render in follow mode runs
        the same engine, so play and render stay equal.
        """
        vals = self.chain.current_values
        g_now = float(vals[P_LOUD]) + float(vals[P_OUT])
        steady = _push_steady(self._gain_hist, g_now, _STEADY_DB)  # in place: no array made in the callback
        meter_read_kernel(*self._read_args, self._out_read)
        s_pre = self._follow_read[1]
        s_out = self._out_read[1]
        if steady and math.isfinite(s_pre) and math.isfinite(s_out) and s_pre >= i_pre - 10.0:
            self._loss_sum += max(0.0, s_pre + g_now - s_out)
            self._loss_n += 1
            self.limiter_loss_db = min(self._loss_sum / self._loss_n, MAX_LIMITER_LOSS_DB)

    # -- warm-up ---------------------------------------------------------------------
    def warm_up(self) -> None:
        """Run every kernel once on silence (loads or compiles them), then reset."""
        z = np.zeros((min(64, self.spec.max_block_size), self.spec.num_channels), dtype=np.float32)
        y = np.zeros_like(z)
        self._next_follow = 32  # exercise the split and the follower path too
        self._next_event = 32
        self.process_block(z, y)
        self.process_block(z, y)
        # the rarer paths: a published update and the MIDI kernel (else their first use compiles
        # or loads from the cache inside a callback)
        self.publish({}, glide_s=0.05)
        self.process_block(z, y)
        _shift_memory(np.zeros((4, 8)), 0.0, np.zeros(1))  # the follower's memory shift (AI updates)
        # the follower's steadiness check: on silence the follower never reaches it, and its first call (the
        # cache load and dispatch) took 2.3 ms inside the callback at the first follower hop, 0.5 s in
        # (measured; an xrun at 0.50 s in make demo)
        _push_steady(np.full_like(self._gain_hist, np.nan), 0.0, _STEADY_DB)
        n = N_PARAMS
        apply_controls(
            self.chain.targets.copy(),
            self.chain.glide_s.copy(),
            self.state.base.copy(),
            self.state.base.copy(),
            np.zeros(n, np.int64),
            np.zeros(n, np.int64),
            np.zeros(4, np.int64),
            np.zeros(2 * n + 4, np.int64),
            np.zeros(n, np.int64),
            self.state.base.copy(),
            self.chain.current_values,
            np.zeros(n, np.int64),
            np.zeros(4, np.int64),
            np.zeros(1, np.int64),
            time.perf_counter_ns(),
            0.03,
            2.0,
            -1,
        )
        self.reset()
