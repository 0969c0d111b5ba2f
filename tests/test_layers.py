"""The import arrows point down: fileio <- dsp <- inference <- realtime <- (demo, training, benchmarks).

Reference: the layering of ARCHITECTURE.md and issue 12 (no ``realtime -> benchmarks`` arrow; file
helpers in the neutral ``mixpilot.fileio``).  Every ``import``/``from`` in the shipped package is read
with :mod:`ast` (type-only imports under ``if TYPE_CHECKING:`` count too), so a new upward import fails.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# layer -> the mixpilot subpackages/modules it may import
ALLOWED = {
    "fileio": set(),
    "dsp": {"dsp", "fileio"},
    "inference": {"dsp", "fileio", "inference"},
    "realtime": {"dsp", "fileio", "inference", "realtime"},
}
# realtime/demo.py only keeps the old name ``python -m mixpilot.realtime.demo`` working
EXEMPT = {("realtime/demo.py", "demo")}


def _targets(path: Path) -> set[str]:
    """First component under ``mixpilot`` of every import in ``path`` (relative ones resolved)."""
    rel = path.relative_to(ROOT)
    package = ["mixpilot", *rel.parts[:-1]]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                names = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "mixpilot" and len(parts) > 1:
                out.add(parts[1])
    return out


def _modules() -> list[tuple[str, Path]]:
    found = [("fileio", ROOT / "fileio.py")]
    for layer in ("dsp", "inference", "realtime"):
        found += [(layer, p) for p in sorted((ROOT / layer).glob("*.py"))]
    return found


@pytest.mark.parametrize("layer,path", _modules(), ids=lambda v: str(v.relative_to(ROOT)) if isinstance(v, Path) else v)
def test_imports_point_down(layer, path):
    rel = str(path.relative_to(ROOT))
    up = {t for t in _targets(path) - ALLOWED[layer] if (rel, t) not in EXEMPT}
    assert not up, f"{rel} ({layer}) imports mixpilot.{', mixpilot.'.join(sorted(up))}"


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    # the test itself can fail: a realtime module importing benchmarks (relative and absolute)
    fake = ROOT / "realtime" / "_layer_probe.py"
    src = "from ..benchmarks import bench\nimport mixpilot.training.synth\nfrom . import engine\n"
    monkeypatch.setattr(Path, "read_text", lambda self, encoding=None: src)
    assert _targets(fake) == {"benchmarks", "training", "realtime"}
