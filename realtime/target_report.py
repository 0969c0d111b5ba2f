"""How a mix differs from a target: the numbers ``analyze --reference/--target`` and ``render --report`` show.

:func:`target_comparison` compares the long-term descriptors of a mix
(:func:`dsp.descriptors.compute_descriptors`: 1/3-octave mid and side levels
re the integrated loudness, PLR, LRA, width) with a
:class:`inference.profile.Profile` (a ``--reference``'s or a ``--target``'s)
and returns a JSON-ready dict (NaN and infinities as ``None``):

- ``mid`` / ``side`` (``side`` is ``None`` for mono): per band ``level_db``
  (the mix), ``target_db``, ``tolerance_db`` (the profile's spread across its
  tracks; 0 for one reference), ``deviation_db`` (``level - target``) and
  ``outside_db`` (the deviation shrunk toward 0 by the tolerance,
  ``sign(d) * max(|d| - tol, 0)``: :meth:`Profile.deviation`, what a
  do-no-harm correction would move), with ``rms_db`` and ``outside_rms_db``
  over the bands that both sides have;
- ``integrated_lufs``, ``plr_db``, ``lra_lu``, ``width_db``: each
  ``{value, target, tolerance, difference, outside}`` (``difference`` =
  ``value - target``).

Nothing here reads files or draws: :mod:`realtime.analyze` and
:mod:`realtime.render_report` call it, :mod:`realtime.plots` draws its output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mixpilot.dsp.descriptors import Descriptors
    from mixpilot.inference.profile import Profile

__all__ = ["ASPECTS", "band_distance", "target_comparison", "target_label"]

#: scalar aspects compared: (key, Descriptors attribute, Profile mean, Profile tolerance)
ASPECTS = (
    ("integrated_lufs", "integrated_lufs", "integrated_lufs", "integrated_tol_lu"),
    ("plr_db", "plr_db", "plr_db", "plr_tol_db"),
    ("lra_lu", "lra_lu", "lra_lu", "lra_tol_lu"),
    ("width_db", "width_db", "width_db", "width_tol_db"),
)
_ND = 3  # decimals kept (1 mdB)


def _r(v: float | None) -> float | None:
    if v is None:
        return None
    v = float(v)
    return round(v, _ND) if math.isfinite(v) else None


def _rms(a: np.ndarray) -> float | None:
    ok = np.isfinite(a)
    return _r(float(np.sqrt(np.mean(a[ok] ** 2)))) if ok.any() else None


def band_distance(
    level_db: Sequence | np.ndarray, target_db: Sequence | np.ndarray, tolerance_db: Sequence | np.ndarray
) -> dict:
    """Per band ``level - target``, the part outside the tolerance, and the RMS of each (bands both sides have)."""
    lv = np.array([np.nan if v is None else v for v in level_db], dtype=np.float64)
    tg = np.array([np.nan if v is None else v for v in target_db], dtype=np.float64)
    tol = np.nan_to_num(np.array([np.nan if v is None else v for v in tolerance_db], dtype=np.float64))
    dev = lv - tg
    outside = np.sign(dev) * np.maximum(np.abs(dev) - tol, 0.0)
    return {
        "level_db": [_r(v) for v in lv],
        "target_db": [_r(v) for v in tg],
        "tolerance_db": [_r(v) for v in tol],
        "deviation_db": [_r(v) for v in dev],
        "outside_db": [_r(v) for v in outside],
        "rms_db": _rms(dev),
        "outside_rms_db": _rms(outside),
    }


def target_label(kind: str, profile: Profile) -> str:
    """``reference song.flac``, ``references (3 tracks)``, ``target dark``: what the report calls the target."""
    if kind == "reference":
        sources = list((profile.provenance or {}).get("sources") or [])
        if len(sources) == 1:
            return f"reference {sources[0]}"
        return f"references ({profile.tracks} tracks)"
    return f"target {profile.name}"


def target_comparison(d: Descriptors, profile: Profile, *, kind: str, channels: int) -> dict:
    """The mix's descriptors ``d`` against ``profile`` (module docstring); ``kind`` is ``reference`` or ``target``."""
    mid = band_distance(d.mid_db, profile.mid_db, profile.mid_tol_db)
    side = band_distance(d.side_db, profile.side_db, profile.side_tol_db) if channels == 2 else None
    out = {
        "kind": kind,
        "name": profile.name,
        "label": target_label(kind, profile),
        "tracks": int(profile.tracks),
        "sources": [str(s) for s in (profile.provenance or {}).get("sources") or []],
        "bands_hz": [float(b) for b in profile.bands_hz],
        "mid": mid,
        "side": side,
    }
    for key, attr, mean, tol in ASPECTS:
        value = float(getattr(d, attr))
        if key == "width_db" and channels != 2:
            value = math.nan  # a mono file has no width to compare
        target, t = float(getattr(profile, mean)), float(getattr(profile, tol))
        diff = value - target
        t0 = t if math.isfinite(t) else 0.0
        outside = math.copysign(max(abs(diff) - t0, 0.0), diff) if math.isfinite(diff) else math.nan
        out[key] = {
            "value": _r(value),
            "target": _r(target),
            "tolerance": _r(t),
            "difference": _r(diff),
            "outside": _r(outside),
        }
    return out


def format_comparison(cmp: dict, what: str = "input") -> list[str]:
    """Text lines for a terminal: the scalar differences, the tonal RMS, and per band mid/side with tolerance."""

    def num(v, fmt="+.1f"):
        return "-" if v is None else format(v, fmt)

    units = {"integrated_lufs": ("loudness", "LUFS", "LU"), "plr_db": ("PLR", "dB", "dB"),
             "lra_lu": ("LRA", "LU", "LU"), "width_db": ("width (side/mid)", "dB", "dB")}  # fmt: skip
    tr = "tracks" if cmp["tracks"] != 1 else "track"
    lines = [f"  against the {cmp['label']} ({cmp['tracks']} {tr}): {what} - target (tolerance)"]
    for key, (name, unit, dunit) in units.items():
        a = cmp[key]
        lines.append(
            f"    {name:17s} {num(a['value'], '.1f'):>6s} {unit} vs {num(a['target'], '.1f'):>6s}: "
            f"{num(a['difference'])} {dunit} (\u00b1{num(a['tolerance'], '.1f')})"
        )
    for part in ("mid", "side"):
        p = cmp[part]
        if p is None:
            continue
        lines.append(
            f"    tonal {part:4s}        RMS {num(p['rms_db'], '.2f')} dB, outside the tolerance "
            f"{num(p['outside_rms_db'], '.2f')} dB"
        )
    lines.append("    per band (dB re integrated loudness): mid deviation \u00b1tolerance, side deviation \u00b1tol.")
    mid, side = cmp["mid"], cmp["side"]
    for i, f in enumerate(cmp["bands_hz"]):
        fl = f"{f / 1000:g}k" if f >= 1000 else f"{f:g}"
        row = f"      {fl:>5s} Hz  mid {num(mid['deviation_db'][i]):>6s} \u00b1{num(mid['tolerance_db'][i], '.1f'):<4s}"
        if side is not None:
            row += f"  side {num(side['deviation_db'][i]):>6s} \u00b1{num(side['tolerance_db'][i], '.1f')}"
        lines.append(row)
    return lines
