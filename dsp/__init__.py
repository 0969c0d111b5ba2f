"""mixpilot DSP: the parameter table, Numba kernels and processor objects.

Numba's on-disk cache (``cache=True``) is keyed by each function's own source
file, not by the jitted functions it calls, so a kernel cached before an edit
of one of its callees could be reused stale.  We therefore key the cache
directory by a hash of every source file in this package: any change to the
DSP code gives a fresh cache, and unchanged code reuses it (fast start-up,
no compile in the first audio callback).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def _source_hash() -> str:
    h = hashlib.sha1()
    for p in sorted(Path(__file__).parent.glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _configure_numba_cache() -> None:
    import numba

    base = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "mixpilot", "numba"
    )
    numba.config.CACHE_DIR = os.path.join(base, _source_hash())


_configure_numba_cache()
