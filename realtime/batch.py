"""Batch mastering: ``mixpilot render IN... | DIR | 'glob' --out-dir OUT``.

1. **Plan** (:func:`plan`): every argument is a file, a folder (searched
   recursively for audio files by extension, :data:`AUDIO_EXTENSIONS`; the
   sub-folders are mirrored under ``OUT``) or a glob (``'music/**/*.flac'``,
   quoted so that mixpilot expands it).  Each input gets
   ``OUT/<relative folder>/<stem>.<--format>``.  Two inputs that would land on
   the same output, or an output that is an input, stop the batch before
   anything runs (a usage error).  An output that exists is **skipped**
   unless ``--overwrite``.  Each input is probed (soundfile) for its duration;
   one that cannot be opened is a failed file already, the rest go on.
2. **Run**: a process pool on the local cores (:func:`run_local`, ``--jobs N``,
   default: every core), or Ray tasks on a cluster (``--cluster``,
   :mod:`realtime.cluster`).  Both run :func:`render_job` with the same
   :class:`BatchOptions`, i.e. :func:`realtime.render.render_file`, so the
   outputs are bit-identical whichever ran them.  A worker loads the model
   once and keeps it for its next files.
3. **Failures**: a file that fails is reported (one line on stderr, its error
   in the summary) and the others go on.  A failure of the input itself (not
   audio, corrupt, too many channels: :class:`realtime.audio_io.AudioFileError`
   and other usage errors) is final; anything else (a worker process that
   died, a full disk, an unexpected exception) is retried once
   (:data:`MAX_ATTEMPTS`), on a fresh worker.
4. **Progress** over the whole batch on stderr: the share of the batch's
   audio seconds rendered, files done/failed, elapsed time and an estimate
   of the time left (:mod:`realtime.progress`: in place on a terminal, a
   line every 5 s in a log).
5. **Summary**: JSON (``docs/schemas/batch.schema.json``) written atomically
   to ``--summary`` (default ``OUT/mixpilot-summary.json``) and, with
   ``--json``, printed on stdout; per file: status, output, loudness in and
   out, true peak in and out, loudness range, seconds, attempts, error.
6. **Exit status** (:func:`exit_code`): 0 every file rendered or skipped;
   :data:`EXIT_PARTIAL` (3) some files failed and the others were delivered;
   1 every file to render failed; 130 interrupted.
7. **Ctrl-C** (SIGINT to the process group, or SIGTERM to mixpilot): the
   workers stop where they are; every output is written to a temporary file
   beside it and moved into place only when complete
   (:func:`mixpilot.fileio.replace_atomically`), and a stopped write removes
   its temporary, so the output folder holds complete files only.  The
   summary is still written (the files not finished say ``"interrupted"``; a
   file whose worker finished it as the stop arrived is complete and says
   ``"rendered"``, with a note that its numbers never came back).
"""

from __future__ import annotations

import glob
import math
import os
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from mixpilot.dsp.errors import InputFileError, MixpilotError, UsageError

from .api import MasterSettings, json_ready
from .interrupts import Interrupted, redeliver_swallowed

if TYPE_CHECKING:
    from mixpilot.inference.worker import Estimator
from typing import TextIO

from .progress import Progress, bar_text

__all__ = [
    "AUDIO_EXTENSIONS",
    "EXIT_PARTIAL",
    "MAX_ATTEMPTS",
    "SUMMARY_NAME",
    "BatchOptions",
    "Job",
    "JobResult",
    "exit_code",
    "expand_inputs",
    "plan",
    "render_job",
    "run_batch",
    "run_local",
    "summary",
]

#: exit status when some files failed and the others were delivered
EXIT_PARTIAL = 3
MAX_ATTEMPTS = 2  # a failure that is not the input's own fault is retried once
SUMMARY_NAME = "mixpilot-summary.json"
#: what a folder is searched for (an explicitly named file is always tried)
AUDIO_EXTENSIONS = (
    ".wav",
    ".wave",
    ".flac",
    ".ogg",
    ".oga",
    ".opus",
    ".mp3",
    ".aif",
    ".aiff",
    ".aifc",
    ".caf",
    ".w64",
    ".rf64",
    ".au",
    ".snd",
)
_GLOB_CHARS = set("*?[")
_PROGRESS_EVERY_S = 0.25  # a worker sends its progress at most this often


class BatchUsageError(UsageError):
    """A batch that cannot start (no inputs, colliding outputs, ...); exit code 2."""


@dataclass(frozen=True)
class BatchOptions:
    """Everything a worker needs to render one file: picklable, the same for every file and every worker."""

    settings: MasterSettings
    bit_depth: str | None = None
    output_rate: int | None = None
    overwrite: bool = False
    shared_fs: bool = False  # Ray: workers read inputs and write outputs themselves (else bytes travel)


@dataclass
class Job:
    """One file of the batch."""

    index: int
    input: str
    output: str
    duration_s: float = 0.0
    status: str = "pending"  # pending, skipped, failed (before running)
    error: str | None = None
    attempt: int = 1  # a retry may replace the output its lost first attempt wrote


@dataclass
class JobResult:
    """What happened to one file (a row of the summary)."""

    index: int
    input: str
    output: str
    status: str  # "rendered", "skipped", "failed", "interrupted"
    error: str | None = None
    attempts: int = 0
    duration_s: float = 0.0
    seconds: float = 0.0
    worker: str | None = None
    input_integrated_lufs: float | None = None
    output_integrated_lufs: float | None = None
    input_true_peak_dbtp: float | None = None
    output_true_peak_dbtp: float | None = None
    output_lra_lu: float | None = None
    target_reached: bool | None = None
    model: str | None = None
    notes: list[str] = field(default_factory=list)
    retryable: bool = False  # internal: a failure worth a second attempt

    def row(self) -> dict:
        d = asdict(self)
        d.pop("retryable")
        return d


# --- planning ------------------------------------------------------------------------------------------


def expand_inputs(paths: Sequence[str]) -> list[tuple[str, str]]:
    """Arguments -> ``[(input path, path relative to its root)]`` in a stable order, duplicates removed.

    A file stands for itself (relative path: its name); a folder for the audio
    files below it (relative to the folder); a glob for its matches (relative
    to the glob's fixed leading folder).
    """
    out: list[tuple[str, str]] = []
    seen: set[str] = set()

    def add(path: str, rel: str) -> None:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            out.append((path, rel))

    for arg in paths:
        arg = os.fspath(arg)
        if os.path.isdir(arg):
            found = []
            for root, dirs, files in os.walk(arg):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in files:
                    if not name.startswith(".") and os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS:
                        found.append(os.path.join(root, name))
            if not found:
                raise BatchUsageError(f"{arg}: no audio files in this folder ({', '.join(AUDIO_EXTENSIONS[:6])}, ...)")
            for p in sorted(found):
                add(p, os.path.relpath(p, arg))
        elif _GLOB_CHARS & set(arg) and not os.path.exists(arg):
            matches = sorted(m for m in glob.glob(arg, recursive=True) if os.path.isfile(m))
            if not matches:
                raise BatchUsageError(f"{arg}: the pattern matches no file")
            base = arg[: min(arg.index(c) for c in _GLOB_CHARS if c in arg)]
            base = base if base.endswith(os.sep) or not base else os.path.dirname(base)
            for m in matches:
                add(m, os.path.relpath(m, base) if base else m)
        else:
            add(arg, os.path.basename(arg))  # missing or unreadable: reported as that file's failure
    return out


def plan(paths: Sequence[str], out_dir: str, fmt: str, *, overwrite: bool) -> list[Job]:
    """The jobs for ``paths`` into ``out_dir`` (see the module docstring); raises :class:`BatchUsageError`."""
    import soundfile as sf

    from .audio_io import OUTPUT_FORMATS

    ext = "." + fmt.lower().lstrip(".")
    if ext not in OUTPUT_FORMATS:
        raise BatchUsageError(f"--format {fmt}: not one of {', '.join(e[1:] for e in OUTPUT_FORMATS)}")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise BatchUsageError(f"--out-dir {out_dir}: exists and is not a folder")
    inputs = expand_inputs(paths)
    if not inputs:
        raise BatchUsageError("no inputs")
    jobs: list[Job] = []
    owners: dict[str, str] = {}
    input_keys = {os.path.realpath(p) for p, _ in inputs}
    for i, (path, rel) in enumerate(inputs):
        out = os.path.join(out_dir, os.path.splitext(os.path.normpath(rel))[0].lstrip(os.sep) + ext)
        key = os.path.realpath(out)
        if key in owners:
            raise BatchUsageError(
                f"{path} and {owners[key]} would both be written to {out}; rename one or render them separately"
            )
        if key in input_keys:
            raise BatchUsageError(
                f"{out}: would overwrite an input; choose another --out-dir (inputs are never touched)"
            )
        owners[key] = path
        job = Job(i, path, out)
        try:
            info = sf.info(path)
            job.duration_s = info.frames / info.samplerate if info.samplerate else 0.0
        except Exception as exc:  # not audio, missing, unreadable: this file fails, the batch goes on
            job.status, job.error = "failed", _input_error(path, exc)
        if job.status == "pending" and os.path.exists(out) and not overwrite:
            job.status = "skipped"
        jobs.append(job)
    return jobs


def _input_error(path: str, exc: BaseException) -> str:
    from .audio_io import probe_audio

    try:
        probe_audio(path)  # its one-line message names the problem
    except MixpilotError as e:
        return str(e)
    except Exception:  # pragma: no cover - probe_audio turns everything into AudioFileError
        pass
    return f"{path}: {' '.join(str(exc).split())}"


# --- one file --------------------------------------------------------------------------------------------

_ESTIMATORS: dict[str, tuple[Estimator | None, list[str]]] = {}  # per worker process: model spec -> loaded estimator


def _estimator(spec: str | None, notes: list[str]) -> Estimator | None:
    from mixpilot.inference.worker import load_estimator

    key = str(spec)
    if key not in _ESTIMATORS:
        warnings: list[str] = []
        _ESTIMATORS[key] = (load_estimator(spec, warnings.append), warnings)
    est, warnings = _ESTIMATORS[key]
    notes.extend(warnings)
    return est


def render_job(
    job: Job,
    options: BatchOptions,
    progress: Callable[[int, float, float], None] | None = None,
    *,
    output: str | None = None,
    input_path: str | None = None,
) -> JobResult:
    """Render one file with :func:`realtime.render.render_file`; never raises except KeyboardInterrupt/SystemExit.

    ``output`` / ``input_path`` replace the job's paths (a Ray worker renders
    into a local temporary file when outputs travel back as bytes).
    """
    from .render import render_file

    t0 = time.perf_counter()
    res = JobResult(job.index, job.input, job.output, "failed", duration_s=job.duration_s, worker=socket.gethostname())
    notes: list[str] = []
    try:
        rep = render_file(
            input_path or job.input,
            output or job.output,
            settings=options.settings,
            bit_depth=options.bit_depth,
            output_rate=options.output_rate,
            overwrite=output is not None or options.overwrite or job.attempt > 1,
            progress=progress,
            estimator=_estimator(options.settings.model, notes),
        )
    except (KeyboardInterrupt, SystemExit):
        raise
    except MixpilotError as exc:
        res.error = " ".join(str(exc).split())
        res.retryable = not isinstance(exc, (UsageError, InputFileError))
    except MemoryError:
        res.error, res.retryable = "not enough memory", True
    except OSError as exc:
        res.error = f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else " ".join(str(exc).split())
        res.retryable = True
    except Exception as exc:  # an unexpected failure of this file only: reported, the batch goes on
        res.error, res.retryable = f"{type(exc).__name__}: {' '.join(str(exc).split())}", True
    else:
        res.status = "rendered"
        res.input_integrated_lufs = rep.input_integrated_lufs
        res.output_integrated_lufs = rep.output_integrated_lufs
        res.input_true_peak_dbtp = rep.input_true_peak_dbtp
        res.output_true_peak_dbtp = rep.output_true_peak_dbtp
        res.output_lra_lu = rep.output_lra_lu
        res.target_reached = rep.target_reached
        res.model = rep.model
        notes += rep.notes
    if res.error and input_path is not None:
        res.error = res.error.replace(input_path, job.input)
    if res.error and output is not None:
        res.error = res.error.replace(output, job.output)
    res.notes = notes
    res.seconds = time.perf_counter() - t0
    return res


# --- the local pool ----------------------------------------------------------------------------------------

_QUEUE: Any = None  # the worker's progress queue (set by _worker_init)
_BUSY = False  # the worker is inside a render (a stop signal must unwind it, removing its temporary)


def _on_stop_signal(signum: int, frame: object) -> None:
    """SIGINT/SIGTERM in a pool worker: unwind a render (its temporary is removed), or leave quietly when idle."""
    if _BUSY:
        raise Interrupted(signum)
    os._exit(128 + signum)


def _worker_init(queue: Any) -> None:
    """Pool worker set-up: the progress queue; Ctrl-C and SIGTERM stop it without a half-written file."""
    global _QUEUE
    _QUEUE = queue
    signal.signal(signal.SIGINT, _on_stop_signal)
    signal.signal(signal.SIGTERM, _on_stop_signal)
    redeliver_swallowed()  # a stop raised inside a __del__ (Numba compiling) is raised again, not printed


def _pool_work(job: Job, options: BatchOptions) -> JobResult:
    global _BUSY
    _BUSY = True
    try:
        return _pool_render(job, options)
    except KeyboardInterrupt:  # the render unwound and removed its temporary: leave without a traceback
        os._exit(130)
    finally:
        _BUSY = False


def _pool_render(job: Job, options: BatchOptions) -> JobResult:
    last = [0.0]

    def progress(pass_no: int, done_s: float, total_s: float) -> None:
        now = time.monotonic()
        if now - last[0] >= _PROGRESS_EVERY_S or done_s >= total_s:
            last[0] = now
            try:
                _QUEUE.put_nowait((job.index, pass_no, done_s, total_s))
            except Exception:  # a full or closed queue only costs a progress update
                pass

    return render_job(job, options, progress if _QUEUE is not None else None)


class BatchProgress:
    """The batch's progress line: audio seconds done over the total, files, failures, time left."""

    def __init__(self, jobs: list[Job], stream: TextIO, tty: bool | None = None) -> None:
        self.total_s = sum(j.duration_s for j in jobs if j.status == "pending") or 1e-9
        self.n = sum(1 for j in jobs if j.status == "pending")
        self.frac: dict[int, float] = {}
        self.done = 0
        self.failed = 0
        self.durations = {j.index: j.duration_s for j in jobs}
        self.t0 = time.monotonic()
        self.out = Progress(stream, tty) if stream is not None else None
        self.lock = threading.Lock()

    def update(self, index: int, pass_no: int, done_s: float, total_s: float) -> None:
        f = min(done_s / total_s, 1.0) if total_s > 0 else 1.0
        with self.lock:  # pass 0 reads (measures) the input; a pass after the first starts over
            if pass_no == 0:  # about a sixth of a streamed render's time (measured on a 10 min file: 3.4 of 19 s)
                f = 0.15 * f
            elif pass_no == 1:
                f = 0.15 + 0.75 * f
            else:  # the last 10 % of the file
                f = 0.9 + 0.1 * f
            self.frac[index] = max(self.frac.get(index, 0.0), min(f, 0.99))
        self.draw()

    def finished(self, index: int, ok: bool) -> None:
        with self.lock:
            self.frac[index] = 1.0
            self.done += 1
            self.failed += 0 if ok else 1
        self.draw(force=self.done == self.n)

    def draw(self, force: bool = False) -> None:
        if self.out is None:
            return
        with self.lock:
            done_s = sum(self.durations[i] * f for i, f in self.frac.items())
            frac = min(done_s / self.total_s, 1.0)
            elapsed = time.monotonic() - self.t0
            left = elapsed * (1 - frac) / frac if frac > 0.01 else math.nan
            fails = f", {self.failed} failed" if self.failed else ""
            line = f"{bar_text(frac)}  {self.done}/{self.n} files{fails}  {_clock(elapsed)} elapsed" + (
                f", ~{_clock(left)} left" if math.isfinite(left) and frac < 1 else ""
            )
            self.out.show((int(frac * 100), self.done, self.failed), line, done=force)

    def finish(self) -> None:
        if self.out is not None:
            self.out.finish()


def _clock(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def run_local(
    jobs: list[Job],
    options: BatchOptions,
    *,
    workers: int,
    bar: BatchProgress | None = None,
    on_result: Callable[[JobResult], None] | None = None,
) -> list[JobResult]:
    """Render the pending ``jobs`` on a pool of ``workers`` processes; results in completion order.

    A worker process that dies (signal, crash) breaks the pool: the files it
    had not returned are retried on a fresh pool (one retry each, like every
    retryable failure).
    """
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = mp.get_context("spawn")  # no fork: the parent may hold threads (progress) and BLAS state
    queue = ctx.Queue()
    pending = [j for j in jobs if j.status == "pending"]
    attempts = {j.index: 0 for j in pending}
    results: list[JobResult] = []
    stop = threading.Event()

    def pump() -> None:
        while not stop.is_set():
            try:
                item = queue.get(timeout=0.1)
            except Exception:
                continue
            if bar is not None:
                bar.update(*item)

    reader = threading.Thread(target=pump, name="mixpilot-batch-progress", daemon=True)
    reader.start()
    todo = list(pending)
    by_index = {j.index: j for j in pending}

    def settle(res: JobResult) -> None:
        results.append(res)
        if bar is not None:
            bar.finished(res.index, res.status == "rendered")
        if on_result is not None:
            on_result(res)

    try:
        while todo:
            pool = ProcessPoolExecutor(
                max_workers=max(1, min(workers, len(todo))),
                mp_context=ctx,
                initializer=_worker_init,
                initargs=(queue,),
            )
            futures = {}
            try:
                for j in todo:
                    attempts[j.index] += 1
                    j.attempt = attempts[j.index]
                    futures[pool.submit(_pool_work, j, options)] = j.index
                todo = []
                not_done = set(futures)
                while not_done:
                    finished, not_done = wait(not_done, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        idx = futures[fut]
                        try:
                            res = fut.result()
                        except BrokenProcessPool:
                            res = JobResult(
                                idx,
                                by_index[idx].input,
                                by_index[idx].output,
                                "failed",
                                error="the worker process died while rendering it",
                                duration_s=by_index[idx].duration_s,
                                retryable=True,
                            )
                        except KeyboardInterrupt:
                            raise
                        res.attempts = attempts[idx]
                        if res.status == "failed" and res.retryable and attempts[idx] < MAX_ATTEMPTS:
                            todo.append(by_index[idx])
                        else:
                            settle(res)
            finally:
                _shutdown(pool)
    finally:
        stop.set()
        reader.join(1.0)
        queue.close()
        queue.join_thread()
    return results


def _shutdown(pool: Any) -> None:
    """Stop a pool now: cancel what has not started, SIGTERM the workers (they remove their temporaries), wait."""
    procs = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            try:
                os.kill(p.pid, signal.SIGTERM)
            except OSError:
                pass
    for p in procs:
        p.join(10.0)
        if p.is_alive():  # pragma: no cover - a worker stuck in C code
            p.kill()
            p.join(1.0)


# --- the whole batch ------------------------------------------------------------------------------------------


def exit_code(results: list[JobResult]) -> int:
    """0 all rendered or skipped; :data:`EXIT_PARTIAL` some failed; 1 all that were to render failed."""
    failed = sum(1 for r in results if r.status == "failed")
    if not failed:
        return 0
    delivered = sum(1 for r in results if r.status in ("rendered", "skipped"))
    return EXIT_PARTIAL if delivered else 1


def summary(
    results: list[JobResult], options: BatchOptions, *, out_dir: str, seconds: float, status: str, cluster: str | None
) -> dict:
    """The batch summary (``docs/schemas/batch.schema.json``)."""
    from mixpilot import __version__

    rows = sorted(results, key=lambda r: r.index)
    counts = {k: sum(1 for r in rows if r.status == k) for k in ("rendered", "skipped", "failed", "interrupted")}
    s = options.settings
    c = s.checked()
    return {
        "mixpilot": __version__,
        "status": status,
        "exit_code": {"ok": 0, "partial": EXIT_PARTIAL, "failed": 1, "interrupted": 130}[status],
        "out_dir": out_dir,
        "runner": cluster or "local",
        "seconds": round(seconds, 3),
        "files": len(rows),
        "counts": counts,
        "settings": {
            "target_lufs": c.target_lufs,
            "ceiling_dbtp": c.ceiling_dbtp,
            "model": s.model,
            "ai_amount": s.ai_amount,
            "amounts": dict(s.amounts or {}),
            "params": dict(s.params or {}),
            "loudness_mode": s.loudness_mode,
            "bit_depth": options.bit_depth,
            "output_rate": options.output_rate,
        },
        "results": [r.row() for r in rows],
    }


def run_batch(
    paths: Sequence[str],
    out_dir: str,
    options: BatchOptions,
    *,
    fmt: str = "wav",
    workers: int | None = None,
    cluster: str | None = None,
    summary_path: str | None = None,
    progress_stream: TextIO | None = sys.stderr,
    note: Callable[[str], None] = lambda text: None,
) -> tuple[int, dict]:
    """Plan, run (local pool or Ray), write the summary; returns ``(exit status, summary dict)``.

    Raises :class:`BatchUsageError` (and the settings' usage errors) before
    anything runs; after that only KeyboardInterrupt is caught (the summary
    is written, status ``"interrupted"``, exit 130).
    """
    from mixpilot.fileio import write_text_atomic

    options.settings.checked()  # every setting is checked once, before any worker starts
    if cluster:
        from .cluster import check_address

        check_address(cluster)
    from .encode import Delivery

    Delivery.for_path(os.path.join(out_dir, "x." + fmt.lower().lstrip(".")), options.bit_depth, options.output_rate)
    jobs = plan(paths, out_dir, fmt, overwrite=options.overwrite)
    summary_path = summary_path or os.path.join(out_dir, SUMMARY_NAME)
    if os.path.realpath(summary_path) in {os.path.realpath(j.input) for j in jobs}:
        raise BatchUsageError(f"--summary {summary_path}: is an input")
    for j in jobs:
        os.makedirs(os.path.dirname(os.path.abspath(j.output)), exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(summary_path)), exist_ok=True)
    results: list[JobResult] = []
    for j in jobs:
        if j.status != "pending":
            r = JobResult(j.index, j.input, j.output, j.status, error=j.error, duration_s=j.duration_s)
            results.append(r)
            if r.status == "failed":
                note(f"warning: failed: {r.error}")
    n_run = sum(1 for j in jobs if j.status == "pending")
    skipped = sum(1 for j in jobs if j.status == "skipped")
    if skipped:
        note(f"{skipped} output{'s' if skipped != 1 else ''} exist already and are skipped (--overwrite replaces them)")
    bar = BatchProgress(jobs, progress_stream) if progress_stream is not None and n_run else None

    def report(res: JobResult) -> None:
        results.append(res)  # as each file settles: an interruption keeps what was finished
        if res.status == "failed":
            note(f"warning: failed: {res.error}" + (f" (after {res.attempts} attempts)" if res.attempts > 1 else ""))

    t0 = time.perf_counter()
    started_ns = time.time_ns()
    status = None
    old_term = None
    old_hook = None
    if threading.current_thread() is threading.main_thread():  # SIGTERM stops the batch like Ctrl-C
        old_term = signal.signal(signal.SIGTERM, signal.default_int_handler)
        old_hook = redeliver_swallowed()
    try:
        if n_run:
            if cluster:
                from .cluster import run_ray

                run_ray(jobs, options, address=cluster, bar=bar, on_result=report)
            else:
                run_local(jobs, options, workers=workers or os.cpu_count() or 1, bar=bar, on_result=report)
    except KeyboardInterrupt:
        status = "interrupted"
        _sweep_temporaries(jobs)
        done = {r.index for r in results}
        for j in jobs:
            if j.index in done:
                continue
            if _finished_during(j.output, started_ns):
                # the worker renamed its output into place, but the stop came before its result did:
                # the file is complete (outputs are renamed only when whole), its numbers never arrived
                note_ = "finished as the batch was interrupted: not measured"
                results.append(
                    JobResult(j.index, j.input, j.output, "rendered", duration_s=j.duration_s, notes=[note_])
                )
            else:
                results.append(JobResult(j.index, j.input, j.output, "interrupted", duration_s=j.duration_s))
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        if old_hook is not None:
            sys.unraisablehook = old_hook
        if bar is not None:
            bar.finish()
    if status != "interrupted":
        _sweep_temporaries(jobs)  # a worker killed mid-render leaves its scratch folder (its retry has its own)
    code = 130 if status == "interrupted" else exit_code(results)
    status = status or {0: "ok", EXIT_PARTIAL: "partial", 1: "failed"}[code]
    data = summary(results, options, out_dir=out_dir, seconds=time.perf_counter() - t0, status=status, cluster=cluster)
    import json

    write_text_atomic(summary_path, json.dumps(json_ready(data), indent=1) + "\n")
    return code, data


def _finished_during(path: str, started_ns: int) -> bool:
    """An output that exists and was (re)written since ``started_ns`` (wall clock): this run finished it."""
    try:
        return os.stat(path).st_mtime_ns >= started_ns
    except OSError:
        return False


def _sweep_temporaries(jobs: list[Job]) -> None:
    """Remove ``.NAME.tmp-*`` files (and a streamed render's scratch folder ``.NAME.tmp-scratch-*``) a
    killed worker could not remove itself (never a finished output)."""
    for j in jobs:
        folder, name = os.path.split(os.path.abspath(j.output))
        for tmp in glob.glob(os.path.join(glob.escape(folder), glob.escape(f".{name}.tmp-") + "*")):
            try:
                if os.path.isdir(tmp) and not os.path.islink(tmp):
                    shutil.rmtree(tmp, ignore_errors=True)
                else:
                    os.unlink(tmp)
            except OSError:
                pass
