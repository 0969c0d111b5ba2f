"""The JSON Schema files of every JSON output (docs/schemas/) and the examples in docs/INTERFACE.md.

Reference: the JSON Schema 2020-12 meta-schema (jsonschema's ``check_schema``) for the files
themselves; each schema must accept the example docs/INTERFACE.md shows for its output.  The
outputs themselves are validated where the tests produce them (test_stream, test_cli, test_api,
test_batch, test_benchmarks_smoke).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = sorted((ROOT / "docs" / "schemas").glob("*.schema.json"))


def test_every_json_output_has_a_schema():
    names = {p.name.removesuffix(".schema.json") for p in SCHEMAS}
    assert {"stats", "bench", "params-out", "analyze", "render", "batch"} <= names


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.name)
def test_schema_files_are_valid_draft_2020_12(path):
    schema = json.loads(path.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def _interface_examples() -> dict[str, object]:
    text = (ROOT / "docs" / "INTERFACE.md").read_text()
    out = {}
    for section in re.split(r"^## ", text, flags=re.M)[1:]:  # one "## `title`" section at a time
        title = re.match(r"`([^`]+)`", section)
        block = re.search(r"```json\n(.*?)```", section, flags=re.S)
        if title and block:
            out[title.group(1)] = json.loads(block.group(1))
    return out


def test_interface_examples_follow_their_schemas(json_schema):
    ex = _interface_examples()
    json_schema("stats", ex["--stats-json"])
    json_schema("bench", ex["mixpilot bench --json"])
    line = {"t": 1.5, "param": "low_gain_db", "value": 2.0, "source": "midi"}
    json_schema("params-out", line)
    with pytest.raises(jsonschema.ValidationError):
        json_schema("params-out", {**line, "source": "robot"})
