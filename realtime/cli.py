"""The ``mixpilot`` command line (INTERFACE.md).

Commands in this version:

``mixpilot play FILE`` / ``mixpilot live [--input DEV]``
    real time through sounddevice, with terminal meters
    (:func:`realtime.stream.run`); headless on a JACK dummy server when
    there is no audio device;
``mixpilot devices [--json]``
    audio devices and MIDI ports;
``mixpilot render IN OUT [options]``
    offline render through the whole chain, delivered at a loudness
    (:func:`realtime.render.render_file`);
``mixpilot params [--json]``
    the parameter table (:mod:`dsp.params`).

Every bad input ends with exactly one line ``mixpilot: error: ...`` on stderr
and exit code 2 (a usage problem: fix the command line) or 1 (a problem at
run time: a file that cannot be read or written), never a traceback.
Notes (downmix, NaN samples, a target that cannot be reached) go to stderr
as ``mixpilot: note: ...``; the progress bar goes to stderr; the summary to
stdout.  ``--quiet`` drops the progress bar and the summary.
"""

from __future__ import annotations

import os

# One BLAS thread: the AI worker's small matrix products are ~10x slower with OpenBLAS's thread
# pool on a busy machine, and its spinning threads take CPU from the audio thread.  Set before
# numpy is first imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402 - after the BLAS thread settings above
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from typing import TYPE_CHECKING, Any, TextIO  # noqa: E402

from .progress import ProgressBar  # noqa: E402

if TYPE_CHECKING:
    from .api import MasterSettings
    from .render import RenderReport

__all__ = ["ProgressBar", "build_parser", "load_params_file", "main"]

PROG = "mixpilot"


def _UsageError(message: str) -> Exception:  # noqa: N802 - raised like the class it makes
    """A :class:`dsp.errors.UsageError`, made on demand: importing ``mixpilot.dsp`` loads Numba (about
    0.3 s), and an import at module level runs before :func:`main` can catch a Ctrl-C (a traceback)."""
    from mixpilot.dsp.errors import UsageError

    return UsageError(message)


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (raised, printed by :func:`main`).

    No prefix abbreviations: a script's ``--loud`` must not silently mean
    whichever option happens to start with it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        cmd = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        hint = f"{PROG} {cmd} --help" if cmd else f"{PROG} --help"
        raise _UsageError(f"{message} (see {hint})")


def build_parser() -> argparse.ArgumentParser:
    """The ``mixpilot`` parser; every run-level option's type, default, range and help come from
    :mod:`dsp.settings` (:func:`dsp.settings.argparse_kwargs`)."""
    from mixpilot import DIST_NAME, __version__
    from mixpilot.dsp.settings import argparse_kwargs as opt

    parser = _Parser(prog=PROG, description="mixpilot: a real-time AI mixing engine.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__} ({DIST_NAME})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def ai_options(q: argparse.ArgumentParser, estimate: str) -> None:
        q.add_argument(
            "--model",
            default="default",
            metavar="NAME|PATH|none",
            help="AI model: a name in models_onnx/, a path to an .onnx with its .json card, 'matcher' (the "
            "analytic matcher aiming at the default profile, correcting only what lies outside its tolerance; "
            "also the fallback when a model cannot be used), 'heuristic', or 'none' for static parameters "
            "(default: the shipped default model)",
        )
        q.add_argument("--ai-amount", **opt("ai_amount"))
        q.add_argument(
            "--amount",
            default=None,
            metavar="ASPECT=A,...",
            help="per-aspect AI amounts 0..1 for tone, width, dynamics, loudness, space (default: all 1), "
            "e.g. --amount tone=0.5,width=0",
        )
        q.add_argument("--ai-hop-s", **opt("ai_hop_s"))
        q.add_argument("--crossfade-s", **opt("crossfade_s"))
        q.add_argument(
            "--reference",
            nargs="+",
            action="extend",
            default=None,
            metavar="FILE|DIR",
            help="mix toward these references (audio files, or folders of them: their combined profile; one "
            "file is matched, several give a tolerance): the analytic matcher sets the AI parameters from "
            f"{estimate}; without --target-lufs the delivery loudness is the references' integrated loudness. "
            "Put it after the other arguments (it takes every path that follows)",
        )
        q.add_argument(
            "--target",
            default=None,
            metavar="NAME|PATH",
            help="mix toward a profile: a shipped one ('mixpilot profile list') or a profile JSON "
            "('mixpilot profile build'); as --reference",
        )

    r = sub.add_parser(
        "render",
        help="render a file (or many: --out-dir) through the mixing chain, faster than real time",
        description="Render IN through the whole mixing chain into OUT (.wav, .flac, .ogg or .mp3) at the "
        "target integrated loudness, with a true-peak limiter at the ceiling (held in the delivered "
        "file, after dither or lossy encoding). The output is aligned with the input and as long "
        "(the limiter lookahead is compensated). Mono stays mono; 3-8 channel files are downmixed "
        "to stereo (ITU-R BS.775). The input is never modified.",
    )
    r.add_argument(
        "paths",
        nargs="+",
        metavar="IN [OUT]",
        help="IN OUT for one file; with --out-dir, every argument is an input: files, folders, or quoted globs",
    )
    r.add_argument(
        "--target-lufs",
        **opt("target_lufs", default=None, default_text="-14, or the --reference/--target integrated loudness"),
    )
    r.add_argument(
        "--ceiling-dbtp", **opt("ceiling_dbtp", default=None, default_text="-1, or limiter_ceiling_dbtp from --params")
    )
    r.add_argument(
        "--params",
        metavar="FILE.json",
        default=None,
        help="static parameter values, a JSON object {name: number}; see 'mixpilot params'",
    )
    ai_options(r, "the whole input file, read before rendering (constant parameters)")
    r.add_argument(
        "--params-out",
        metavar="PATH",
        default=None,
        help="write the parameters used as JSON lines {t, param, value, source}",
    )
    r.add_argument(
        "--bit-depth",
        choices=("16", "24", "32f"),
        default=None,
        help="PCM sample format of .wav/.flac: 16 (TPDF dither), 24 (default), 32f (float, .wav only)",
    )
    r.add_argument("--float", dest="float_output", action="store_true", help="same as --bit-depth 32f")
    r.add_argument(
        "--output-rate",
        **opt("output_rate", default_text="the input's", help="deliver at this sample rate (soxr, before mastering)"),
    )
    r.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    r.add_argument(
        "--report",
        metavar="PNG|HTML|DIR",
        default=None,
        help="also draw what the render did: the input and the delivered file against the target (--reference/"
        "--target, else the default profile) per 1/3-octave band with its tolerance, loudness over time, the AI's "
        "parameters over time. PATH.png: the chart; PATH.html: one self-contained page (chart and numbers); any "
        "other PATH: a folder with report.png, report.json and report.html (needs matplotlib)",
    )
    b = r.add_argument_group("batch (several inputs, a folder or a glob)")
    b.add_argument("--out-dir", metavar="DIR", default=None, help="render every input into DIR (created if missing)")
    b.add_argument(
        "--format",
        choices=("wav", "flac", "ogg", "mp3"),
        default="wav",
        help="output format of a batch (default wav); a single OUT takes it from its extension",
    )
    b.add_argument("--jobs", "-j", **opt("jobs", default=None, default_text="every core", help="worker processes"))
    b.add_argument(
        "--summary",
        metavar="PATH",
        default=None,
        help="where the batch summary JSON goes (default DIR/mixpilot-summary.json)",
    )
    b.add_argument(
        "--cluster",
        metavar="ray://HOST:PORT|auto",
        default=None,
        help="run the files as tasks on a Ray cluster ('auto': the cluster 'ray start' runs here); "
        "needs pip install 'mixpilot-engine[cluster]'",
    )
    b.add_argument(
        "--shared-fs",
        action="store_true",
        help="with --cluster: inputs and DIR are on storage every worker sees; workers read and write "
        "there (default: audio travels through Ray's object store and outputs are written here)",
    )
    r.add_argument("--overwrite", action="store_true", help="replace OUT (and --params-out) if it exists")
    r.add_argument(
        "--block-size", **opt("block_size", help="frames per processing block (the result does not depend on it)")
    )
    r.add_argument(
        "--midi-file",
        metavar="FILE.mid",
        default=None,
        help="CC automation from a MIDI file, applied in time with the audio",
    )
    r.add_argument("--midi-map", metavar="FILE.toml", default=None, help="controller map (default: built-in)")
    r.add_argument(
        "--loudness-mode",
        choices=("search", "follow"),
        default="search",
        help="search: render passes until the file meets the target (default); follow: one pass "
        "with the real-time loudness follower, the samples 'mixpilot play' plays",
    )
    r.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary")

    def realtime_options(q: argparse.ArgumentParser) -> None:
        q.add_argument(
            "--output",
            metavar="DEV",
            default=None,
            help="output device: index or name substring (see 'mixpilot devices'; default: the system's)",
        )
        q.add_argument("--samplerate", **opt("sample_rate", default_text="the file's, else the device's"))
        q.add_argument("--blocksize", **opt("blocksize"))
        q.add_argument("--seconds", **opt("seconds"))
        q.add_argument(
            "--record",
            metavar="OUT.wav",
            default=None,
            help="record the processed output (32-bit float WAV), kept however the run ends",
        )
        q.add_argument(
            "--stats-json",
            metavar="PATH",
            default=None,
            help="write callback timing, xruns and status flags as JSON when the run ends",
        )
        q.add_argument(
            "--params-out",
            metavar="PATH",
            default=None,
            help="write parameter changes as JSON lines {t, param, value, source}",
        )
        q.add_argument(
            "--params", metavar="FILE.json", default=None, help="static parameter values, a JSON object {name: number}"
        )
        q.add_argument(
            "--target-lufs",
            **opt(
                "target_lufs",
                help="loudness the follower delivers (a loudness_gain_db in --params fixes the gain instead)",
                default=None,
                default_text="-14, or the --reference/--target integrated loudness",
            ),
        )
        q.add_argument("--ceiling-dbtp", **opt("ceiling_dbtp", default=None, default_text="-1"))
        ai_options(
            q,
            "the running estimate of what has played so far (play: the whole file so far; live: it follows a "
            "change of material)",
        )
        q.add_argument(
            "--midi-in",
            metavar="PORT",
            default=None,
            help="MIDI input: index, name substring, or 'jack'/'virtual' for a virtual port named 'mixpilot'",
        )
        q.add_argument("--midi-map", metavar="FILE.toml", default=None, help="controller map (default: built-in)")
        q.add_argument(
            "--midi-file",
            metavar="FILE.mid",
            default=None,
            help="play CC automation from a MIDI file in time with the audio",
        )
        q.add_argument(
            "--ai-resume-s",
            **opt("ai_resume_s", help="hand a MIDI-held parameter back to the AI after S seconds untouched"),
        )
        q.add_argument("--no-ui", action="store_true", help="no terminal meters")
        q.add_argument(
            "--jack",
            action="store_true",
            help="run as a JACK client with named ports (mixpilot:in_L, in_R, out_L, out_R) at the server's "
            "rate and period, instead of through PortAudio",
        )
        q.add_argument(
            "--connect-in",
            metavar="PATTERN",
            default=None,
            help="JACK: connect the output ports matching PATTERN (a regex, e.g. 'ardour:master/audio_out') "
            "to mixpilot's inputs, also when they appear later (implies --jack)",
        )
        q.add_argument(
            "--connect-out",
            metavar="PATTERN",
            default=None,
            help="JACK: connect mixpilot's outputs to the input ports matching PATTERN (e.g. 'system:playback_') "
            "(implies --jack)",
        )
        q.add_argument("--client-name", metavar="NAME", default="mixpilot", help="JACK client name (default: mixpilot)")
        q.add_argument(
            "--overwrite", action="store_true", help="replace existing --record / --stats-json / --params-out files"
        )

    pl = sub.add_parser(
        "play",
        help="play a file through the mixing chain in real time",
        description="Play FILE through the mixing chain on an audio device in real time, with "
        "terminal meters. Without an audio device it runs on a JACK dummy server "
        "it starts itself. Ctrl-C stops.",
    )
    pl.add_argument("file", metavar="FILE", help="audio file to play")
    realtime_options(pl)
    lv = sub.add_parser(
        "live",
        help="process an audio interface's input in real time",
        description="Process an input device through the mixing chain to an output device.",
    )
    lv.add_argument(
        "--input", metavar="DEV", default=None, help="input device: index or name substring (default: the system's)"
    )
    realtime_options(lv)
    an = sub.add_parser(
        "analyze",
        help="loudness, true peak, LRA, spectrum and AI suggestions over time",
        description="Analyse FILE: BS.1770-4 loudness and true peak, loudness range, crest factor, "
        "octave-band spectral balance, stereo width, and what the AI would set over "
        "time.",
    )
    an.add_argument("file", metavar="FILE")
    an.add_argument("--json", action="store_true", help="print it as JSON")
    an.add_argument("--model", default="default", metavar="NAME|PATH|none", help="AI model (default: shipped)")
    an.add_argument("--hop-s", **opt("hop_s"))
    an.add_argument(
        "--plot",
        metavar="PNG",
        default=None,
        help="also draw the analysis: spectrum with the octave balance (and the target with its tolerance), "
        "loudness over time, the AI's suggestions over time (needs matplotlib)",
    )
    an.add_argument(
        "--reference",
        nargs="+",
        action="extend",
        default=None,
        metavar="FILE|DIR",
        help="compare FILE with these references (their combined profile): per-band mid/side deviation with the "
        "tolerance, loudness, PLR, LRA and width differences; the AI's suggestions are then the analytic "
        "matcher's aiming at them (unless --model none). Put it after the other arguments",
    )
    an.add_argument(
        "--target",
        default=None,
        metavar="NAME|PATH",
        help="compare FILE with a profile: a shipped one ('mixpilot profile list') or a profile JSON; as --reference",
    )
    from .compare import add_parser as add_compare_parser

    add_compare_parser(sub)
    ml = sub.add_parser(
        "midi-learn",
        help="move a control, pick a parameter: saved to a MIDI map",
        description="Learn a controller map: move a knob/button, choose a parameter or action "
        "(bypass, ab, ai, release), repeat; an empty line ends. The map is saved "
        "after every assignment and an existing map is extended.",
    )
    ml.add_argument("--map", required=True, metavar="FILE.toml", help="the map to create or extend")
    ml.add_argument(
        "--midi-in",
        metavar="PORT",
        default=None,
        help="MIDI input (index, name substring, 'virtual'); default: the first port",
    )
    sub.add_parser(
        "bench",
        help="latency per block, real-time factor, inference latency, soak (mixpilot bench --help)",
        add_help=False,
    )
    dv = sub.add_parser(
        "devices",
        help="audio devices and MIDI ports",
        description="List audio devices (index, name, host API, channels, rate) and MIDI ports.",
    )
    dv.add_argument("--json", action="store_true", help="print them as JSON")

    p = sub.add_parser(
        "params",
        help="the parameter table: name, unit, range, AI range, default",
        description="Print the parameter table (the names --params and --params-out use).",
    )
    p.add_argument("--json", action="store_true", help="print it as JSON")
    from .profile_cli import add_profile_parser

    add_profile_parser(sub)
    return parser


# --- params --------------------------------------------------------------------------


def load_params_file(path: str) -> dict:
    """Read a ``--params`` file: a JSON object of parameter name -> number.

    Names and values are checked later against the parameter table; here only
    the JSON shape.  Raises ``OSError``, or :class:`dsp.errors.ParameterError` with a message
    that names the file.
    """
    from mixpilot.dsp.errors import ParameterError

    with open(path, encoding="utf-8") as f:
        text = f.read()

    def no_duplicates(pairs):
        seen = {}
        for k, v in pairs:
            if k in seen:
                raise ParameterError(f"--params {path}: {k!r} is given twice")
            seen[k] = v
        return seen

    try:
        data = json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise ParameterError(
            f"--params {path}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError as exc:
        raise ParameterError(f"--params {path}: not a usable JSON object ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise ParameterError(
            f'--params {path}: must be a JSON object {{"name": number, ...}}, got a {type(data).__name__}'
        )
    return data


def _params_table(out: TextIO) -> None:
    from mixpilot.dsp.params import PARAMS

    rows = [("name", "unit", "range", "AI range", "default", "glide", "AI")]
    for p in PARAMS:
        rows.append(
            (
                p.name,
                p.unit or "-",
                f"{p.minimum:g}..{p.maximum:g}",
                f"{p.ai_minimum:g}..{p.ai_maximum:g}",
                f"{p.default:g}",
                p.glide,
                "yes" if p.ai else "",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out.writelines("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n" for r in rows)


# --- render --------------------------------------------------------------------------


def _fmt(v: float, unit: str, width: int = 6) -> str:
    if not math.isfinite(v):  # silence: -inf LUFS / dBTP; no loudness range
        return f"{'-inf' if unit != 'LU' else 'n/a':>{width}} {unit}"
    return f"{v:{width}.1f} {unit}"


def _summary(rep: RenderReport, out: TextIO) -> None:
    ch = {1: "mono", 2: "stereo"}.get(rep.output_channels, f"{rep.output_channels} ch")
    src = f" from {rep.input_channels} ch" if rep.input_channels != rep.output_channels else ""
    out.write(f"rendered {rep.input_path} -> {rep.output_path}\n")
    rate = f"{rep.sample_rate} Hz" + (
        f" (from {rep.input_sample_rate} Hz)"
        if rep.input_sample_rate and rep.input_sample_rate != rep.sample_rate
        else ""
    )
    out.write(f"  {rate}, {ch}{src}, {rep.duration_s:.1f} s, {rep.format} {rep.subtype}, AI: {rep.model}\n")
    out.write(
        f"  integrated loudness {_fmt(rep.input_integrated_lufs, 'LUFS')} -> "
        f"{_fmt(rep.output_integrated_lufs, 'LUFS')}  (target {rep.target_lufs:g}, "
        f"delivery gain {rep.loudness_gain_db:+.2f} dB)\n"
    )
    out.write(
        f"  true peak           {_fmt(rep.input_true_peak_dbtp, 'dBTP')} -> "
        f"{_fmt(rep.output_true_peak_dbtp, 'dBTP')}  (ceiling {rep.ceiling_dbtp:g})\n"
    )
    out.write(f"  loudness range      {_fmt(rep.input_lra_lu, 'LU')} -> {_fmt(rep.output_lra_lu, 'LU')}\n")
    out.write(
        f"  max gain reduction  compressor {rep.max_comp_gain_reduction_db:.1f} dB, "
        f"limiter {rep.max_limiter_gain_reduction_db:.1f} dB\n"
    )
    out.write(
        f"  {rep.passes} pass{'es' if rep.passes != 1 else ''}, {rep.seconds:.2f} s, "
        f"{rep.realtime_factor:.0f}x real time, latency {rep.latency_samples} samples compensated\n"
    )
    out.write(f"  output: {rep.output_path}\n")


def render_settings(args: argparse.Namespace, params: dict | None) -> MasterSettings:
    """The command line's render options as :class:`realtime.api.MasterSettings` (what ``mixpilot.master`` takes)."""
    from mixpilot.dsp.settings import parse_amounts

    from .api import MasterSettings

    return MasterSettings(
        target_lufs=args.target_lufs,
        ceiling_dbtp=args.ceiling_dbtp,
        model=args.model,
        params=params,
        ai_amount=args.ai_amount,
        ai_hop_s=args.ai_hop_s,
        crossfade_s=args.crossfade_s,
        loudness_mode=args.loudness_mode,
        block_size=args.block_size,
        midi_file=args.midi_file,
        midi_map=args.midi_map,
        amounts=parse_amounts(args.amount),
        reference=tuple(args.reference) if args.reference else None,
        target=args.target,
    )


def _json_text(value: object) -> str:
    """``value`` as indented JSON, non-finite floats as null (:func:`realtime.api.json_ready`)."""
    from .api import json_ready

    return json.dumps(json_ready(value), indent=1) + "\n"


def _render(args: argparse.Namespace) -> int:

    from .render import render_file

    if args.out_dir is not None:
        return _render_batch(args)
    if args.cluster or args.jobs is not None or args.summary is not None or args.shared_fs:
        raise _UsageError("--cluster, --jobs, --summary and --shared-fs are for batches: give --out-dir DIR")
    if len(args.paths) != 2:
        raise _UsageError(
            f"render takes IN OUT (got {len(args.paths)} path{'s' if len(args.paths) != 1 else ''}); "
            f"for several inputs, a folder or a glob give --out-dir DIR"
        )
    params = _read_params_arg(args)
    bar = None if args.quiet else ProgressBar(sys.stderr)
    try:
        rep = render_file(
            args.paths[0],
            args.paths[1],
            settings=render_settings(args, params),
            float_output=args.float_output,
            bit_depth=args.bit_depth,
            output_rate=args.output_rate,
            overwrite=args.overwrite,
            progress=bar,
            params_out=args.params_out,
            report=args.report,
        )
    finally:
        if bar is not None:
            bar.finish()
    for note in rep.notes:
        if not (args.quiet and note.startswith("AI (")):  # what the AI changed is part of the summary
            _note(note)
    if args.json:
        sys.stdout.write(_json_text(rep.as_dict()))
    elif not args.quiet:
        _summary(rep, sys.stdout)
        if args.report is not None:
            print(f"  report: {args.report}")
    return 0


def _render_batch(args: argparse.Namespace) -> int:
    """``render IN... --out-dir DIR``: :func:`realtime.batch.run_batch`; exit 0, 3 (partial), 1, 130."""
    from .batch import BatchOptions, run_batch

    if args.params_out is not None:
        raise _UsageError("--params-out is for one file; a batch's summary is --summary")
    if args.report is not None:
        raise _UsageError("--report is for one file (render IN OUT --report PATH)")
    if args.jobs is not None:
        from mixpilot.dsp.settings import validate

        validate("jobs", args.jobs)
    if args.float_output:
        if args.bit_depth not in (None, "32f"):
            raise _UsageError(f"--float and --bit-depth {args.bit_depth} disagree; give one of them")
        args.bit_depth = "32f"
    options = BatchOptions(
        settings=render_settings(args, _read_params_arg(args)),
        bit_depth=args.bit_depth,
        output_rate=args.output_rate,
        overwrite=args.overwrite,
        shared_fs=args.shared_fs,
    )
    code, data = run_batch(
        args.paths,
        args.out_dir,
        options,
        fmt=args.format,
        workers=args.jobs,
        cluster=args.cluster,
        summary_path=args.summary,
        progress_stream=None if args.quiet else sys.stderr,
        note=_note,
    )
    if args.json:
        sys.stdout.write(_json_text(data))
    elif not args.quiet:
        c = data["counts"]
        print(
            f"batch {data['status']}: {c['rendered']} rendered, {c['skipped']} skipped, {c['failed']} failed"
            + (f", {c['interrupted']} interrupted" if c["interrupted"] else "")
            + f" of {data['files']} files in {data['seconds']:.1f} s; summary: {args.summary or _default_summary(args)}"
        )
    if code == 130:
        print(f"{PROG}: interrupted; the outputs in {args.out_dir} are complete files only", file=sys.stderr)
    return code


def _default_summary(args: argparse.Namespace) -> str:
    import os

    from .batch import SUMMARY_NAME

    return os.path.join(args.out_dir, SUMMARY_NAME)


def _read_params_arg(args: argparse.Namespace) -> dict | None:
    if args.params is None:
        return None
    try:
        return load_params_file(args.params)
    except OSError as exc:
        raise _UsageError(f"--params {args.params}: {exc.strerror or exc}") from None


def _note(text: str) -> None:
    """``mixpilot: warning: ...`` for warnings, ``mixpilot: note: ...`` otherwise (stderr, one line)."""
    t = _one_line(text)
    print(f"{PROG}: {t}" if t.startswith("warning: ") else f"{PROG}: note: {t}", file=sys.stderr, flush=True)


def _compile_first() -> None:
    """First run after an install or an upgrade: say that the kernels compile, then compile them all (realtime.jit)."""
    from .jit import ensure_compiled

    ensure_compiled(lambda text: print(f"{PROG}: {text}", file=sys.stderr, flush=True))


# commands that run the DSP kernels (compare --replot only draws)
_KERNEL_COMMANDS = ("play", "live", "render", "analyze", "compare")


def _realtime(args: argparse.Namespace) -> int:
    from mixpilot.dsp.settings import parse_amounts

    from .interrupts import SignalGuard, exit_code_for
    from .stream import RunOptions, run

    params = _read_params_arg(args) or {}
    ceiling = args.ceiling_dbtp
    opts = RunOptions(
        mode=args.command,
        file=getattr(args, "file", None),
        input_device=getattr(args, "input", None),
        output_device=args.output,
        samplerate=args.samplerate,
        blocksize=args.blocksize,
        seconds=args.seconds,
        record=args.record,
        stats_json=args.stats_json,
        params_out=args.params_out,
        params=params,
        target_lufs=args.target_lufs,
        ceiling_dbtp=ceiling,
        ui=not args.no_ui,
        overwrite=args.overwrite,
        model=args.model,
        ai_amount=args.ai_amount,
        amounts=parse_amounts(args.amount),
        ai_hop_s=args.ai_hop_s,
        crossfade_s=args.crossfade_s,
        midi_in=args.midi_in,
        midi_map=args.midi_map,
        midi_file=args.midi_file,
        ai_resume_s=args.ai_resume_s,
        reference=tuple(args.reference) if args.reference else None,
        target=args.target,
        jack=args.jack,
        connect_in=args.connect_in,
        connect_out=args.connect_out,
        client_name=args.client_name,
    )
    # The guard outlives the run: after a signal ended it, later ones stay ignored (shielded: never the
    # default action, never an EINTR in PortAudio's clean-up) until the process leaves with
    # os._exit(128 + N) -- a normal return would restore the default handlers and let a second
    # SIGINT/SIGTERM kill the interpreter while it shuts down.
    with SignalGuard() as guard:
        res = run(opts, note=_note, guard=guard)
        st = res.stats or {}
        cb = st.get("callback_us", {})
        if st:
            print(
                f"{PROG}: {args.command} ended ({res.reason}) after {st.get('seconds', 0):.1f} s: "
                f"{st.get('blocks', 0)} blocks, {st.get('xruns', 0)} xruns, callback p50 {cb.get('p50')} us, "
                f"p99 {cb.get('p99')} us, max {cb.get('max')} us (budget {st.get('budget_us')} us)",
                file=sys.stderr,
                flush=True,
            )
        if res.error:
            print(f"{PROG}: error: {_one_line(res.error)}", file=sys.stderr, flush=True)
            sys.stdout.flush()
            # PortAudio can hang while shutting down after its server died: leave without it
            os._exit(1)
        if res.reason == "interrupted":  # the shell's code for the signal: 130 SIGINT, 143 SIGTERM, 129 SIGHUP
            guard.shield()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(exit_code_for(res.signal or 2))
    return 0


def _devices(args: argparse.Namespace) -> int:
    from .stream import list_devices

    devs = list_devices()
    ports = _midi_ports()
    if args.json:
        sys.stdout.write(json.dumps({"audio": devs, "midi_inputs": ports}, indent=1) + "\n")
        return 0
    if not devs:
        print("no audio devices (mixpilot play/live start a JACK dummy server when jackd is installed)")
    for d in devs:
        print(
            f"{d['index']:3d}  {d['name']}  [{d['hostapi']}]  in {d['max_input_channels']}, "
            f"out {d['max_output_channels']}, {d['default_samplerate']:g} Hz"
        )
    print("MIDI inputs:" + ("" if ports else " none") + "  (--midi-in virtual creates a port named 'mixpilot')")
    for p in ports:
        print(f"{p['index']:3d}  {p['name']}  [{p['api']}]")
    return 0


def _midi_ports() -> list[dict]:
    try:
        from . import midi

        return list(midi.list_ports())
    except Exception:  # no usable MIDI API on this machine: nothing to list
        return []


def _analyze(args: argparse.Namespace) -> int:
    from mixpilot.dsp.settings import validate

    from .analyze import analyze_file, format_report

    validate("hop_s", args.hop_s)
    if args.plot is not None:
        from .analyze import check_plot_path

        check_plot_path(args.plot, args.file, args.reference or ())
    profile = None
    if args.reference or args.target:
        from .references import resolve_target

        profile = resolve_target(args.reference, args.target)
    rep = analyze_file(
        args.file,
        model=args.model,
        hop_s=args.hop_s,
        warn=lambda t: _note("warning: " + t),
        profile=profile,
        target_kind="reference" if args.reference else "target",
    )
    if args.plot is not None:
        from .plots import analysis_chart

        analysis_chart(rep, args.plot)
    if args.json:
        sys.stdout.write(_json_text(rep))
    else:
        print(format_report(rep))
    return 0


def _midi_learn(args: argparse.Namespace) -> int:
    from .midi import learn

    try:
        learn(args.midi_in, args.map)
    except (KeyboardInterrupt, EOFError):
        print(f"\n{PROG}: midi-learn stopped; the map keeps what was saved", file=sys.stderr)
    return 0


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _oserror_text(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


def _bench_main() -> Callable[[list[str]], int]:
    """``mixpilot bench``: the command registered by the benchmarks package (entry point group
    ``mixpilot.commands``, pyproject.toml), found at run time so that ``realtime`` never imports
    ``benchmarks`` (the arrows point down)."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="mixpilot.commands"):
        if ep.name == "bench":
            return ep.load()
    raise _UsageError("the bench command is not installed (pip install -e . registers it)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mixpilot``; returns the exit code (0 ok, 1 run-time error, 2 usage error, 130 interrupted).

    A Ctrl-C while the first modules load (before :func:`_main`'s own handler) is one line too.
    """
    try:
        return _main(argv)
    except KeyboardInterrupt as exc:
        print(f"{PROG}: error: interrupted", file=sys.stderr)
        return 128 + int(getattr(exc, "signum", 2))


def _main(argv: Sequence[str] | None = None) -> int:
    """:func:`main` (0 ok, 1 run-time error, 2 usage error, 128 + N for signal N).

    Every error mixpilot raises on purpose is a :class:`dsp.errors.MixpilotError` carrying its exit
    code; it is caught here once and printed as one line.  Plain ``OSError``/``ValueError`` from a
    library, a full memory and Ctrl-C are the only other ways out.
    """
    from mixpilot.dsp.errors import MixpilotError, ParameterError

    args: argparse.Namespace | None = None
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        if argv[:1] == ["bench"]:
            bench = _bench_main()
            if not ({"-h", "--help"} & set(argv)):
                _compile_first()
            return bench(argv[1:])
        args = build_parser().parse_args(argv)
        if args.command in _KERNEL_COMMANDS and not getattr(args, "replot", None):
            _compile_first()
        if args.command is None:
            raise _UsageError(
                f"a command is required: play, live, render, analyze, compare, devices, params or midi-learn "
                f"(see {PROG} --help)"
            )
        if args.command == "params":
            from mixpilot.dsp.params import table_as_json

            if args.json:
                sys.stdout.write(table_as_json() + "\n")
            else:
                _params_table(sys.stdout)
            return 0
        if args.command in ("play", "live"):
            return _realtime(args)
        if args.command == "devices":
            return _devices(args)
        if args.command == "midi-learn":
            return _midi_learn(args)
        if args.command == "analyze":
            return _analyze(args)
        if args.command == "compare":
            from .compare import run_cli as compare_cli

            return compare_cli(args, argv, _note)
        if args.command == "profile":
            from .profile_cli import run_profile

            return run_profile(args)
        return _render(args)
    except MixpilotError as exc:
        msg, code = str(exc), exc.exit_code
        params_file = getattr(args, "params", None)
        if isinstance(exc, ParameterError) and params_file and not msg.startswith("--params"):
            msg = f"--params {params_file}: {msg}"
    except ValueError as exc:  # a library's complaint about a value (one line all the same)
        msg, code = str(exc), 2
    except OSError as exc:
        msg, code = _oserror_text(exc), 1
    except MemoryError:
        msg, code = "not enough memory (the whole file is held in memory as 32-bit float)", 1
    except KeyboardInterrupt as exc:  # an Interrupted (realtime.interrupts) carries SIGTERM/SIGHUP's number
        msg, code = "interrupted", 128 + int(getattr(exc, "signum", 2))
    print(f"{PROG}: error: {_one_line(msg)}", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
