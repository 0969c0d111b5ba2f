"""mixpilot: a real-time AI mixing and mastering engine.

The repository root is the import package ``mixpilot``: its folders are the
subpackages (``mixpilot.dsp``, ``mixpilot.inference``, ``mixpilot.realtime``,
``mixpilot.training``, ``mixpilot.benchmarks``, ``mixpilot.models_onnx``), so
an installed copy adds exactly one top-level name to ``site-packages``.

Names exported here are the stable Python API (INTERFACE.md); they are
imported lazily so that ``import mixpilot`` stays cheap and never compiles a
kernel.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version
from typing import TYPE_CHECKING, Any

DIST_NAME = "mixpilot-engine"

try:
    __version__ = _dist_version(DIST_NAME)
except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
    __version__ = "0.0.0+unknown"

# public name -> "module:attribute" (resolved on first access, PEP 562)
_EXPORTS = {
    "Engine": "mixpilot.realtime.engine:Engine",
    "MixChain": "mixpilot.dsp.chain:MixChain",
    "MixpilotError": "mixpilot.dsp.errors:MixpilotError",
    "ProcessSpec": "mixpilot.dsp.spec:ProcessSpec",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # pragma: no cover
    from mixpilot.dsp.chain import MixChain as MixChain
    from mixpilot.dsp.errors import MixpilotError as MixpilotError
    from mixpilot.dsp.spec import ProcessSpec as ProcessSpec
    from mixpilot.realtime.engine import Engine as Engine


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'mixpilot' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
