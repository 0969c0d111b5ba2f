"""docs/INTERFACE.md is the users' contract: every command line and every flag it names is accepted.

Reference: docs/INTERFACE.md itself ("Add to them freely; don't rename or drop them") and issue 12
("every command, flag and output format in INTERFACE.md still works; add a test per command line").
The documentation is parsed, not copied here, so renaming a flag in the CLI without its alias, or
documenting one that does not exist, fails.  Output formats are covered by ``tests/test_schemas.py``;
what each command does by the command's own tests.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from mixpilot.benchmarks.bench import build_parser as build_bench_parser
from mixpilot.realtime.cli import build_parser

INTERFACE = Path(__file__).resolve().parents[2] / "docs" / "INTERFACE.md"
TEXT = INTERFACE.read_text(encoding="utf-8")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _commands_block() -> list[str]:
    """The lines of the fenced block under ``## Commands`` that start with ``mixpilot``."""
    block = TEXT.split("## Commands", 1)[1].split("```", 2)[1]
    return [line for line in block.splitlines() if line.startswith("mixpilot")]


def _tree(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], set[str]]:
    """Every (sub)command path -> its option strings (``bench`` delegates to its own parser)."""
    out: dict[tuple[str, ...], set[str]] = {path: set()}
    for action in parser._actions:
        out[path] |= set(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                out.update(_tree(child, (*path, name)))
    out[("bench",)] = {s for a in build_bench_parser()._actions for s in a.option_strings}
    return out


TREE = _tree(build_parser())
ALL_OPTIONS = set().union(*TREE.values())


def _command_path(line: str) -> tuple[str, ...]:
    words = line.split()[1:]
    path: tuple[str, ...] = ()
    for w in words:
        if (*path, w) in TREE:
            path = (*path, w)
        else:
            break
    return path


def test_the_commands_block_is_found_and_names_every_subcommand():
    lines = _commands_block()
    assert len(lines) >= 10, lines  # the block the tests below read is really there
    documented = {_command_path(line) for line in lines}
    leaf_commands = {p for p in TREE if p and not any(q[: len(p)] == p and q != p for q in TREE)}
    assert leaf_commands <= documented, f"commands missing from INTERFACE.md: {sorted(leaf_commands - documented)}"


@pytest.mark.parametrize("line", _commands_block(), ids=lambda s: " ".join(s.split()[:3]))
def test_each_command_line_names_a_command_and_its_flags(line):
    usage = re.split(r"\s{2,}", line.strip())[0]  # the usage part; the rest of the line is its description
    if usage == "mixpilot --version":
        assert "--version" in TREE[()]
        return
    path = _command_path(usage)
    assert path, f"{usage!r}: no such command"
    unknown = [f for f in FLAG.findall(usage) if f not in TREE[path]]
    assert not unknown, f"{usage!r}: {' '.join(path)} does not accept {unknown}"


def test_every_flag_named_anywhere_in_the_contract_is_accepted_by_some_command():
    flags = set(FLAG.findall(TEXT))
    assert len(flags) > 40, sorted(flags)  # the regular expression really reads the document
    assert not sorted(flags - ALL_OPTIONS), f"documented but not accepted: {sorted(flags - ALL_OPTIONS)}"


@pytest.mark.parametrize(
    "argv",
    [
        # one real parse per documented command line, with placeholders filled in
        ["devices", "--json"],
        ["params", "--json"],
        ["render", "in.wav", "out.wav", "--reference", "r.flac"],
        ["render", "a.wav", "b.wav", "--out-dir", "o", "--format", "flac", "--jobs", "2"],
        ["play", "song.wav", "--seconds", "2", "--record", "o.wav", "--target", "default"],
        ["live", "--input", "1", "--jack", "--connect-out", "system:playback_"],
        ["analyze", "song.wav", "--json", "--plot", "o.png"],
        ["analyze", "song.wav", "--target", "default"],
        ["midi-learn", "--map", "m.toml"],
        ["profile", "build", "refs/", "-o", "taste.json"],
        ["profile", "show", "default", "--plot", "p.png"],
        ["profile", "list"],
        ["compare", "song.wav", "--out", "cmp"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_documented_command_lines_parse(argv):
    ns = build_parser().parse_args(argv)
    assert ns.command == argv[0]


def test_bench_flags_parse():
    ns = build_bench_parser().parse_args(["--json", "b.json", "--soak", "60", "--soak-busy", "2"])
    assert (ns.soak, ns.soak_busy) == (60.0, 2)
