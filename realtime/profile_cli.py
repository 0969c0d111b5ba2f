"""``mixpilot profile``: build, show and list target profiles (:mod:`inference.profile`).

::

    mixpilot profile build FILES|DIR ... -o mytaste.json [--name NAME] [--overwrite]
    mixpilot profile show NAME|PATH [--json] [--plot out.png]
    mixpilot profile list [--json]

``build`` measures each reference (one track counts once, whatever its
length) and writes their combined profile: per 1/3-octave band the mean
mid/side level relative to the loudness and its spread across the
references (the tolerance), width, PLR, LRA, short-term loudness
percentiles, loudness.  ``show`` prints a profile (a shipped name or a JSON
file) as a table, ``--plot`` draws it (needs matplotlib, :func:`realtime.plots.profile_chart`).  ``list`` names the
shipped profiles.

Registered in :mod:`realtime.cli` by :func:`add_profile_parser` and run by
:func:`run_profile`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any, TextIO

from mixpilot.dsp.errors import UsageError
from mixpilot.inference.profile import Profile, shipped_profiles

__all__ = ["add_profile_parser", "format_profile", "run_profile"]


def add_profile_parser(sub: Any) -> None:
    """Add ``profile`` (with ``build``, ``show``, ``list``) to the subparsers ``sub`` of ``mixpilot``."""
    pr = sub.add_parser(
        "profile",
        help="build, show and list target profiles (a taste learnt from references)",
        description="Target profiles: what the AI aims for. build: learn one from your reference tracks; "
        "show: print or plot one; list: the shipped profiles.",
    )
    ps = pr.add_subparsers(dest="profile_command", metavar="ACTION", parser_class=type(pr))
    b = ps.add_parser(
        "build",
        help="combined profile of reference files/folders -> JSON",
        description="Measure each reference (a folder: the audio files in it) and write their combined "
        "profile: mean and spread per 1/3-octave band (mid and side), width, PLR, LRA, loudness.",
    )
    b.add_argument("sources", nargs="+", metavar="FILE|DIR", help="reference tracks (at least 3 s each)")
    b.add_argument("-o", "--out", required=True, metavar="OUT.json", help="profile file to write")
    b.add_argument("--name", default=None, help="profile name (default: OUT's file name)")
    b.add_argument("--description", default="", help="free text stored in the profile")
    b.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    b.add_argument("--quiet", action="store_true", help="no progress and no summary")
    s = ps.add_parser("show", help="print (or plot) a profile", description="Print a profile as a table.")
    s.add_argument("profile", metavar="NAME|PATH", help="a shipped profile name (mixpilot profile list) or a JSON file")
    s.add_argument("--json", action="store_true", help="print the profile JSON")
    s.add_argument(
        "--plot", metavar="OUT.png", default=None, help="draw it to a PNG (needs matplotlib: the 'plot' extra)"
    )
    li = ps.add_parser("list", help="the shipped profiles", description="List the shipped profiles.")
    li.add_argument("--json", action="store_true", help="print them as JSON")


def _fmt(v: float, width: int = 6, signed: bool = False) -> str:
    if not math.isfinite(v):
        return "-".rjust(width)
    return f"{v:+{width}.1f}" if signed else f"{v:{width}.1f}"


def _band_label(hz: float) -> str:
    return f"{hz / 1000:g}k" if hz >= 1000 else f"{hz:g}"


def format_profile(p: Profile) -> str:
    """The profile as text: header, loudness/dynamics/width lines, then one row per band."""
    lines = [f"profile {p.name}: {p.tracks} track{'s' if p.tracks != 1 else ''}"]
    if p.description:
        lines.append(p.description)
    tol = p.tracks > 1
    pm = " +- "

    def pair(v: float, t: float, unit: str) -> str:
        return f"{_fmt(v, 0)}{pm + _fmt(t, 0) if tol else ''} {unit}"

    lines.append(
        f"loudness {pair(p.integrated_lufs, p.integrated_tol_lu, 'LUFS')}, true peak {_fmt(p.true_peak_dbtp, 0)} dBTP, "
        f"PLR {pair(p.plr_db, p.plr_tol_db, 'dB')}, LRA {pair(p.lra_lu, p.lra_tol_lu, 'LU')}"
    )
    st = ", ".join(f"p{int(q)} {_fmt(v, 0, True)}" for q, v in zip((10, 50, 90, 95), p.st_percentiles_lu))
    lines.append(f"short-term loudness re integrated: {st} LU")
    lines.append(f"width (side/mid) {pair(p.width_db, p.width_tol_db, 'dB')}")
    head = f"{'band Hz':>8} {'mid dB':>7}" + (f" {'+-':>5}" if tol else "") + f" {'side dB':>7}"
    head += (f" {'+-':>5}" if tol else "") + f" {'width':>6} {'time sd':>7}"
    lines.append("levels in dB re the integrated loudness; width = side/mid in dB; time sd = spread across time")
    lines.append(head)
    for i, hz in enumerate(p.bands_hz):
        row = f"{_band_label(hz):>8} {_fmt(p.mid_db[i], 7)}"
        if tol:
            row += f" {_fmt(p.mid_tol_db[i], 5)}"
        row += f" {_fmt(p.side_db[i], 7)}"
        if tol:
            row += f" {_fmt(p.side_tol_db[i], 5)}"
        row += f" {_fmt(p.width_band_db[i], 6)} {_fmt(p.mid_time_spread_db[i], 7)}"
        lines.append(row)
    src = p.provenance.get("command") or ""
    if src:
        lines.append(f"built by: {src}")
    return "\n".join(lines)


def _build(args: argparse.Namespace, out: TextIO) -> int:
    from .references import profile_from_files

    target = os.path.abspath(args.out)
    if not target.endswith(".json"):
        raise UsageError(f"-o {args.out}: a profile is a .json file")
    if os.path.exists(target) and not args.overwrite:
        raise UsageError(f"-o {args.out}: exists (add --overwrite to replace it)")
    if any(os.path.abspath(s) == target for s in args.sources):
        raise UsageError(f"-o {args.out}: is one of the inputs; choose another file")
    if not os.path.isdir(os.path.dirname(target)):
        raise UsageError(f"-o {args.out}: folder {os.path.dirname(target)} does not exist")

    def progress(i: int, n: int, label: str) -> None:
        if not args.quiet:
            print(f"[{i + 1}/{n}] {label}", file=sys.stderr, flush=True)

    name = args.name or os.path.splitext(os.path.basename(target))[0]
    p = profile_from_files(args.sources, name=name, description=args.description, progress=progress)
    p.provenance["command"] = "mixpilot profile build " + " ".join(args.sources)
    p.save(target)
    if not args.quiet:
        print(format_profile(p), file=out)
        print(f"written: {args.out}", file=out)
    return 0


def run_profile(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run ``mixpilot profile ACTION``; returns the exit code (errors are raised as :class:`ProfileError`)."""
    out = out or sys.stdout
    action = getattr(args, "profile_command", None)
    if action is None:
        raise UsageError("mixpilot profile needs an action: build, show or list (see mixpilot profile --help)")
    if action == "build":
        return _build(args, out)
    if action == "show":
        if args.plot:
            from .analyze import check_plot_path

            check_plot_path(args.plot, args.profile)
        p = Profile.load(args.profile)
        if args.plot:
            from .plots import profile_chart

            profile_chart(p.to_dict(), args.plot)
        if args.json:
            out.write(p.to_json())
        else:
            print(format_profile(p), file=out)
            if args.plot:
                print(f"plot: {args.plot}", file=out)
        return 0
    rows = []
    for n in shipped_profiles():
        p = Profile.load(n)
        rows.append({"name": n, "tracks": p.tracks, "description": p.description})
    if args.json:
        out.write(json.dumps(rows, indent=1) + "\n")
    elif not rows:
        print("no shipped profiles", file=out)
    else:
        for r in rows:
            print(f"{r['name']:<12} {r['tracks']:>4} tracks  {r['description']}", file=out)
    return 0
