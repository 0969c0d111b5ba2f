"""File helpers every layer may use: atomic writes with the usual permissions.

Neutral ground (it imports nothing of mixpilot's), so ``training`` and
``benchmarks`` write their JSON and READMEs without importing ``realtime``.
A file is written to a temporary file beside its target (same file system)
and moved onto it with ``os.replace``, so a reader sees the old file or all
of the new one, never half; the temporary is removed on any failure,
KeyboardInterrupt included.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

__all__ = [
    "disk_full",
    "new_file_mode",
    "replace_atomically",
    "umask",
    "write_bytes_atomic",
    "write_failure",
    "write_text_atomic",
]

#: a file system with less free space than this, for an unprivileged writer, is full for a writer that failed
FULL_BYTES = 1 << 16


def umask() -> int:
    """The process's umask (read without changing it for longer than one call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode(path: str) -> int:
    """Permissions for a file about to replace ``path``: the old file's, else ``0o666 & ~umask``."""
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~umask()


def disk_full(path: str) -> bool:
    """Whether the file system holding ``path`` (a file or its folder) has run out of space (< :data:`FULL_BYTES`)."""
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < FULL_BYTES


def write_failure(path: str, reason: str) -> str:
    """The reason a write of ``path`` failed, for a user: ``reason`` (a library's words), or "no space left
    on the device" when the file system is full -- libsndfile reports a full disk as "System error.".

    Call it while the partial file still exists (before it is removed), so the full disk is seen.
    """
    if disk_full(path):
        return "no space left on the device"  # whatever the library said (libsndfile: "System error.")
    return " ".join(str(reason).split())


def replace_atomically(path: str, write_tmp: Callable[[str], None]) -> None:
    """Call ``write_tmp(tmp_path)`` on a fresh temp file beside ``path``, then move it onto ``path``.

    The temp file (``.<name>.tmp-<random>``) is removed on any failure,
    KeyboardInterrupt included.
    """
    folder, name = os.path.split(path)
    mode = new_file_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.tmp-", dir=folder)
    try:
        os.close(fd)
        write_tmp(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename in (None, tmp):
            # "[Errno 28] No space left on device" names no file: name the one the user asked for
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), path) from None
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8, LF line ends) to ``path`` atomically.

    The text is flushed to disk (``fsync``) before the rename, so after a crash
    ``path`` holds either the old text or all of the new.
    """

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    replace_atomically(os.path.abspath(os.fspath(path)), write)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably, like :func:`write_text_atomic` (a chart, ...)."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    replace_atomically(os.path.abspath(os.fspath(path)), write)
