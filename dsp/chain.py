"""MixChain: the whole mixing chain in one fused ``@njit(nogil=True)`` call per block.

Signal flow (per sample, stereo linked where it matters)::

    input gain -> compressor -> EQ (low shelf, mid bell, high shelf, presence)
       -> + reverb send (FDN)  \\  parallel sends from the EQ output,
       -> + delay send         /   wet added to dry
       -> stereo width (M/S) -> output gain x loudness gain -> lookahead true-peak limiter

Parameters come from one target vector ordered like :data:`dsp.params.PARAMS`.
When a target changes, that parameter ramps per sample toward it over its
glide time (:mod:`dsp.glide`); gains, mixes, thresholds and the delay time
are read every sample, filter and time-constant coefficients are recomputed
every ``CONTROL_SAMPLES`` samples while their parameter moves.  Control
ticks fall on absolute sample positions (multiples of ``CONTROL_SAMPLES`` since
``prepare``/``reset``), so the output does not depend on how the stream is cut
into blocks.

Each stage can be bypassed; a bypass change crossfades over
``STAGE_GLIDE_S`` (no click).  The reverb and delay are skipped while their
send is zero and their loop is silent, which makes default renders cheap.
NaN/Inf input samples are replaced by zero before they reach any state
(and counted).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
from numba import njit

from . import delay as _delay
from . import limiter as _lim
from . import reverb as _rev
from .biquad import BELL, HIGH_SHELF, LOW_SHELF, _biquad_tick, _rbj_into
from .compressor import _comp_gain_db
from .glide import _glide_retarget, _glide_tick, make_bank
from .oversample import TP_COEFFS, TP_TAPS
from .params import N_PARAMS, PARAM_INDEX, PARAMS, ParameterError, default_vector, validate_value, vector_from_mapping
from .spec import ProcessSpec, check_block

__all__ = ["MixChain", "STAGES", "CONTROL_SAMPLES", "STAGE_GLIDE_S", "DEFAULT_GLIDE_S"]

STAGES = ("input_gain", "compressor", "eq", "reverb", "delay", "width", "output_gain", "limiter")
CONTROL_SAMPLES = 32  # sub-block rate for coefficient updates (power of two)
LIMITER_CHUNK = 256  # the limiter runs stage-major over chunks of this many samples
STAGE_GLIDE_S = 0.01  # bypass crossfade
DEFAULT_GLIDE_S = 0.05  # JUCE's usual 50 ms ramp
_SQRT_HALF = math.sqrt(0.5)
_MAX_DELAY_MS = PARAMS[PARAM_INDEX["delay_ms"]].maximum

# parameter indices as compile-time constants for the kernel
P_IN = PARAM_INDEX["input_gain_db"]
P_TH = PARAM_INDEX["comp_threshold_db"]
P_RATIO = PARAM_INDEX["comp_ratio"]
P_ATT = PARAM_INDEX["comp_attack_ms"]
P_REL = PARAM_INDEX["comp_release_ms"]
P_KNEE = PARAM_INDEX["comp_knee_db"]
P_MAKEUP = PARAM_INDEX["comp_makeup_db"]
P_LOW_G = PARAM_INDEX["low_gain_db"]
P_LOW_F = PARAM_INDEX["low_freq_hz"]
P_MID_G = PARAM_INDEX["mid_gain_db"]
P_MID_F = PARAM_INDEX["mid_freq_hz"]
P_MID_Q = PARAM_INDEX["mid_q"]
P_HIGH_G = PARAM_INDEX["high_gain_db"]
P_HIGH_F = PARAM_INDEX["high_freq_hz"]
P_PRES_G = PARAM_INDEX["presence_gain_db"]
P_PRES_F = PARAM_INDEX["presence_freq_hz"]
P_PRES_Q = PARAM_INDEX["presence_q"]
P_RV_SEND = PARAM_INDEX["reverb_send"]
P_RV_ROOM = PARAM_INDEX["reverb_room_size"]
P_RV_DAMP = PARAM_INDEX["reverb_damping"]
P_DL_SEND = PARAM_INDEX["delay_send"]
P_DL_MS = PARAM_INDEX["delay_ms"]
P_DL_FB = PARAM_INDEX["delay_feedback"]
P_WIDTH = PARAM_INDEX["stereo_width"]
P_OUT = PARAM_INDEX["output_gain_db"]
P_LOUD = PARAM_INDEX["loudness_gain_db"]
P_CEIL = PARAM_INDEX["limiter_ceiling_dbtp"]
P_LREL = PARAM_INDEX["limiter_release_ms"]
P_LOOK = PARAM_INDEX["lookahead_ms"]

S_IN, S_COMP, S_EQ, S_REV, S_DLY, S_WIDTH, S_OUT, S_LIM = range(8)

# derived-value slots (d)
D_IN, D_MAKEUP, D_POST, D_CEIL, D_ATT, D_REL, D_LREL = range(7)
# int state slots (ist)
I_POS, I_GLIDING, I_STAGE_GLIDING, I_RV_QUIET, I_DL_QUIET, I_DL_WRITE, I_RV_IDLE_LEN, I_DL_IDLE_LEN, I_DL_XFADE = range(
    9
)
# stats slots
ST_COMP_GR_DB, ST_LIM_GAIN_MIN, ST_NONFINITE = range(3)

_LN10_20 = math.log(10.0) / 20.0
_NO_TAP = np.zeros((0, 2))
_DENORMAL = 1e-30


@njit(cache=True, nogil=True)
def _derive_gains(v: np.ndarray, d: np.ndarray) -> None:  # pragma: no cover
    d[D_IN] = math.exp(v[P_IN] * _LN10_20)
    d[D_MAKEUP] = math.exp(v[P_MAKEUP] * _LN10_20)
    d[D_POST] = math.exp((v[P_OUT] + v[P_LOUD]) * _LN10_20)
    d[D_CEIL] = math.exp(v[P_CEIL] * _LN10_20)


@njit(cache=True, nogil=True)
def _changed(v: np.ndarray, cc: np.ndarray, a: int, b: int, c: int) -> bool:  # pragma: no cover
    return v[a] != cc[a] or v[b] != cc[b] or v[c] != cc[c]


@njit(cache=True, nogil=True)
def _update_coeffs(
    force: bool,
    sample_rate: float,
    v: np.ndarray,
    cc: np.ndarray,
    d: np.ndarray,
    eq_c: np.ndarray,
    rv_i: np.ndarray,
    rv_f: np.ndarray,
) -> None:  # pragma: no cover
    """Recompute coefficients whose parameters moved since the last control tick."""
    if force or _changed(v, cc, P_LOW_G, P_LOW_F, P_LOW_F):
        _rbj_into(LOW_SHELF, v[P_LOW_F], v[P_LOW_G], _SQRT_HALF, sample_rate, eq_c[0])
    if force or _changed(v, cc, P_MID_G, P_MID_F, P_MID_Q):
        _rbj_into(BELL, v[P_MID_F], v[P_MID_G], v[P_MID_Q], sample_rate, eq_c[1])
    if force or _changed(v, cc, P_HIGH_G, P_HIGH_F, P_HIGH_F):
        _rbj_into(HIGH_SHELF, v[P_HIGH_F], v[P_HIGH_G], _SQRT_HALF, sample_rate, eq_c[2])
    if force or _changed(v, cc, P_PRES_G, P_PRES_F, P_PRES_Q):
        _rbj_into(BELL, v[P_PRES_F], v[P_PRES_G], v[P_PRES_Q], sample_rate, eq_c[3])
    if force or _changed(v, cc, P_ATT, P_REL, P_LREL):
        # one-pole time constants: alpha = exp(-1 / (tau fs)) (Giannoulis et al. 2012, eq. 7)
        d[D_ATT] = math.exp(-1000.0 / (v[P_ATT] * sample_rate))
        d[D_REL] = math.exp(-1000.0 / (v[P_REL] * sample_rate))
        d[D_LREL] = math.exp(-1000.0 / (v[P_LREL] * sample_rate))
    if force or _changed(v, cc, P_RV_ROOM, P_RV_DAMP, P_RV_DAMP):
        _rev._reverb_coeffs(rv_f[1], rv_i[0], v[P_RV_ROOM], v[P_RV_DAMP], sample_rate)
    for i in range(v.shape[0]):
        cc[i] = v[i]


@njit(cache=True, nogil=True)
def _chain_kernel(
    x,
    out,
    targets,
    glide_s,
    enabled,
    stage_glide_s,
    sample_rate,
    mask,
    g,
    sm,
    cc,
    d,
    ist,
    stats,
    eq_c,
    eq_z,
    comp_env,
    rv_lines,
    rv_i,
    rv_ap,
    rv_f,
    dl_buf,
    dl_f,
    lm_buf,
    lm_tp,
    lm_dq,
    lm_dqi,
    lm_avg,
    lm_i,
    lm_f,
    tp_coeffs,
    tp_bound,
    lm_src,
    lm_dst,
    tap,
):  # pragma: no cover
    """Process ``x`` [frames, 1|2] into ``out`` through every stage in ``mask``.

    ``tap`` [>= frames or 0, 2] receives the stereo signal just before the
    output/loudness gain (the "pre-delivery" signal a loudness follower
    measures); a zero-row array turns the tap off.
    """
    nch = x.shape[1]
    ist[I_GLIDING] = _glide_retarget(g, targets, glide_s, sample_rate)
    ist[I_STAGE_GLIDING] = _glide_retarget(sm, enabled, stage_glide_s, sample_rate)
    v = g[0]
    mix = sm[0]
    stats[ST_COMP_GR_DB] = 0.0
    stats[ST_LIM_GAIN_MIN] = 1.0
    stats[ST_NONFINITE] = 0.0
    has_lim = (mask & (1 << S_LIM)) != 0
    has_tap = tap.shape[0] > 0
    chunk = lm_src.shape[0]
    frames = x.shape[0]
    for start in range(0, frames, chunk):
        stop = min(start + chunk, frames)
        for n in range(start, stop):
            pos = ist[I_POS]
            if ist[I_GLIDING] > 0:
                ist[I_GLIDING] = _glide_tick(g)
                _derive_gains(v, d)
            if ist[I_STAGE_GLIDING] > 0:
                ist[I_STAGE_GLIDING] = _glide_tick(sm)
            if (pos & (CONTROL_SAMPLES - 1)) == 0:
                _update_coeffs(False, sample_rate, v, cc, d, eq_c, rv_i, rv_f)
            ist[I_POS] = pos + 1

            xl = np.float64(x[n, 0])
            xr = np.float64(x[n, nch - 1])
            # NaN/Inf never reach filter state; subnormal input is flushed
            if not (abs(xl) < 1e30):
                xl = 0.0
                stats[ST_NONFINITE] += 1.0
            elif -_DENORMAL < xl < _DENORMAL:
                xl = 0.0
            if not (abs(xr) < 1e30):
                xr = 0.0
                stats[ST_NONFINITE] += 1.0
            elif -_DENORMAL < xr < _DENORMAL:
                xr = 0.0

            if mask & (1 << S_IN):
                gi = 1.0 + mix[S_IN] * (d[D_IN] - 1.0)
                xl *= gi
                xr *= gi

            if mask & (1 << S_COMP) and mix[S_COMP] > 0.0:
                ratio = v[P_RATIO]
                if ratio != 1.0 or comp_env[0] != 0.0:
                    level = max(abs(xl), abs(xr))  # stereo link
                    gr_db = _comp_gain_db(comp_env, level, v[P_TH], ratio, v[P_KNEE], d[D_ATT], d[D_REL])
                    if -gr_db > stats[ST_COMP_GR_DB]:
                        stats[ST_COMP_GR_DB] = -gr_db
                    gc = math.exp((gr_db + v[P_MAKEUP]) * _LN10_20)
                else:
                    gc = d[D_MAKEUP]
                gc = 1.0 + mix[S_COMP] * (gc - 1.0)
                xl *= gc
                xr *= gc

            if mask & (1 << S_EQ) and mix[S_EQ] > 0.0:
                yl = xl
                yr = xr
                for b in range(4):
                    yl = _biquad_tick(eq_c[b], eq_z[b, 0], yl)
                    yr = _biquad_tick(eq_c[b], eq_z[b, 1], yr)
                me = mix[S_EQ]
                xl = xl + me * (yl - xl)
                xr = xr + me * (yr - xr)

            wet_l = 0.0
            wet_r = 0.0
            if mask & (1 << S_REV):
                send = v[P_RV_SEND] * mix[S_REV]
                if send != 0.0 or ist[I_RV_QUIET] < ist[I_RV_IDLE_LEN]:
                    mono = 0.5 * (xl + xr) * send
                    rl, rr = _rev._reverb_tick(
                        mono, rv_lines, rv_i[0], rv_f[0], rv_ap, rv_i[2], rv_i[1], rv_f[1], rv_f[2]
                    )
                    wet_l += rl
                    wet_r += rr
                    if mono == 0.0 and rl == 0.0 and rr == 0.0:
                        ist[I_RV_QUIET] += 1
                    else:
                        ist[I_RV_QUIET] = 0
            if mask & (1 << S_DLY):
                send = v[P_DL_SEND] * mix[S_DLY]
                if send != 0.0 or ist[I_DL_QUIET] < ist[I_DL_IDLE_LEN]:
                    target_d = g[1, P_DL_MS] * sample_rate * 0.001
                    if ist[I_DL_XFADE] == 0 and target_d != dl_f[0]:
                        # open the second head at the new time; crossfade over this parameter's glide
                        dl_f[1] = target_d
                        dl_f[2] = 0.0
                        nx = int(glide_s[P_DL_MS] * sample_rate + 0.5)
                        ist[I_DL_XFADE] = nx if nx > 1 else 1
                        dl_f[3] = 1.0 / ist[I_DL_XFADE]
                    fb = v[P_DL_FB]
                    w = ist[I_DL_WRITE]
                    dl = _delay._delay_read(dl_buf, 0, w, dl_f[0])
                    dr = _delay._delay_read(dl_buf, 1, w, dl_f[0])
                    if ist[I_DL_XFADE] > 0:
                        m = dl_f[2]
                        dl = dl + m * (_delay._delay_read(dl_buf, 0, w, dl_f[1]) - dl)
                        dr = dr + m * (_delay._delay_read(dl_buf, 1, w, dl_f[1]) - dr)
                        ist[I_DL_XFADE] -= 1
                        if ist[I_DL_XFADE] == 0:
                            dl_f[0] = dl_f[1]
                            dl_f[2] = 0.0
                        else:
                            dl_f[2] = m + dl_f[3]
                    il = xl * send
                    ir = xr * send
                    _delay._delay_write(dl_buf, 0, w, il + fb * dl)
                    _delay._delay_write(dl_buf, 1, w, ir + fb * dr)
                    w += 1
                    if w == dl_buf.shape[1]:
                        w = 0
                    ist[I_DL_WRITE] = w
                    wet_l += dl
                    wet_r += dr
                    # every write of the last buffer-length samples was zero -> the loop is silent
                    if il == 0.0 and ir == 0.0 and dl == 0.0 and dr == 0.0:
                        ist[I_DL_QUIET] += 1
                    else:
                        ist[I_DL_QUIET] = 0
            xl += wet_l
            xr += wet_r

            if mask & (1 << S_WIDTH):
                width = 1.0 + mix[S_WIDTH] * (v[P_WIDTH] - 1.0)
                if width != 1.0:
                    mid = 0.5 * (xl + xr)
                    side = 0.5 * (xl - xr) * width
                    xl = mid + side
                    xr = mid - side

            if has_tap:
                tap[n, 0] = xl
                tap[n, 1] = xr

            if mask & (1 << S_OUT):
                go = 1.0 + mix[S_OUT] * (d[D_POST] - 1.0)
                xl *= go
                xr *= go

            if has_lim:
                k = n - start
                lm_src[k, 0] = xl
                lm_src[k, 1] = xr
                lm_src[k, 2] = d[D_CEIL]
                lm_src[k, 3] = d[D_LREL]
                lm_src[k, 4] = mix[S_LIM]
            elif nch == 1:
                out[n, 0] = 0.5 * (xl + xr)
            else:
                out[n, 0] = xl
                out[n, 1] = xr
        if has_lim:
            gmin = _lim._limiter_block(
                lm_src, stop - start, lm_buf, lm_tp, lm_dq, lm_dqi, lm_avg, lm_i, lm_f, tp_coeffs, tp_bound, lm_dst
            )
            if gmin < stats[ST_LIM_GAIN_MIN]:
                stats[ST_LIM_GAIN_MIN] = gmin
            for k in range(stop - start):
                if nch == 1:
                    out[start + k, 0] = 0.5 * (lm_dst[k, 0] + lm_dst[k, 1])
                else:
                    out[start + k, 0] = lm_dst[k, 0]
                    out[start + k, 1] = lm_dst[k, 1]


class MixChain:
    """The mixing chain (prepare/process/reset).

    Parameters
    ----------
    stages : iterable of str, optional
        Which of :data:`STAGES` exist in this chain (all by default).  The
        standalone processors in :mod:`dsp.processors` are chains with one stage.
    glide_ms : float
        Default ramp time for target changes, in milliseconds.

    Notes
    -----
    ``process(block, out)`` takes float32 arrays of shape (frames, 1 or 2);
    mono is processed as identical left/right and written back as their mean.
    The chain reads ``self.targets`` (or the ``targets`` passed to ``process``)
    at the start of every block.
    """

    def __init__(self, stages: Iterable[str] = STAGES, *, glide_ms: float = DEFAULT_GLIDE_S * 1000.0):
        stages = tuple(stages)
        for s in stages:
            if s not in STAGES:
                raise ValueError(f"unknown stage {s!r}; stages are {', '.join(STAGES)}")
        self.stages = stages
        self._mask = sum(1 << STAGES.index(s) for s in stages)
        self.targets = default_vector()
        self.glide_s = np.full(N_PARAMS, glide_ms / 1000.0)
        self.enabled = np.ones(len(STAGES))
        self._stage_glide_s = np.full(len(STAGES), STAGE_GLIDE_S)
        self.stats = np.zeros(3)
        self.spec: ProcessSpec | None = None
        self._latency = 0

    # -- parameters -------------------------------------------------------
    def set_params(self, values: Mapping[str, object]) -> None:
        """Set targets by name (validated against the parameter table)."""
        self.targets[:] = vector_from_mapping(values, base=self.targets)

    def set_param(self, name: str, value: float, *, glide_ms: float | None = None) -> None:
        v = validate_value(name, value)
        i = PARAM_INDEX[name]
        if glide_ms is not None:
            self.glide_s[i] = glide_ms / 1000.0
        self.targets[i] = v

    def set_bypass(self, stage: str, bypassed: bool = True) -> None:
        if stage not in STAGES:
            raise ParameterError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
        self.enabled[STAGES.index(stage)] = 0.0 if bypassed else 1.0

    def value(self, name: str) -> float:
        """Current (possibly gliding) value of a parameter."""
        return float(self._g[0, PARAM_INDEX[name]])

    @property
    def latency_samples(self) -> int:
        """Delay from input to output in samples (the limiter lookahead), 0 without a limiter."""
        return self._latency

    @property
    def comp_gain_reduction_db(self) -> float:
        """Largest compressor gain reduction in the last block (dB, >= 0)."""
        return float(self.stats[ST_COMP_GR_DB])

    @property
    def limiter_gain_reduction_db(self) -> float:
        """Largest limiter gain reduction in the last block (dB, >= 0)."""
        return float(-20.0 * math.log10(max(self.stats[ST_LIM_GAIN_MIN], 1e-12)))

    @property
    def nonfinite_samples(self) -> int:
        """NaN/Inf input samples replaced by zero in the last block."""
        return int(self.stats[ST_NONFINITE])

    # -- prepare / process / reset ---------------------------------------
    def prepare(self, spec: ProcessSpec) -> None:
        if spec.num_channels not in (1, 2):
            raise ValueError(f"MixChain processes mono or stereo, not {spec.num_channels} channels")
        fs = float(spec.sample_rate)
        self.spec = spec
        self._fs = fs
        self._g = make_bank(self.targets, [p.glide for p in PARAMS])
        self._sm = make_bank(self.enabled, ["linear"] * len(STAGES))
        self._cc = np.zeros(N_PARAMS)
        self._d = np.zeros(8)
        self._ist = np.zeros(9, dtype=np.int64)
        self._eq_c = np.zeros((4, 5))
        self._eq_z = np.zeros((4, 2, 2))
        self._comp_env = np.zeros(1)
        lengths = _rev.line_lengths(fs)
        ap_lengths = _rev.allpass_lengths(fs)
        self._rv_lines = np.zeros((_rev.N_LINES, _rev.ring_size(lengths)))
        self._rv_ap = np.zeros((len(ap_lengths), _rev.ring_size(ap_lengths)))
        self._rv_i = np.zeros((3, _rev.N_LINES), dtype=np.int64)  # line lengths, write indexes, all-pass lengths
        self._rv_i[0] = lengths
        self._rv_i[2, : len(ap_lengths)] = ap_lengths
        self._rv_f = np.zeros((3, 10))
        self._dl_buf = np.zeros((2, _delay.buffer_length(_MAX_DELAY_MS, fs)))
        self._dl_f = np.zeros(4)  # [head A delay, head B delay, crossfade position, crossfade step]
        if "limiter" in self.stages:
            self._latency = _lim.lookahead_samples(self.targets[P_LOOK], fs)
        else:
            self._latency = 0
        lat = max(self._latency, _lim.lookahead_samples(PARAMS[P_LOOK].minimum, fs))
        self._lm_i, self._lm_f, win = _lim.init_state(lat)
        self._lm_buf = np.zeros((2, lat))
        self._lm_tp = np.zeros((2, 2 * TP_TAPS))
        self._lm_dq = np.zeros(win + 1)
        self._lm_dqi = np.zeros(win + 1, dtype=np.int64)
        self._lm_avg = np.ones(win)
        self._lm_src = np.zeros((LIMITER_CHUNK, 5))  # limiter input rows: left, right, ceiling, release alpha, mix
        self._lm_dst = np.zeros((LIMITER_CHUNK, 2))
        self._ist[I_RV_IDLE_LEN] = int(lengths.max() + ap_lengths.sum() + 256)
        self._ist[I_DL_IDLE_LEN] = self._dl_buf.shape[1]
        self.reset()

    def reset(self) -> None:
        """Clear every state in place; parameters settle on their targets."""
        if self.spec is None:
            return
        self._g[:] = make_bank(self.targets, [p.glide for p in PARAMS])
        self._sm[:] = make_bank(self.enabled, ["linear"] * len(STAGES))
        for a in (self._eq_z, self._comp_env, self._rv_lines, self._rv_ap, self._rv_f, self._dl_buf):
            a[...] = 0.0
        self._rv_i[1] = 0  # [0]: line write index, [1]: all-pass write index
        self._ist[[I_POS, I_GLIDING, I_STAGE_GLIDING, I_DL_WRITE, I_DL_XFADE]] = 0
        self._dl_f[:] = 0.0
        self._dl_f[0] = self.targets[P_DL_MS] * self._fs * 0.001
        self._ist[I_RV_QUIET] = self._ist[I_RV_IDLE_LEN]
        self._ist[I_DL_QUIET] = self._ist[I_DL_IDLE_LEN]
        _lim.reset_state(self._lm_i, self._lm_f, self._lm_buf, self._lm_tp, self._lm_dq, self._lm_avg)
        _derive_gains(self._g[0], self._d)
        _update_coeffs(True, self._fs, self._g[0], self._cc, self._d, self._eq_c, self._rv_i, self._rv_f)

    def kernel_args(self) -> tuple:
        """Everything ``_chain_kernel`` takes after ``(x, out)`` and before ``tap``, for fused callers.

        The arrays are the chain's own state (mutated in place), so the tuple
        stays valid until the next :meth:`prepare`.  ``targets`` and
        ``glide_s`` are :attr:`targets` and :attr:`glide_s`.
        """
        if self.spec is None:
            raise RuntimeError("prepare() the chain first")
        return (
            self.targets,
            self.glide_s,
            self.enabled,
            self._stage_glide_s,
            self._fs,
            self._mask,
            self._g,
            self._sm,
            self._cc,
            self._d,
            self._ist,
            self.stats,
            self._eq_c,
            self._eq_z,
            self._comp_env,
            self._rv_lines,
            self._rv_i,
            self._rv_ap,
            self._rv_f,
            self._dl_buf,
            self._dl_f,
            self._lm_buf,
            self._lm_tp,
            self._lm_dq,
            self._lm_dqi,
            self._lm_avg,
            self._lm_i,
            self._lm_f,
            TP_COEFFS,
            _lim.TP_GAIN_BOUND,
            self._lm_src,
            self._lm_dst,
        )

    @property
    def current_values(self) -> np.ndarray:
        """The live (possibly gliding) parameter vector, float64 [N_PARAMS]; a view, do not write."""
        return self._g[0]

    def process(
        self, block: np.ndarray, out: np.ndarray, targets: np.ndarray | None = None, glide_s: np.ndarray | None = None
    ) -> None:
        """Process one block.

        Parameters
        ----------
        block, out : np.ndarray [shape=(frames, channels), dtype=float32]
            ``out`` may be ``block`` (in place).
        targets : np.ndarray [shape=(N_PARAMS,), dtype=float64], optional
            Target vector for this block (defaults to ``self.targets``); values
            must already be validated (the engine clamps before it swaps them in).
        glide_s : np.ndarray [shape=(N_PARAMS,), dtype=float64], optional
            Per-parameter glide time in seconds for targets that change now.
        """
        if self.spec is None:
            raise RuntimeError("prepare() the chain before process()")
        channels = block.shape[1] if getattr(block, "ndim", 0) == 2 else 0
        check_block(block, out, channels if channels in (1, 2) else 2)
        _chain_kernel(
            block,
            out,
            self.targets if targets is None else targets,
            self.glide_s if glide_s is None else glide_s,
            self.enabled,
            self._stage_glide_s,
            self._fs,
            self._mask,
            self._g,
            self._sm,
            self._cc,
            self._d,
            self._ist,
            self.stats,
            self._eq_c,
            self._eq_z,
            self._comp_env,
            self._rv_lines,
            self._rv_i,
            self._rv_ap,
            self._rv_f,
            self._dl_buf,
            self._dl_f,
            self._lm_buf,
            self._lm_tp,
            self._lm_dq,
            self._lm_dqi,
            self._lm_avg,
            self._lm_i,
            self._lm_f,
            TP_COEFFS,
            _lim.TP_GAIN_BOUND,
            self._lm_src,
            self._lm_dst,
            _NO_TAP,
        )

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Every recursive state array (for inspection in tests)."""
        return {
            "eq_z": self._eq_z,
            "comp_env": self._comp_env,
            "reverb_lines": self._rv_lines,
            "reverb_allpass": self._rv_ap,
            "reverb_lowpass": self._rv_f[0],
            "delay": self._dl_buf,
            "limiter_delay": self._lm_buf,
            "limiter_tp": self._lm_tp,
            "limiter_avg": self._lm_avg,
        }
