"""A batch on a Ray cluster: ``mixpilot render IN... --out-dir OUT --cluster ray://HOST:PORT|auto|local``.

Ray is an optional extra: ``pip install 'mixpilot-engine[cluster]'`` (and
mixpilot-engine installed on every node, the same version).  Each file is
one Ray task running :func:`realtime.batch.render_job` -- the very function
the local process pool runs, with the same :class:`realtime.batch.BatchOptions`
-- so a file rendered on the cluster is bit-identical to the local render
(``tests/realtime/test_cluster.py`` checks it on a real local Ray instance).

Where the audio goes:

- default (**object store**): the driver reads each input and puts its bytes
  in Ray's object store; the task writes them to a temporary folder on its
  node, renders into a temporary output there, and returns the output's
  bytes; the driver writes them to ``OUT`` atomically.  Works whatever the
  nodes can see.
- ``--shared-fs``: inputs and ``OUT`` are on storage every node mounts at the
  same path (NFS, a cluster file system); tasks read and write there
  directly (atomically, like the local pool), and no audio crosses the object store.

Addresses: ``ray://HOST:PORT`` (a Ray client server), ``auto`` (the cluster
that ``ray start`` runs on this machine), ``local`` (start a Ray instance
here, on this machine's cores).  When Ray is already initialised in this
process (a script that called ``ray.init``), that connection is used as it is.

Failures: a task whose worker process or node dies is retried once by Ray
(``max_retries=1``); a file whose render fails for another reason than its
input (see :mod:`realtime.batch`) is submitted once more by the driver; an
input that is not usable audio fails once.  Every failure is in the summary
with its attempts.  Progress counts finished files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from mixpilot.dsp.errors import UsageError

from .batch import MAX_ATTEMPTS, BatchOptions, BatchProgress, Job, JobResult, render_job

__all__ = ["ClusterError", "check_address", "import_ray", "run_ray"]

_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # as the CLI sets for itself


class ClusterError(UsageError):
    """Ray missing, or a cluster address that does not answer; exit code 2."""


def import_ray():
    """``ray``, or a one-line :class:`ClusterError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ClusterError("--cluster needs Ray: pip install 'mixpilot-engine[cluster]'") from None
    return ray


def check_address(address: str) -> Any:
    """Check ``--cluster`` before anything runs: its form, and that Ray is installed; returns ``ray``."""
    if not (address in ("auto", "local") or (address.startswith("ray://") and len(address) > 6)):
        raise ClusterError(f"--cluster {address}: give ray://HOST:PORT, auto (a 'ray start' cluster) or local")
    return import_ray()


def _connect(ray: Any, address: str) -> bool:
    """Connect (or start, for ``local``); returns whether this call initialised Ray (and must shut it down)."""
    if ray.is_initialized():
        return False
    kw = {"include_dashboard": False, "log_to_driver": False, "logging_level": "WARNING"}
    try:
        if address == "local":
            ray.init(runtime_env={"env_vars": _ENV}, **kw)
        else:
            ray.init(address=address, runtime_env={"env_vars": _ENV}, **kw)
    except Exception as exc:  # ConnectionError, RuntimeError ... from ray.init
        raise ClusterError(f"--cluster {address}: cannot connect ({' '.join(str(exc).split())[:300]})") from None
    return True


def _task(job: Job, options: BatchOptions, data: bytes | None) -> tuple[JobResult, bytes | None]:
    """One file on a Ray worker: render from shared paths, or from bytes into bytes."""
    if data is None:  # shared file system: the paths are valid here
        os.makedirs(os.path.dirname(os.path.abspath(job.output)), exist_ok=True)
        return render_job(job, options), None
    tmp = tempfile.mkdtemp(prefix="mixpilot-ray-")
    try:
        src = os.path.join(tmp, "in" + os.path.splitext(job.input)[1])
        dst = os.path.join(tmp, "out" + os.path.splitext(job.output)[1])
        with open(src, "wb") as f:
            f.write(data)
        res = render_job(job, options, output=dst, input_path=src)
        if res.status != "rendered":
            return res, None
        with open(dst, "rb") as f:
            return res, f.read()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_ray(
    jobs: list[Job],
    options: BatchOptions,
    *,
    address: str,
    bar: BatchProgress | None = None,
    on_result: Callable[[JobResult], None] | None = None,
) -> list[JobResult]:
    """Render the pending ``jobs`` as Ray tasks; results in completion order (see the module docstring)."""
    from mixpilot.fileio import replace_atomically

    ray = check_address(address)
    started = _connect(ray, address)
    remote = ray.remote(max_retries=1)(_task)
    results: list[JobResult] = []
    attempts: dict[int, int] = {}
    refs: dict = {}

    def submit(job: Job) -> None:
        attempts[job.index] = attempts.get(job.index, 0) + 1
        job.attempt = attempts[job.index]
        data = None
        if not options.shared_fs:
            with open(job.input, "rb") as f:
                data = ray.put(f.read())
        refs[remote.remote(job, options, data)] = job

    try:
        for j in jobs:
            if j.status == "pending":
                submit(j)
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            job = refs.pop(ready[0])
            try:
                res, payload = ray.get(ready[0])
            except Exception as exc:  # the task's worker or node died twice (Ray retried it once)
                res, payload = (
                    JobResult(
                        job.index,
                        job.input,
                        job.output,
                        "failed",
                        error=f"the Ray task failed: {' '.join(str(exc).split())[:300]}",
                        duration_s=job.duration_s,
                    ),
                    None,
                )
                attempts[job.index] = max(attempts[job.index], MAX_ATTEMPTS)
            res.attempts = attempts[job.index]
            if res.status == "failed" and res.retryable and attempts[job.index] < MAX_ATTEMPTS:
                submit(job)
                continue
            if payload is not None:

                def write(tmp: str, payload: bytes = payload) -> None:
                    with open(tmp, "wb") as f:
                        f.write(payload)

                replace_atomically(os.path.abspath(job.output), write)
            results.append(res)
            if bar is not None:
                bar.finished(res.index, res.status == "rendered")
            if on_result is not None:
                on_result(res)
    except KeyboardInterrupt:
        for ref in refs:
            try:
                ray.cancel(ref, force=True)
            except Exception:
                pass
        raise
    finally:
        if started:
            ray.shutdown()
    return results
