"""mixpilot: a real-time AI mixing and mastering engine.

The repository root is the import package ``mixpilot``: its folders are the
subpackages (``mixpilot.dsp``, ``mixpilot.inference``, ``mixpilot.realtime``,
``mixpilot.training``, ``mixpilot.benchmarks``, ``mixpilot.models_onnx``), so
an installed copy adds exactly one top-level name to ``site-packages``.

Names exported here are the stable Python API (docs/INTERFACE.md); they are
imported lazily so that ``import mixpilot`` stays cheap and never compiles a
kernel::

    import mixpilot, soundfile as sf
    x, sr = sf.read("song.wav", dtype="float32")
    y, report = mixpilot.master(x, sr, target_lufs=-14, ceiling_dbtp=-1)   # the AI, the whole chain
    print(report.output_integrated_lufs, report.output_true_peak_dbtp)
    info = mixpilot.analyze("song.wav")                                    # what `mixpilot analyze` prints
    engine = mixpilot.Engine(sr, 2)                                        # block by block, your own stream
    out = engine.process(block)                                            # the AI, the chain, the follower
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
    "master": "mixpilot.realtime.api:master",
    "analyze": "mixpilot.realtime.api:analyze",
    "MasterReport": "mixpilot.realtime.api:MasterReport",
    "MasterSettings": "mixpilot.realtime.api:MasterSettings",
    "Engine": "mixpilot.realtime.api:Engine",
    "MixChain": "mixpilot.dsp.chain:MixChain",
    "MixpilotError": "mixpilot.dsp.errors:MixpilotError",
    "ProcessSpec": "mixpilot.dsp.spec:ProcessSpec",
    # inference.profile's class, taken through the I/O layer that registers its file reader (Profile.build)
    "Profile": "mixpilot.realtime.references:Profile",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # pragma: no cover
    from mixpilot.dsp.chain import MixChain as MixChain
    from mixpilot.dsp.errors import MixpilotError as MixpilotError
    from mixpilot.dsp.spec import ProcessSpec as ProcessSpec
    from mixpilot.inference.profile import Profile as Profile
    from mixpilot.realtime.api import Engine as Engine
    from mixpilot.realtime.api import MasterReport as MasterReport
    from mixpilot.realtime.api import MasterSettings as MasterSettings
    from mixpilot.realtime.api import analyze as analyze
    from mixpilot.realtime.api import master as master


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
