"""Every chart mixpilot draws (matplotlib, Agg, no pyplot state), each from a JSON-ready document.

Nothing here measures audio: the charts are drawn from what ``compare.json``
(:mod:`realtime.compare`) or ``mixpilot analyze --json`` holds, so a folder
can be redrawn (``mixpilot compare --replot DIR``) without rendering again.

matplotlib is an optional dependency (the ``plot`` extra): importing this
module without it raises :class:`PlotsUnavailable` with the command that
installs it.

- :func:`compare_charts`: ``spectrum.png`` (long-term 1/3-octave spectrum per
  system against the tonal reference -- a target with its tolerance band when
  the document has one -- and each system's deviation from it),
  ``loudness.png`` (short-term loudness over time), ``waveforms.png``
  (peak/RMS envelope per system), ``params.png`` (every AI parameter over
  time per system), ``param_means.png`` (mean setting per parameter and system).
- :func:`analysis_chart`: one picture for ``mixpilot analyze FILE --plot``:
  spectrum with the octave balance, short-term loudness over time, the AI's
  suggestions over time.
- :func:`profile_chart`: ``mixpilot profile show NAME --plot``: a target
  profile's mid and side levels per 1/3-octave band with their tolerance,
  and its width per band (from the profile JSON).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "INSTALL_HINT",
    "PlotsUnavailable",
    "analysis_chart",
    "compare_charts",
    "profile_chart",
    "render_report_chart",
]

INSTALL_HINT = "pip install matplotlib (or pip install -e '.[plot]' in a mixpilot checkout)"


class PlotsUnavailable(ImportError):
    """matplotlib is missing; the message says how to install it."""


try:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
except ImportError as _exc:  # pragma: no cover - exercised where matplotlib is absent
    raise PlotsUnavailable(f"charts need matplotlib, which is not installed: {INSTALL_HINT}") from _exc

DPI = 100
_ORIGINAL_COLOUR = "#222222"


def _colours(systems: Sequence[dict]) -> list:
    """One colour per system, the same in every chart (the original in near-black)."""
    cmap = matplotlib.colormaps["tab10"]
    out: list[object] = []
    k = 0
    for s in systems:
        if s.get("kind") == "original":
            out.append(_ORIGINAL_COLOUR)
        else:
            out.append(cmap(k % 10))
            k += 1
    return out


def _none_to_nan(values: Sequence) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def _save(fig: Figure, path: Path) -> None:
    """PNG to ``path`` atomically (rendered in memory, then one temp-and-rename write)."""
    from mixpilot.fileio import write_bytes_atomic

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    write_bytes_atomic(os.fspath(path), buf.getvalue())


def _freq_axis(ax: Axes) -> None:
    ax.set_xscale("log")
    ticks = [31.5, 63, 125, 250, 500, 1000, 2000, 4000, 8000, 16000]
    ax.set_xticks(ticks)
    ax.set_xticklabels(["31.5", "63", "125", "250", "500", "1k", "2k", "4k", "8k", "16k"])
    ax.minorticks_off()
    ax.set_xlabel("frequency (Hz)")
    ax.grid(True, alpha=0.3)


# --- compare --------------------------------------------------------------------------


def _spectrum(doc: dict, cols: list) -> Figure:
    bands = doc["bands_hz"]
    ref = doc["tonal_reference"]
    fig = Figure(figsize=(11, 7.5))
    ax1, ax2 = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    target = ref.get("target_db")
    if target is not None:  # a target profile: its curve and tolerance band
        t = _none_to_nan(target)
        tol = _none_to_nan(ref.get("tolerance_db") or [0.0] * len(t))
        ax1.fill_between(bands, [a - b for a, b in zip(t, tol)], [a + b for a, b in zip(t, tol)], color="0.85",
                         label=f"{ref['label']} tolerance")  # fmt: skip
        ax1.plot(bands, t, color="0.4", lw=2.5, ls="--", label=f"target: {ref['label']}")
        ax2.fill_between(bands, [-v for v in tol], tol, color="0.85")
    own = False
    for s, c in zip(doc["systems"], cols):
        lw = 2.4 if s.get("kind") == "original" else 1.5
        ax1.plot(bands, _none_to_nan(s["spectrum_db"]), color=c, lw=lw, label=s["label"], marker=".", ms=3)
        ax2.plot(bands, _none_to_nan(s["tonal_distance"]["per_band_db"]), color=c, lw=lw, marker=".", ms=3)
        tt = s.get("tonal_target")
        if tt:  # a reference/target system: its own target, dotted in its colour, with its tolerance
            own = True
            t = _none_to_nan(tt["target_db"])
            tol = _none_to_nan(tt["tolerance_db"])
            ax1.fill_between(bands, [a - b for a, b in zip(t, tol)], [a + b for a, b in zip(t, tol)], color=c,
                             alpha=0.08, lw=0)  # fmt: skip
            ax1.plot(bands, t, color=c, lw=1.3, ls=":", label=f"{tt['label']} (its target)")
    ax1.set_ylabel("level (dB re integrated loudness)")
    ax1.set_title("Long-term spectrum, 1/3 octave (mid)")
    ax1.legend(fontsize=8, ncol=2)
    ax1.grid(True, alpha=0.3)
    ax2.axhline(0.0, color="0.3", lw=0.8)
    ax2.set_ylabel(f"re {ref['label']} (dB)" if not own else "re the system's target (dB)")
    ax2.set_title(
        f"Deviation from the {ref['label']} (grey: its tolerance; RMS in the table)"
        if not own
        else f"Deviation from each system's target (its own for a reference/target system, else the {ref['label']}; "
        "grey: the latter's tolerance)",
        fontsize=10,
    )
    _freq_axis(ax1)
    _freq_axis(ax2)
    fig.tight_layout()
    return fig


def _loudness(doc: dict, cols: list) -> Figure:
    fig = Figure(figsize=(11, 4.5))
    ax = fig.subplots()
    for s, c in zip(doc["systems"], cols):
        st = s["short_term"]
        ax.plot(st["t_s"], _none_to_nan(st["lufs"]), color=c, lw=1.4, label=s["label"])
    target = doc["settings"]["target_lufs"]
    ax.axhline(target, color="0.4", ls="--", lw=1, label=f"target {target:g} LUFS (integrated)")
    ax.set_xlabel(f"time in the excerpt (s; excerpt starts at {doc['input']['start_s']:g} s)")
    ax.set_ylabel("short-term loudness (LUFS)")
    ax.set_title("Short-term loudness (EBU, 3 s window) as delivered")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


def _waveforms(doc: dict, cols: list) -> Figure:
    import numpy as np

    systems = doc["systems"]
    dur = doc["input"]["duration_s"]
    fig = Figure(figsize=(11, 1.35 * len(systems) + 0.8))
    axes = np.atleast_1d(fig.subplots(len(systems), 1, sharex=True, sharey=True))
    for ax, s, c in zip(axes, systems, cols):
        peak = np.asarray(s["envelope"]["peak"], dtype=float)
        rms = np.asarray(s["envelope"]["rms"], dtype=float)
        t = (np.arange(peak.size) + 0.5) * dur / max(peak.size, 1)
        ax.fill_between(t, -peak, peak, color=c, alpha=0.35, lw=0)
        ax.fill_between(t, -rms, rms, color=c, alpha=0.9, lw=0)
        ax.set_ylim(-1.05, 1.05)
        ax.set_yticks([-1, 0, 1])
        ax.text(0.005, 0.92, s["label"], transform=ax.transAxes, fontsize=9, va="top")
        ax.grid(True, alpha=0.25)
    axes[-1].set_xlabel("time in the excerpt (s)")
    fig.suptitle("Waveform overview: peak (light) and RMS (dark), as delivered", fontsize=11)
    fig.tight_layout()
    return fig


def _param_systems(doc: dict, cols: list) -> tuple[list[tuple[dict, object]], list[str], dict]:
    withp = [(s, c) for s, c in zip(doc["systems"], cols) if s.get("params")]
    names: list[str] = []
    units: dict = {}
    for s, _ in withp:
        for n in s["params"]["names"]:
            if n not in names:
                names.append(n)
        units.update(s["params"]["units"])
    return withp, names, units


def _grid(fig: Figure, n: int, ncols: int = 5) -> Any:
    import numpy as np

    rows = max(1, -(-n // ncols))
    axes = np.atleast_1d(fig.subplots(rows, ncols)).reshape(-1)
    for ax in axes[n:]:
        ax.set_visible(False)
    return axes[:n]


def _params(doc: dict, cols: list) -> Figure | None:
    withp, names, units = _param_systems(doc, cols)
    if not withp:
        return None
    dur = doc["input"]["duration_s"]
    rows = max(1, -(-len(names) // 5))
    fig = Figure(figsize=(14, 2.6 * rows + 0.9))
    axes = _grid(fig, len(names))
    for ax, name in zip(axes, names):
        for s, c in withp:
            tr = s["params"]["trajectories"].get(name)
            if tr is None:
                continue
            ts = [*tr["t_s"], dur]
            vs = [*tr["value"], tr["value"][-1]]
            ax.step(ts, _none_to_nan(vs), where="post", color=c, lw=1.3, label=s["label"])
        unit = units.get(name) or ""
        ax.set_title(name + (f" ({unit})" if unit else ""), fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8, frameon=False)
    fig.suptitle(
        "AI parameter targets over time in the excerpt, seconds (the chain glides to each over --crossfade-s)",
        fontsize=11,
    )
    fig.tight_layout(rect=(0.0, 0.05 + 0.1 / rows, 1.0, 1.0))
    return fig


def _param_means(doc: dict, cols: list) -> Figure | None:
    import numpy as np

    withp, names, units = _param_systems(doc, cols)
    if not withp:
        return None
    rows = max(1, -(-len(names) // 5))
    fig = Figure(figsize=(14, 2.6 * rows + 1.2))
    axes = _grid(fig, len(names))
    x = np.arange(len(withp))
    for ax, name in zip(axes, names):
        vals = [s["params"]["mean"].get(name) for s, _ in withp]
        ax.bar(x, _none_to_nan(vals), color=[c for _, c in withp])
        static = withp[0][0]["params"]["trajectories"].get(name, {}).get("value", [None])[0]
        if static is not None:
            ax.axhline(static, color="0.3", lw=0.8, ls="--")
        ax.set_xticks(x)
        ax.set_xticklabels([s["label"].split(" (")[0] for s, _ in withp], rotation=35, ha="right", fontsize=7)
        unit = units.get(name) or ""
        ax.set_title(name + (f" ({unit})" if unit else ""), fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle("Mean AI setting per parameter (time-weighted; dashed: the static value)", fontsize=11)
    fig.tight_layout()
    return fig


def compare_charts(doc: dict, folder: str | os.PathLike[str]) -> list[str]:
    """Draw every chart of a comparison document into ``folder``; returns the file names written.

    A chart with nothing to show (no system has AI parameters) is not drawn,
    and an old file of that name is removed.
    """
    from .compare import CHARTS

    folder = Path(folder)
    cols = _colours(doc["systems"])
    makers = {
        "spectrum": _spectrum,
        "loudness": _loudness,
        "waveforms": _waveforms,
        "params": _params,
        "param_means": _param_means,
    }
    written = []
    for name, make in makers.items():
        fig = make(doc, cols)
        path = folder / CHARTS[name]
        if fig is None:
            if path.exists():
                path.unlink()
            continue
        _save(fig, path)
        written.append(CHARTS[name])
    return written


# --- analyze ----------------------------------------------------------------------------


def _target_bands(ax: Any, tgt: dict, what: str, colours: tuple[str, str] = ("C0", "C1")) -> None:
    """Mid and side level of ``what`` against a target's curves with their tolerance band (dB re loudness)."""
    f = tgt["bands_hz"]
    for part, colour in zip(("mid", "side"), colours):
        p = tgt.get(part)
        if not p:
            continue
        t = _none_to_nan(p["target_db"])
        tol = _none_to_nan(p["tolerance_db"])
        ax.fill_between(f, [a - b for a, b in zip(t, tol)], [a + b for a, b in zip(t, tol)], color=colour,
                        alpha=0.15, lw=0, label=f"target {part} \u00b1 tolerance")  # fmt: skip
        ax.plot(f, t, color=colour, lw=1.6, ls="--", label=f"target {part}")
        ax.plot(f, _none_to_nan(p["level_db"]), color=colour, lw=1.6, marker=".", ms=4, label=f"{what} {part}")


def _deviation(ax: Any, tgt: dict, label: str) -> None:
    """Deviation from the target per band (mid, side) with the tolerance as a band around 0."""
    f = tgt["bands_hz"]
    mid = tgt["mid"]
    tol = _none_to_nan(mid["tolerance_db"])
    ax.fill_between(f, [-v for v in tol], tol, color="C0", alpha=0.15, lw=0, label="mid tolerance")
    ax.plot(f, _none_to_nan(mid["deviation_db"]), color="C0", lw=1.5, marker=".", ms=4,
            label=f"mid (RMS {_num(mid['rms_db'])} dB, outside {_num(mid['outside_rms_db'])} dB)")  # fmt: skip
    side = tgt.get("side")
    if side:
        ax.plot(f, _none_to_nan(side["deviation_db"]), color="C1", lw=1.0, marker=".", ms=3, alpha=0.8,
                label=f"side (RMS {_num(side['rms_db'])} dB, outside {_num(side['outside_rms_db'])} dB)")  # fmt: skip
    ax.axhline(0.0, color="0.3", lw=0.8)
    ax.set_ylabel(f"{label} \u2212 target (dB)")
    ax.legend(fontsize=8, ncol=2)
    _freq_axis(ax)


def _num(v: float | None, fmt: str = ".2f") -> str:
    return format(v, fmt) if isinstance(v, (int, float)) and math.isfinite(v) else "-"


def _aspects_text(tgt: dict) -> str:
    """``loudness -4.8 LU (±3.1), PLR ...``: the scalar differences of a target comparison."""
    parts = []
    for key, name, unit in (("integrated_lufs", "loudness", "LU"), ("plr_db", "PLR", "dB"), ("lra_lu", "LRA", "LU"),
                            ("width_db", "width", "dB")):  # fmt: skip
        a = tgt.get(key) or {}
        if a.get("difference") is None:
            continue
        parts.append(f"{name} {a['difference']:+.1f} {unit} (\u00b1{_num(a.get('tolerance'), '.1f')})")
    return ", ".join(parts)


def analysis_chart(rep: dict, path: str | os.PathLike[str]) -> None:
    """``mixpilot analyze FILE --plot PNG``: spectrum + octave balance (+ the target with its tolerance and the
    deviation from it, when the report has one), loudness over time, AI over time."""
    import numpy as np

    sugg = rep.get("suggestions") or []
    tgt = rep.get("target")
    names = [k for k in sugg[0] if k != "t"] if sugg else []
    rows = -(-len(names) // 5)
    heights = [3.0] + ([2.2] if tgt else []) + [2.0] + ([1.6 * rows] if sugg else [])
    fig = Figure(figsize=(11, 1.5 * sum(heights) + 0.4))
    gs = fig.add_gridspec(len(heights), 1, height_ratios=heights)
    ax = fig.add_subplot(gs[0])
    octs = rep.get("spectrum_octaves_db") or {}
    if tgt:  # levels re the integrated loudness, as the profile holds them; the octave balance on its own axis
        _target_bands(ax, tgt, "file")
        ax.set_ylabel("level (dB re integrated loudness)")
        bar_ax = ax.twinx()
        bar_ax.set_ylabel("octave balance (dB re band mean)", color="C2")
        bar_colour, bar_alpha = "C2", 0.18
    else:
        third = rep.get("spectrum_third_octave_db") or {}
        if third:
            ax.plot(third["bands_hz"], _none_to_nan(third["level_db"]), color="C0", marker=".",
                    label="1/3 octave (mid)")  # fmt: skip
        ax.axhline(0.0, color="0.3", lw=0.8)
        ax.set_ylabel("level (dB re band mean)")
        bar_ax, bar_colour, bar_alpha = ax, "C1", 0.35
    if octs:
        fc = np.array([float(k) for k in octs])
        lv = np.array(_none_to_nan(list(octs.values())))
        lo, hi = fc / math.sqrt(2.0), fc * math.sqrt(2.0)
        bar_ax.bar(lo, lv, width=hi - lo, align="edge", color=bar_colour, alpha=bar_alpha, edgecolor=bar_colour,
                   label="octave balance")  # fmt: skip
        for f, v in zip(fc, lv):
            if math.isfinite(v):
                bar_ax.annotate(f"{v:+.1f}", (f, v), ha="center", va="bottom" if v >= 0 else "top", fontsize=7)
    lo_ = rep["loudness"]

    def fmt(v, unit):
        return f"{v:.1f} {unit}" if isinstance(v, (int, float)) and math.isfinite(v) else f"- {unit}"

    title = (
        f"{Path(rep.get('file') or 'audio').name}: {fmt(lo_['integrated_lufs'], 'LUFS')}, true peak "
        f"{fmt(lo_['true_peak_dbtp'], 'dBTP')}, LRA {fmt(lo_['loudness_range_lu'], 'LU')}"
    )
    if tgt:
        title += f"\nagainst the {tgt['label']}: {_aspects_text(tgt)}"
    ax.set_title(title, fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    if bar_ax is not ax:
        h2, l2 = bar_ax.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, fontsize=8, ncol=2 if tgt else 1)
    _freq_axis(ax)
    k = 1
    if tgt:
        _deviation(fig.add_subplot(gs[k]), tgt, "file")
        k += 1
    ax2 = fig.add_subplot(gs[k])
    k += 1
    st = rep.get("short_term") or {"t_s": [], "lufs": []}
    ax2.plot(st["t_s"], _none_to_nan(st["lufs"]), color="C0", lw=1.3, label="short-term (3 s)")
    il = lo_.get("integrated_lufs")
    if isinstance(il, (int, float)) and math.isfinite(il):
        ax2.axhline(il, color="0.4", ls="--", lw=1, label=f"integrated {il:.1f} LUFS")
    tl = (tgt or {}).get("integrated_lufs", {}).get("target")
    if tl is not None:
        ax2.axhline(tl, color="C3", ls=":", lw=1.2, label=f"target's integrated {tl:.1f} LUFS")
    ax2.set_xlabel("time (s)")
    ax2.set_ylabel("LUFS")
    ax2.set_title("Loudness over time", fontsize=10)
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize=8)
    if sugg:
        sub = gs[k].subgridspec(rows, 5, hspace=0.7)
        t = [s["t"] for s in sugg]
        for i, name in enumerate(names):
            a = fig.add_subplot(sub[i // 5, i % 5])
            a.plot(t, [s[name] for s in sugg], color="C2", lw=1.2, marker=".", ms=3)
            a.set_title(name, fontsize=8)
            a.tick_params(labelsize=7)
            a.grid(True, alpha=0.3)
        fig.text(0.5, 0.005, f"AI suggestions over time ({rep.get('model')}; seconds)", ha="center", fontsize=9)
    fig.tight_layout(rect=(0.0, 0.02 if sugg else 0.0, 1.0, 1.0))
    _save(fig, Path(path))


# --- profile --------------------------------------------------------------------------


def profile_chart(doc: dict, path: str | os.PathLike[str]) -> None:
    """``mixpilot profile show NAME --plot PNG`` from a profile's JSON form (``Profile.to_dict()``).

    Top: mid and side level per band (dB re the integrated loudness) with +-
    the tolerance when the profile has more than one track; bottom: width
    (side/mid, dB) per band.
    """
    import numpy as np

    f = np.asarray(doc["bands_hz"], dtype=float)
    tone, width = doc["tone"], doc["width"]
    many = doc["tracks"] > 1
    fig = Figure(figsize=(9, 6.5))
    ax1, ax2 = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    for key, label, colour in (("mid", "mid", "C0"), ("side", "side", "C1")):
        v = np.array(_none_to_nan(tone[f"{key}_db"]))
        ax1.plot(f, v, marker="o", ms=3, color=colour, label=label)
        if many:
            t = np.array(_none_to_nan(tone[f"{key}_tol_db"]))
            ax1.fill_between(f, v - t, v + t, color=colour, alpha=0.2, label=f"{label} tolerance")
    dyn, loud = doc["dynamics"], doc["loudness"]

    def fmt(v, unit):
        return f"{v:.1f} {unit}" if isinstance(v, (int, float)) and math.isfinite(v) else f"- {unit}"

    ax1.set_title(
        f"profile {doc['name']} ({doc['tracks']} track{'s' if many else ''}): {fmt(loud['integrated_lufs'], 'LUFS')}, "
        f"PLR {fmt(dyn['plr_db'], 'dB')}, LRA {fmt(dyn['lra_lu'], 'LU')}, width {fmt(width['width_db'], 'dB')}",
        fontsize=10,
    )
    ax1.set_ylabel("dB re integrated loudness")
    ax1.legend(loc="lower left", fontsize=8)
    ax1.grid(True, alpha=0.3)
    w = np.array(_none_to_nan(width["width_band_db"]))
    ax2.plot(f, w, marker="o", ms=3, color="C2")
    if many:
        t = np.array(_none_to_nan(width["width_band_tol_db"]))
        ax2.fill_between(f, w - t, w + t, color="C2", alpha=0.2)
    ax2.set_ylabel("width: side/mid dB")
    _freq_axis(ax2)
    ax2.set_xlabel("1/3-octave band (Hz)")
    fig.tight_layout()
    _save(fig, Path(path))


# --- render --report ----------------------------------------------------------------------


def _png_bytes(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _moved(params: dict) -> list[str]:
    """The AI parameters whose target changed during the render (the others stay at their static value)."""
    out = []
    for name in params["names"]:
        vals = [v for v in params["trajectories"][name]["value"] if v is not None]
        if vals and max(vals) - min(vals) > 1e-9:
            out.append(name)
    return out


def render_report_chart(doc: dict) -> bytes:
    """``render --report``: before/after spectrum against the target with its tolerance, the deviation from it,
    short-term loudness before/after, and the AI's parameters over time; the PNG's bytes (from the report JSON)."""
    before, after = doc["before"], doc["after"]
    params = doc.get("params")
    moved = _moved(params) if params else []
    rows = -(-len(moved) // 5)
    heights = [3.0, 2.2, 2.0] + ([1.6 * rows] if moved else [0.5])
    fig = Figure(figsize=(11, 1.5 * sum(heights) + 0.4))
    gs = fig.add_gridspec(len(heights), 1, height_ratios=heights)
    f = before["bands_hz"]
    ax = fig.add_subplot(gs[0])
    mid_t = _none_to_nan(before["mid"]["target_db"])
    tol = _none_to_nan(before["mid"]["tolerance_db"])
    label = doc["target"]["label"]
    ax.fill_between(f, [a - b for a, b in zip(mid_t, tol)], [a + b for a, b in zip(mid_t, tol)], color="0.85",
                    label=f"{label}: tolerance")  # fmt: skip
    ax.plot(f, mid_t, color="0.35", lw=2.2, ls="--", label=label)
    ax.plot(f, _none_to_nan(after["mid"]["level_db"]), color="C3", lw=1.8, marker=".", ms=4, label="output")
    # the input on top, dashed: a render that leaves the balance alone shows both lines
    ax.plot(f, _none_to_nan(before["mid"]["level_db"]), color="C0", lw=1.4, ls="--", marker=".", ms=3, label="input")
    ax.set_ylabel("mid level (dB re integrated loudness)")
    lo = doc["loudness"]

    def fmt(v, unit):
        return f"{v:.1f} {unit}" if isinstance(v, (int, float)) and math.isfinite(v) else f"- {unit}"

    ax.set_title(
        f"{Path(doc['input']).name} \u2192 {Path(doc['output']).name} (AI: {doc['model']}): "
        f"{fmt(lo['input']['integrated_lufs'], 'LUFS')} \u2192 {fmt(lo['output']['integrated_lufs'], 'LUFS')}, "
        f"true peak {fmt(lo['input']['true_peak_dbtp'], 'dBTP')} \u2192 {fmt(lo['output']['true_peak_dbtp'], 'dBTP')}"
        f"\nagainst the {label}, before: {_aspects_text(before)}\nafter: {_aspects_text(after)}",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    _freq_axis(ax)
    ax2 = fig.add_subplot(gs[1])
    ax2.fill_between(f, [-v for v in tol], tol, color="0.85", label="mid tolerance")
    for part, style, lw in (("mid", "-", 1.6), ("side", ":", 1.0)):
        for what, colour, cmp in (("output", "C3", after), ("input", "C0", before)):
            p = cmp.get(part)
            if not p:
                continue
            ls = style if what == "output" else ("--" if part == "mid" else (0, (1, 3)))
            ax2.plot(f, _none_to_nan(p["deviation_db"]), color=colour, ls=ls, lw=lw, marker="." if part == "mid"
                     else None, ms=3, label=f"{what} {part} (RMS {_num(p['rms_db'])} dB, outside "
                     f"{_num(p['outside_rms_db'])} dB)")  # fmt: skip
    ax2.axhline(0.0, color="0.3", lw=0.8)
    ax2.set_ylabel("\u2212 target (dB)")
    ax2.set_title("Deviation from the target per 1/3-octave band (grey: its tolerance)", fontsize=10)
    ax2.legend(fontsize=7, ncol=2)
    _freq_axis(ax2)
    ax3 = fig.add_subplot(gs[2])
    for what, colour in (("input", "C0"), ("output", "C3")):
        st = doc["short_term"][what]
        ax3.plot(st["t_s"], _none_to_nan(st["lufs"]), color=colour, lw=1.3, label=f"{what}, short-term (3 s)")
    tl = doc["delivery"]["target_lufs"]
    if tl is not None:
        ax3.axhline(tl, color="0.4", ls="--", lw=1, label=f"delivery target {tl:g} LUFS (integrated)")
    ax3.set_xlabel("time (s)")
    ax3.set_ylabel("LUFS")
    ax3.set_title("Loudness over time", fontsize=10)
    ax3.grid(True, alpha=0.3)
    ax3.legend(fontsize=8)
    dur = doc["duration_s"]
    if moved and params is not None:
        sub = gs[3].subgridspec(rows, 5, hspace=0.7)
        for i, name in enumerate(moved):
            a = fig.add_subplot(sub[i // 5, i % 5])
            tr = params["trajectories"][name]
            a.step([*tr["t_s"], dur], _none_to_nan([*tr["value"], tr["value"][-1]]), where="post", color="C2", lw=1.2)
            unit = params["units"].get(name) or ""
            a.set_title(name + (f" ({unit})" if unit else ""), fontsize=8)
            a.tick_params(labelsize=7)
            a.grid(True, alpha=0.3)
        still = len(params["names"]) - len(moved)
        fig.text(0.5, 0.005, f"AI parameter targets over time (s; the chain glides to each); {still} other "
                 "parameters stayed at their static values", ha="center", fontsize=9)  # fmt: skip
    else:
        a = fig.add_subplot(gs[3])
        a.axis("off")
        why = "no AI (--model none)" if not params else "the AI moved no parameter"
        a.text(0.5, 0.5, f"AI parameters over time: {why}", ha="center", va="center", fontsize=10)
    fig.tight_layout(rect=(0.0, 0.02 if moved else 0.0, 1.0, 1.0))
    return _png_bytes(fig)
