"""``mixpilot render IN OUT --report PATH``: what the render did, against its target, as a picture and numbers.

The report compares the input (before) and the delivered file (after, read
back from OUT: dither, lossy coding and trims included) with the render's
target -- the profile of ``--reference`` / ``--target``, or the shipped
``default`` profile when neither is given (what the AI aims at then) -- with
:func:`realtime.target_report.target_comparison`, and holds the short-term
loudness of both over time and the AI's parameter targets over time (the
``--params-out`` events as step functions, as ``compare.json`` holds them).

``PATH`` decides the form (:func:`report_kind`):

- ``*.png``: one chart (:func:`realtime.plots.render_report_chart`): the mid
  1/3-octave spectrum before and after against the target's curve and its
  tolerance band, the deviation from the target before and after (mid and
  side) with the tolerance, short-term loudness before and after with the
  delivery target, and every AI parameter that moved over time;
- ``*.html``: one self-contained page -- the chart embedded, the table of
  numbers before/after/target -- that opens offline anywhere;
- anything else is a folder (created; an existing one must be empty, or an
  earlier report, replaced with ``--overwrite``): ``report.png``,
  ``report.json`` (schema ``docs/schemas/render-report.schema.json``, id
  :data:`SCHEMA_ID`) and ``report.html`` (linking ``report.png``).

Every file is written atomically (:mod:`mixpilot.fileio`); none is ever an
input (IN or a reference) or OUT.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from mixpilot.dsp.errors import OutputError, UsageError

__all__ = ["FOLDER_FILES", "SCHEMA_ID", "build_report", "check_report_path", "report_kind", "write_report"]

SCHEMA_ID = "mixpilot.render-report/1"
FOLDER_FILES = ("report.png", "report.json", "report.html")
SHORT_TERM_HOP_S = 0.5


def report_kind(path: str) -> str:
    """``png``, ``html`` or ``folder`` for a ``--report`` path."""
    low = path.lower()
    if low.endswith(".png"):
        return "png"
    if low.endswith((".html", ".htm")):
        return "html"
    return "folder"


def _same(a: str, b: str) -> bool:
    try:
        return os.path.realpath(a) == os.path.realpath(b) or (os.path.exists(b) and os.path.samefile(a, b))
    except OSError:
        return False


def check_report_path(path: str, *, protect: tuple[str, ...], overwrite: bool) -> str:
    """Checks on ``--report PATH`` before anything is rendered (one-line errors); returns its absolute path.

    ``protect``: the input, the output and every reference file (never written).
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        from .compare import PLOT_INSTALL_HINT

        raise OutputError(f"--report needs charts: {PLOT_INSTALL_HINT}") from None
    p = os.path.abspath(path)
    kind = report_kind(path)
    for other in protect:
        if _same(p, other):
            raise UsageError(f"--report {path}: is an input or the output ({other}); choose another path")
        if kind == "folder" and Path(os.path.realpath(other)).is_relative_to(os.path.realpath(p)):
            raise UsageError(f"--report {path}: the folder holds {other}; choose another folder")
    parent = os.path.dirname(p)
    if not os.path.isdir(parent):
        raise OutputError(f"--report {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"--report {path}: folder {parent} is not writable")
    if kind == "folder":
        if os.path.exists(p) and not os.path.isdir(p):
            raise UsageError(f"--report {path}: exists and is not a folder (a .png or .html file name makes one file)")
        if os.path.isdir(p):
            names = set(os.listdir(p))
            if names and not names <= set(FOLDER_FILES):
                raise UsageError(f"--report {path}: the folder holds other files; give a new or empty folder")
            if names and not overwrite:
                raise UsageError(f"--report {path}: holds an earlier report; pass --overwrite to replace it")
    else:
        if os.path.isdir(p):
            raise UsageError(f"--report {path}: is a folder")
        if os.path.lexists(p) and not overwrite:
            raise UsageError(f"--report {path}: exists; pass --overwrite to replace it")
    return p


def _r(v: float | None, nd: int = 4) -> float | None:
    if v is None:
        return None
    v = float(v)
    return round(v, nd) if math.isfinite(v) else None


def _loudness(m: dict) -> dict:
    il, tp = m["integrated_lufs"], m["true_peak_dbtp"]
    return {
        "integrated_lufs": _r(il),
        "true_peak_dbtp": _r(tp),
        "lra_lu": _r(m["loudness_range_lu"]),
        "plr_db": _r(tp - il) if math.isfinite(tp) and math.isfinite(il) else None,
        "max_short_term_lufs": _r(m["max_short_term_lufs"]),
    }


def build_report(
    x_in: np.ndarray,
    y_out: np.ndarray,
    sample_rate: int,
    *,
    profile: Any,
    target_kind: str,
    target_note: str,
    rep: Any,
    static_values: dict,
    ai_updates: list,
    input_path: str,
    output_path: str,
) -> dict:
    """The report document from the input and delivered audio ``[frames, 1|2]`` at ``sample_rate``."""
    from mixpilot import __version__
    from mixpilot.dsp.descriptors import compute_descriptors
    from mixpilot.dsp.meter import measure

    from .compare import _trajectories
    from .measures import short_term_series
    from .target_report import target_comparison

    def side(a: np.ndarray) -> np.ndarray:
        return a if a.shape[1] <= 2 else a[:, :2]

    x_in, y_out = side(x_in), side(y_out)
    duration = y_out.shape[0] / sample_rate
    series = {}
    for key, a in (("input", x_in), ("output", y_out)):
        t, v = short_term_series(a, sample_rate, SHORT_TERM_HOP_S)
        series[key] = {"t_s": [_r(q, 3) for q in t], "lufs": [_r(q, 3) for q in v]}
    before = target_comparison(compute_descriptors(x_in, sample_rate), profile, kind=target_kind,
                               channels=x_in.shape[1])  # fmt: skip
    after = target_comparison(compute_descriptors(y_out, sample_rate), profile, kind=target_kind,
                              channels=y_out.shape[1])  # fmt: skip
    params = _trajectories(ai_updates, static_values, duration) if rep.model != "none" else None
    return {
        "schema": SCHEMA_ID,
        "mixpilot_version": __version__,
        "input": input_path,
        "output": output_path,
        "sample_rate": int(sample_rate),
        "channels": int(y_out.shape[1]),
        "duration_s": _r(duration, 6),
        "model": rep.model,
        "target": {
            "kind": target_kind,
            "name": profile.name,
            "label": before["label"],
            "note": target_note,
            "tracks": int(profile.tracks),
            "sources": before["sources"],
        },
        "delivery": {"target_lufs": _r(rep.target_lufs), "ceiling_dbtp": _r(rep.ceiling_dbtp)},
        "loudness": {"input": _loudness(measure(x_in, sample_rate)), "output": _loudness(measure(y_out, sample_rate))},
        "before": before,
        "after": after,
        "short_term": series,
        "params": params,
        "notes": list(rep.notes),
    }


def write_report(doc: dict, path: str, *, overwrite: bool = False) -> list[str]:
    """Write the report in the form ``path`` asks for (:func:`report_kind`); returns the files written."""
    from mixpilot.fileio import write_bytes_atomic, write_text_atomic

    from . import plots

    png = plots.render_report_chart(doc)
    kind = report_kind(path)
    if kind == "png":
        write_bytes_atomic(path, png)
        return [path]
    if kind == "html":
        src = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        write_text_atomic(path, page(doc, src))
        return [path]
    os.makedirs(path, exist_ok=True)
    files = [os.path.join(path, n) for n in FOLDER_FILES]
    write_bytes_atomic(files[0], png)
    write_text_atomic(files[1], json.dumps(doc, indent=1, allow_nan=False) + "\n")
    write_text_atomic(files[2], page(doc, FOLDER_FILES[0]))
    return files


def _f(v: float | None, nd: int = 1, sign: bool = False) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "&ndash;"
    return f"{v:+.{nd}f}" if sign else f"{v:.{nd}f}"


def page(doc: dict, image_src: str) -> str:
    """A self-contained HTML page: the chart (``image_src``: a file name or a data URI) and the numbers."""
    esc = html.escape
    b, a = doc["before"], doc["after"]
    rows = []
    for key, name, unit in (("integrated_lufs", "integrated loudness", "LUFS"), ("plr_db", "PLR", "dB"),
                            ("lra_lu", "LRA", "LU"), ("width_db", "width (side/mid)", "dB")):  # fmt: skip
        rows.append(
            f"<tr><th scope='row'>{name} ({unit})</th><td>{_f(b[key]['value'])}</td><td>{_f(a[key]['value'])}</td>"
            f"<td>{_f(b[key]['target'])} &plusmn; {_f(b[key]['tolerance'])}</td>"
            f"<td>{_f(b[key]['difference'], sign=True)}</td><td>{_f(a[key]['difference'], sign=True)}</td></tr>"
        )
    for part in ("mid", "side"):
        if b.get(part) is None or a.get(part) is None:
            continue
        rows.append(
            f"<tr><th scope='row'>tonal {part}: RMS deviation (dB)</th><td>{_f(b[part]['rms_db'], 2)}</td>"
            f"<td>{_f(a[part]['rms_db'], 2)}</td><td>0 &plusmn; its tolerance per band</td>"
            f"<td>outside tol. {_f(b[part]['outside_rms_db'], 2)}</td>"
            f"<td>outside tol. {_f(a[part]['outside_rms_db'], 2)}</td></tr>"
        )
    lo = doc["loudness"]
    rows.append(
        f"<tr><th scope='row'>true peak (dBTP)</th><td>{_f(lo['input']['true_peak_dbtp'])}</td>"
        f"<td>{_f(lo['output']['true_peak_dbtp'])}</td><td>ceiling {_f(doc['delivery']['ceiling_dbtp'])}</td>"
        "<td></td><td></td></tr>"
    )
    notes = "".join(f"<li>{esc(n)}</li>" for n in doc.get("notes") or [])
    title = f"mixpilot render report: {Path(doc['input']).name} \u2192 {Path(doc['output']).name}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:sans-serif;margin:1.5em;max-width:1200px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:right}}th[scope=row]{{text-align:left}}
img{{max-width:100%}}</style></head>
<body><h1>{esc(title)}</h1>
<p>{esc(doc["input"])} &rarr; {esc(doc["output"])}: {doc["duration_s"]:.1f} s, {doc["sample_rate"]} Hz,
{doc["channels"]} ch; AI: {esc(str(doc["model"]))}; delivery {_f(doc["delivery"]["target_lufs"])} LUFS,
ceiling {_f(doc["delivery"]["ceiling_dbtp"])} dBTP.</p>
<p>Target: {esc(doc["target"]["label"])} &mdash; {esc(doc["target"]["note"])}</p>
<table id="numbers"><thead><tr><th></th><th>input</th><th>output</th><th>target</th>
<th>input &minus; target</th><th>output &minus; target</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>
<figure><img id="chart" src="{esc(image_src)}" alt="spectrum, deviation, loudness and AI parameters"></figure>
{f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""}
<p><small>mixpilot {esc(doc["mixpilot_version"])}</small></p>
</body></html>
"""
