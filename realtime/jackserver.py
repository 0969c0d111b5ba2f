"""A JACK server with the dummy driver, started and stopped by mixpilot (headless audio and MIDI).

``jackd -n NAME -d dummy -r RATE -p PERIOD`` clocks process callbacks in real
time like a sound card, without one.  mixpilot starts such a server when a
real-time command finds no audio device, and the test suite starts one per
session.  Clients (PortAudio, python-rtmidi's JACK API, JACK-Client) find the
server by ``JACK_DEFAULT_SERVER``, which :meth:`JackServer.start` sets.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import IO

from mixpilot.dsp.errors import DeviceError

from .interrupts import deferred

__all__ = ["JackServer", "JackError", "jackd_path", "server_running", "quiet_stderr"]


@contextlib.contextmanager
def quiet_stderr():
    """Silence file descriptor 2 (libjack prints "Cannot connect to server ..." from C when probing)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded, pytest capture): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class JackError(DeviceError):
    """The JACK server cannot be started; one line."""


def jackd_path() -> str | None:
    return shutil.which("jackd")


def server_running(name: str | None = None, timeout_s: float = 2.0) -> bool:
    """True when the JACK server ``name`` (default: JACK_DEFAULT_SERVER) runs, waiting up to ``timeout_s``.

    Asks ``jack_wait`` (part of jackd2) in a subprocess: libjack in this
    process may already be a client of another server (PortAudio), and one
    process talking to two JACK servers crashes libjack.
    """
    exe = shutil.which("jack_wait")
    if exe is None:
        return False
    name = name or os.environ.get("JACK_DEFAULT_SERVER") or "default"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            p = subprocess.run([exe, "-c", "-s", name], capture_output=True, text=True, timeout=5)
            if p.stdout.strip() == "running":
                return True
        except (OSError, subprocess.SubprocessError):
            return False
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _jackd_running() -> bool:
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() in ("jackd", "jackdbus"):
                        return True
            except OSError:
                continue
    return False


def _clear_stale_shm() -> None:
    """With no JACK server running at all, remove JACK's shared-memory registry left in /dev/shm.

    A server killed at the wrong moment can leave a registry that makes the
    next jackd stall at start-up; jackd recreates it.  Never touched while any
    jackd runs.
    """
    if _jackd_running():
        return
    for path in glob.glob("/dev/shm/jack-shm-registry") + glob.glob("/dev/shm/jack-[0-9]*-[0-9]*"):
        try:
            os.unlink(path)
        except OSError:
            pass
    for path in glob.glob("/dev/shm/jack_db-*"):
        shutil.rmtree(path, ignore_errors=True)


#: JACK2's shm registry (common/shm.h): a header of magic, protocol, type, size, hdr_len, entry_len, then
#: MAX_SERVERS = 8 server slots {pid, name}; locked by the SysV semaphore with key JACK_SEMAPHORE_KEY
_REGISTRY = "/dev/shm/jack-shm-registry"
_REGISTRY_MAGIC = 0x4A41434B  # "JACK"
_REGISTRY_SEM_KEY = 0x282929
_MAX_SERVERS = 8


def reclaim_dead_server_slots(registry: str = _REGISTRY) -> list[str]:
    """Free the registry slots of JACK servers whose process is gone; returns their names.

    A jackd that dies without unregistering (killed, crashed) keeps its slot,
    and JACK reclaims a slot only for a server of the *same name*; with unique
    names (``mixpilot-<pid>-<n>``) every such death costs one of the eight
    slots for good, and the ninth server exits at start-up with status 255 and
    no message (seen: five dead servers' slots on a machine running tests).
    This frees them under JACK's own registry semaphore.  Best effort: any
    surprise in the layout, or no registry, and nothing is touched.
    """
    import ctypes
    import ctypes.util
    import mmap
    import struct

    freed: list[str] = []
    try:
        fd = os.open(registry, os.O_RDWR)
    except OSError:
        return freed
    try:
        with mmap.mmap(fd, 0) as m:
            magic, _proto, _type, _size, hdr_len, _entry_len = struct.unpack_from("<IHxxiiii", m, 0)
            slot = (hdr_len - 24) // _MAX_SERVERS
            if magic != _REGISTRY_MAGIC or hdr_len > len(m) or slot < 8 or (hdr_len - 24) % _MAX_SERVERS:
                return freed
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

            class _SemBuf(ctypes.Structure):
                _fields_ = [("sem_num", ctypes.c_ushort), ("sem_op", ctypes.c_short), ("sem_flg", ctypes.c_short)]

            semid = libc.semget(_REGISTRY_SEM_KEY, 1, 0)
            if semid < 0:
                return freed
            undo = 0x1000  # SEM_UNDO: released by the kernel should we die holding it
            if libc.semop(semid, ctypes.byref(_SemBuf(0, -1, undo)), 1) != 0:
                return freed
            try:
                for i in range(_MAX_SERVERS):
                    off = 24 + i * slot
                    (pid,) = struct.unpack_from("<i", m, off)
                    if pid <= 0:
                        continue
                    try:
                        os.kill(pid, 0)
                        continue  # alive (or not ours to judge)
                    except ProcessLookupError:
                        pass
                    except PermissionError:
                        continue
                    freed.append(bytes(m[off + 4 : off + slot]).split(b"\0")[0].decode(errors="replace"))
                    m[off : off + slot] = b"\0" * slot
            finally:
                libc.semop(semid, ctypes.byref(_SemBuf(0, 1, undo)), 1)
    except (OSError, ValueError, struct.error):
        pass
    finally:
        os.close(fd)
    return freed


class JackServer:
    """``jackd -n NAME -d dummy -r SAMPLE_RATE -p PERIOD``; a context manager.

    Parameters
    ----------
    name : str, optional
        Server name (default ``mixpilot-<pid>-<n>``, unique per process).
    sample_rate : int
        Hz.
    period : int
        Frames per JACK cycle.
    """

    _count = 0

    def __init__(self, name: str | None = None, sample_rate: int = 48000, period: int = 128) -> None:
        JackServer._count += 1
        self.name = name or f"mixpilot-{os.getpid()}-{JackServer._count}"
        self.sample_rate = int(sample_rate)
        self.period = int(period)
        self.proc: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None
        self._old_env: str | None = None
        self._xrun_scan = (0, 0)  # (log bytes scanned up to the last newline, xrun reports in them)

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(self, timeout_s: float = 30.0, attempts: int = 3) -> JackServer:
        """Start the server and wait until a client can connect.

        A jackd that does not come up in ``timeout_s`` is stopped and started
        again (``attempts`` in all): right after another server was killed, a
        new one occasionally stalls at start-up, and on a loaded machine (load
        average 14 on 2 cores, 5 loaded test runs in a row) 15 s and 2 attempts
        were not always enough.
        """
        exe = jackd_path()
        if exe is None:
            raise JackError("jackd is not installed (sudo apt install jackd2)")
        cmd = [exe, "-n", self.name, "-d", "dummy", "-r", str(self.sample_rate), "-p", str(self.period)]
        reclaim_dead_server_slots()  # slots of servers that died unregistered would refuse this one
        for attempt in range(1, attempts + 1):
            self._log = tempfile.TemporaryFile()
            self._xrun_scan = (0, 0)
            try:
                # a signal raised inside Popen after the exec would lose the handle of a running jackd
                with deferred():
                    self.proc = subprocess.Popen(
                        cmd,
                        stdin=subprocess.DEVNULL,
                        stdout=self._log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )  # Ctrl-C in the terminal must not kill it first
                deadline = time.monotonic() + timeout_s
                while not server_running(self.name, timeout_s=0.2):
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        break
                else:
                    self._old_env = os.environ.get("JACK_DEFAULT_SERVER")
                    os.environ["JACK_DEFAULT_SERVER"] = self.name
                    return self
            except BaseException:  # Ctrl-C / SIGTERM while it starts: its own session would outlive us
                self.stop()
                raise
            log = self._log_tail()
            code = self.proc.poll()
            how = f"exited with {code}" if code is not None else f"not ready after {timeout_s:g} s"
            self.stop()
            if attempt == attempts:
                raise JackError(f"jackd -n {self.name} -d dummy did not start: {how} ({log or 'no output'})")
            _clear_stale_shm()
        raise AssertionError("unreachable")

    def log_lines(self) -> list[str]:
        """What jackd printed so far (stdout and stderr), one stripped line each."""
        if self._log is None:
            return []
        # pread: jackd writes through the same open file (the shared offset must not move under it)
        fd = self._log.fileno()
        raw = os.pread(fd, os.fstat(fd).st_size, 0)
        return [ln.strip() for ln in raw.decode(errors="replace").splitlines() if ln.strip()]

    def xrun_reports(self) -> list[str]:
        """jackd's own xrun reports so far: a client that did not finish its cycle
        (``JackEngine::XRun: client = NAME was not finished``) or a late driver cycle
        (``JackTimedDriver::Process XRun``).  JACK drops the MIDI events of such a cycle."""
        return [ln for ln in self.log_lines() if "XRun" in ln]

    def xrun_count(self) -> int:
        """How many xrun reports jackd has logged so far (:meth:`xrun_reports`).

        Incremental: only what jackd wrote since the last call is read (complete lines), so a
        test can afford a call per message it sends.
        """
        if self._log is None:
            return 0
        done, count = self._xrun_scan
        fd = self._log.fileno()
        raw = os.pread(fd, max(0, os.fstat(fd).st_size - done), done)
        end = raw.rfind(b"\n") + 1  # a line jackd is still writing waits for the next call
        if end:
            count += sum(1 for ln in raw[:end].splitlines() if b"XRun" in ln)
            self._xrun_scan = (done + end, count)
        return count

    def _log_tail(self) -> str:
        lines = self.log_lines()
        return lines[-1] if lines else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove what it leaves in /dev/shm."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if os.environ.get("JACK_DEFAULT_SERVER") == self.name:
            if self._old_env is None:
                os.environ.pop("JACK_DEFAULT_SERVER", None)
            else:
                os.environ["JACK_DEFAULT_SERVER"] = self._old_env
        # a killed jackd leaves its registry slot, its named segments and its semaphores behind
        reclaim_dead_server_slots()
        for path in glob.glob(f"/dev/shm/jack_{self.name}_*") + glob.glob(f"/dev/shm/jack_sem.*_{self.name}_*"):
            try:
                os.unlink(path)
            except OSError:
                pass

    def __enter__(self) -> JackServer:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
