"""What the platform gives the audio process: real-time priority, locked memory, a quiet collector.

Why (measured, issue 16)
------------------------
On the 2-core VM the project is developed on (load average ~10 from other
work), PortAudio's JACK client thread -- where the audio callback runs --
is ``SCHED_FIFO`` priority 5 (libjack gives it the server's priority minus
5; jackd's dummy driver runs at 10), but every other thread of the process
(main thread, meter UI, recorder, MIDI service, AI worker) was ``SCHED_OTHER``
(``ps -eLo tid,cls,rtprio,comm`` during ``mixpilot play``).  The callback
needs the GIL for its few Python statements.  When one of those ordinary
threads holds the GIL and the kernel preempts it for another process, the
real-time callback waits for a thread that is not running: a priority
inversion through the GIL.  ``sys.setswitchinterval`` cannot help (the
holder is not running, so it never reaches its switch point).  The demo's
callback *start* intervals had a maximum of 59.8 ms (20 periods) on that
machine, its callback durations up to 6.8 ms; 28 xruns in 30 s.

The cures here:

* :func:`boost_threads`: every Python thread of the audio process that can
  hold the GIL runs ``SCHED_FIFO`` at priority 1, below the callback (and
  JACK), above every ordinary process: a GIL holder is then never
  preempted by other work, so it reaches its switch point (0.5 ms, see
  :mod:`realtime.stream`) and hands the GIL over.  These threads are short
  by design (they sleep in C between wake-ups), so they cannot starve the
  machine; the kernel's RT throttling (95 %) is the backstop.
* :func:`boost_callback_thread`: where the callback thread is not
  real-time already (PortAudio's ALSA host API without permission, a JACK
  server without ``-R``), make it ``SCHED_FIFO``.
* :func:`lock_memory`: ``mlockall(MCL_CURRENT | MCL_FUTURE)``, so that no
  page of the process is ever swapped out or faulted in lazily inside the
  callback; done only where it cannot fail later (root / ``CAP_IPC_LOCK``
  or an unlimited ``RLIMIT_MEMLOCK``): with a finite limit ``MCL_FUTURE``
  would make later allocations fail.
* :class:`CpuWakeLatency`: a PM QoS request of 0 µs CPU wake-up latency
  (``/dev/cpu_dma_latency``), held while the stream runs.  Between two
  callbacks an idle CPU enters an idle state (here, a VM: the guest's
  ``haltpoll`` cpuidle halts the vCPU, which leaves it to the host); waking
  from it costs time at every callback's start and leaves the caches cold.
  The request is what low-latency audio setups use (tuned's
  latency-performance profile, dmald): writing 0 and keeping the file open
  keeps the CPUs in their polling state; closing it ends the request.  Root,
  or a udev rule giving the ``audio`` group the device, is needed.
  Measured (``python -m mixpilot.benchmarks.wake_latency``, 2026-12-03, the
  2-core VM with one niced process busy beside it, load 1.3-2; two runs of 8
  interleaved rounds): :meth:`Engine.process_block` at 48 kHz / 128 frames
  takes 38-47 µs p50 back to back but 123-139 µs once per period after a
  sleep (the ten-minute soak's callback p50 was 169 µs: the callback pays
  this cold cost); with the request held 107-114 µs (p99.9 1078-919 ->
  606-560 µs), and the sleep's lateness p50 108-116 -> 86-90 µs, p99
  1178-1283 -> 339-830 µs.  It removes a fifth of the cold cost, not the
  rest (caches shared with other work).  The 60 s soaks beside it were
  noise-bound (xruns 17 and 46 held, 119 and 22 not; bare 19/8, 12/68).
* :func:`pretouch`: write every page of the buffers the callback fills
  (numpy's ``zeros`` are lazily mapped: the first write of each page would
  be a page fault inside the callback).
* :class:`QuietCollector`: ``gc.freeze()`` after start-up (every object
  made so far leaves the collector's generations, so a collection has
  nothing old to walk) and ``gc.disable()`` for the run: an automatic
  collection is triggered by an allocation in *any* thread, and it runs in
  the thread that allocated -- possibly the callback, or a thread holding
  the GIL the callback waits for.  Garbage without cycles is freed by
  reference counting as always; :meth:`QuietCollector.collect_young` is
  called from the main thread's wait loop (outside the callback) for the
  rest.

Each function returns what it did or why it could not, for the one-line
start message (:meth:`RtReport.line`).

Measured effect (issue 16; 2-core VM shared with other work, load average
6-14, JACK dummy server, everything side by side in one session)
----------------------------------------------------------------------------
``python -m mixpilot.benchmarks.soak --seconds 30`` (AI every 0.25 s, 200
CC/s from another process, meter UI; then the bare callback, which only
zero-fills, on a fresh server with the same settings), twice each:

=============================  =================  ==================  ====================
configuration                  xruns (bare)       callback max ms     start interval max ms
=============================  =================  ==================  ====================
main: AI thread, no rtsys      86 (31), 77 (27)   107.5, 29.6         113.3, 68.3
AI process + rtsys             40 (38), 77 (37)   14.2, 7.9           42.2, 42.0
=============================  =================  ==================  ====================

``make demo``'s run (30 s of Vibe_Ace at 44.1 kHz, AI every 0.5 s, meters,
``--record``), three rounds of new / main-equivalent (``ai_process=False,
realtime_sys=False``) / bare: xruns 24 / 31 / 13, 26 / 29 / 18, 32 / 65 /
38; callback max 0.8 / 4.6, 11.4 / 6.7, 3.8 / 5.0 ms.  On this machine the
bare callback itself loses about one period a second (other processes'
JACK servers and clients run at the same real-time priorities on the two
cores, and the VM's vCPUs are not always there): the floor is what
JACK/PortAudio allow, and the mechanisms here bring mixpilot to it, not
below it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import resource
import struct
import threading
import time

import numpy as np

__all__ = [
    "HELPER_PRIORITY",
    "RtReport",
    "CpuWakeLatency",
    "boost_threads",
    "boost_callback_thread",
    "lock_memory",
    "pretouch",
    "QuietCollector",
    "thread_policy",
]

HELPER_PRIORITY = 1  # SCHED_FIFO priority of the audio process's helper threads (below the callback)
CALLBACK_PRIORITY = 70  # used only when the callback thread was not real-time already (PortAudio/ALSA)
_MCL_CURRENT, _MCL_FUTURE = 1, 2
_PAGE = 4096
# a process or thread started by a boosted thread starts as SCHED_OTHER (the AI process, a MIDI flood, ...)
_RESET_ON_FORK = getattr(os, "SCHED_RESET_ON_FORK", 0)


class RtReport:
    """What :mod:`realtime.rtsys` could do for this run (for the start message and ``--stats-json``)."""

    def __init__(self) -> None:
        self.memory_locked: bool = False
        self.memory_note: str = ""
        self.callback_policy: str = "unknown"
        self.helpers_boosted: int = 0
        self.helpers_note: str = ""
        self.gc_frozen: int = 0
        self.cpu_awake: bool = False
        self.cpu_note: str = ""

    def line(self) -> str:
        parts = [f"callback thread {self.callback_policy}"]
        if self.helpers_note:
            parts.append(self.helpers_note)
        else:
            parts.append(f"{self.helpers_boosted} helper threads SCHED_FIFO {HELPER_PRIORITY}")
        parts.append("memory locked" if self.memory_locked else f"memory NOT locked ({self.memory_note})")
        parts.append(f"collector frozen ({self.gc_frozen} objects) and off in the stream")
        awake = "CPUs kept out of idle states" if self.cpu_awake else f"CPU idle states NOT held off ({self.cpu_note})"
        parts.append(awake)
        return "real time: " + ", ".join(parts)

    def as_dict(self) -> dict:
        return {
            "callback_policy": self.callback_policy,
            "helpers_boosted": self.helpers_boosted,
            "helpers_note": self.helpers_note or None,
            "memory_locked": self.memory_locked,
            "memory_note": self.memory_note or None,
            "gc_frozen": self.gc_frozen,
            "cpu_awake": self.cpu_awake,
            "cpu_note": self.cpu_note or None,
        }


def thread_policy(tid: int) -> tuple[int, int]:
    """(policy, priority) of thread ``tid`` (a native id); (-1, 0) when it cannot be read."""
    try:
        return os.sched_getscheduler(tid) & ~_RESET_ON_FORK, os.sched_getparam(tid).sched_priority
    except OSError:
        return -1, 0


def _policy_name(policy: int, prio: int) -> str:
    names = {os.SCHED_OTHER: "SCHED_OTHER", os.SCHED_FIFO: "SCHED_FIFO", os.SCHED_RR: "SCHED_RR"}
    name = names.get(policy, f"policy {policy}")
    return f"{name} {prio}" if policy in (os.SCHED_FIFO, os.SCHED_RR) else name


def _set_fifo(tid: int, prio: int) -> str | None:
    """None when thread ``tid`` is now SCHED_FIFO ``prio``, else why not."""
    try:
        os.sched_setscheduler(tid, os.SCHED_FIFO | _RESET_ON_FORK, os.sched_param(prio))
        return None
    except PermissionError:
        soft = resource.getrlimit(resource.RLIMIT_RTPRIO)[0]
        return f"real-time priority not permitted (RLIMIT_RTPRIO {soft}; add the user to the 'audio' group)"
    except OSError as exc:
        return f"real-time priority failed ({exc.strerror})"


def boost_threads(exclude: tuple[int, ...] = (), priority: int = HELPER_PRIORITY) -> tuple[int, str]:
    """Every live Python thread of this process that is SCHED_OTHER -> SCHED_FIFO ``priority``.

    ``exclude``: native ids to leave alone (the callback thread).  Returns
    (threads changed, "" or the reason one could not be changed).
    """
    done = 0
    why = ""
    for t in threading.enumerate():
        tid = getattr(t, "native_id", None)
        if tid is None or tid in exclude or not t.is_alive():
            continue
        policy, _ = thread_policy(tid)
        if policy != os.SCHED_OTHER:
            continue
        err = _set_fifo(tid, priority)
        if err is None:
            done += 1
        else:
            why = err
            break
    return done, why


def unboost_threads(tids: list[int]) -> None:
    """Back to SCHED_OTHER (after the stream; threads that ended are skipped)."""
    for tid in tids:
        try:
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
        except OSError:
            pass


def boost_callback_thread(tid: int, priority: int = CALLBACK_PRIORITY) -> str:
    """The callback thread's policy after making it real-time if it was not (a readable name)."""
    policy, prio = thread_policy(tid)
    if policy == os.SCHED_OTHER:
        err = _set_fifo(tid, priority)
        if err is not None:
            return f"SCHED_OTHER ({err})"
        policy, prio = thread_policy(tid)
    if policy < 0:
        return "unknown (the thread cannot be inspected)"
    return _policy_name(policy, prio)


def lock_memory() -> tuple[bool, str]:
    """``mlockall(MCL_CURRENT | MCL_FUTURE)`` where it cannot make later allocations fail; (done, why not)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if os.geteuid() != 0 and soft != resource.RLIM_INFINITY:
        return False, f"RLIMIT_MEMLOCK is {soft // 1024} KiB; 'memlock unlimited' for the 'audio' group allows it"
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        return False, f"no libc ({exc})"
    if libc.mlockall(_MCL_CURRENT | _MCL_FUTURE) != 0:
        err = ctypes.get_errno()
        return False, f"mlockall failed ({os.strerror(err)})"
    return True, ""


def unlock_memory() -> None:
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        ctypes.CDLL(name).munlockall()
    except OSError:
        pass


class CpuWakeLatency:
    """A PM QoS request for 0 µs CPU wake-up latency, held from :meth:`hold` to :meth:`release` (module docstring).

    The kernel's interface (Documentation/power/pm_qos_interface.rst): open ``/dev/cpu_dma_latency``,
    write the latency in µs as a native 32-bit integer, keep the file open; reading it returns the
    value in force for the whole system (the smallest request held).
    """

    PATH = "/dev/cpu_dma_latency"

    def __init__(self, path: str | None = None) -> None:
        self.path = path or self.PATH
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def hold(self) -> tuple[bool, str]:
        """Request 0 µs; (done, why not).  The descriptor is not inherited by child processes."""
        if self._fd is not None:
            return True, ""
        try:
            fd = os.open(self.path, os.O_WRONLY)
        except FileNotFoundError:
            return False, f"no {self.path}"
        except PermissionError:
            return False, f"{self.path} is not writable: root, or a udev rule for the 'audio' group"
        except OSError as exc:
            return False, f"{self.path}: {exc.strerror}"
        try:
            os.write(fd, struct.pack("=i", 0))
        except OSError as exc:
            os.close(fd)
            return False, f"{self.path}: {exc.strerror}"
        self._fd = fd
        return True, ""

    def release(self) -> None:
        """End the request (closing the file is what ends it); idempotent."""
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def current_us(self) -> int | None:
        """The wake-up latency in force for the system (µs), or None when it cannot be read."""
        try:
            with open(self.path, "rb") as f:
                raw = f.read(4)
        except OSError:
            return None
        return struct.unpack("=i", raw)[0] if len(raw) == 4 else None


def pretouch(*arrays: np.ndarray) -> int:
    """Write one element in every page of each array (in place, keeping its values); returns bytes touched.

    A page that was never written is mapped on its first write -- a page fault, and with it a
    possible wait in the kernel, inside the callback.  Values are read and written back.
    """
    total = 0
    for a in arrays:
        if a is None or a.size == 0 or not a.flags.writeable:
            continue
        flat = a.reshape(-1) if a.flags.c_contiguous else None
        if flat is None:
            a[...] = a  # not contiguous: a full copy onto itself touches it all
        else:
            step = max(1, _PAGE // a.itemsize)
            flat[::step] = flat[::step]
            flat[-1:] = flat[-1:]
        total += a.nbytes
    return total


class QuietCollector:
    """``gc.freeze()`` + ``gc.disable()`` for a stream; young collections only where we choose.

    ``start()`` after everything is loaded and warmed; ``stop()`` restores the collector as it
    was.  ``collect_young()`` (generation 0; microseconds with the heap frozen) is for the main
    thread's wait loop, at most every ``every_s`` seconds.  :attr:`max_young_us` records the
    longest one (``--stats-json``).
    """

    def __init__(self, every_s: float = 1.0) -> None:
        self.every_s = float(every_s)
        self._was_enabled = gc.isenabled()
        self._next = 0.0
        self.frozen = 0
        self.collections = 0
        self.max_young_us = 0.0
        self.active = False

    def start(self) -> int:
        gc.collect()  # what start-up left behind, before freezing it
        gc.freeze()
        self.frozen = gc.get_freeze_count()
        self._was_enabled = gc.isenabled()
        gc.disable()
        self.active = True
        self._next = time.monotonic() + self.every_s
        return self.frozen

    def collect_young(self) -> None:
        if not self.active:
            return
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.every_s
        t0 = time.perf_counter_ns()
        gc.collect(0)
        us = (time.perf_counter_ns() - t0) / 1000.0
        self.collections += 1
        if us > self.max_young_us:
            self.max_young_us = us

    def stop(self) -> None:
        if not self.active:
            return
        self.active = False
        gc.unfreeze()
        if self._was_enabled:
            gc.enable()

    def as_dict(self) -> dict:
        return {
            "frozen_objects": self.frozen,
            "young_collections": self.collections,
            "max_young_collection_us": round(self.max_young_us, 1),
        }
