"""MIDI controller maps: the TOML format of INTERFACE.md, validated against the table.

A map is a list of ``[[cc]]`` tables.  Each binds one control change number
(optionally on one channel) either to a parameter of :mod:`dsp.params`, with a
curve and a range, or to an action (a button)::

    [[cc]]
    cc = 20                 # 0-127
    channel = 1             # 1-16; omit for any channel
    param = "low_gain_db"   # a name from `mixpilot params`
    curve = "linear"        # or "log"; range defaults to the parameter's range
    min = -6.0              # optional narrower range, inside the hard range
    max = 6.0
    range = "ai"            # optional: "hard" (default) or "ai", the AI-safe range
                            #   of the table, as the default for min/max
    cc14 = true             # optional: 14-bit pair, MSB on cc (0-31), LSB on cc + 32
    soft_takeover = true    # optional (default true): pick-up, see realtime.midi

    [[cc]]
    cc = 64
    action = "bypass"       # or "ab", "ai", "release"

Resolution of a position ``x`` in 0..1 (``data / 127``, or
``(msb << 7 | lsb) / 16383`` for 14-bit pairs, the MIDI 1.0 convention for
controllers 0-31 and their LSBs 32-63):

``linear``
    ``value = min + x * (max - min)``
``log``
    ``value = min * (max / min) ** x`` (equal knob travel per octave / per
    doubling; needs ``min > 0``)

Every validation error is a :class:`MidiMapError` with one line naming the
file, the line of the offending ``[[cc]]`` table and the problem.  TOML syntax
errors keep tomllib's own ``(at line L, column C)``.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import sys
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from mixpilot.dsp.errors import MidiError, MidiMapError
from mixpilot.dsp.params import PARAM_INDEX, PARAM_NAMES, PARAMS, Param
from mixpilot.fileio import write_text_atomic

__all__ = [
    "ACTIONS",
    "CURVES",
    "N_CHANNELS",
    "N_SLOTS",
    "ROLE_LSB",
    "ROLE_MSB",
    "MidiBinding",
    "MidiError",
    "MidiMap",
    "MidiMapError",
    "ceiling_warning",
    "controllable_params",
    "load_map",
    "slot",
    "validate_binding",
]

ACTIONS: tuple[str, ...] = ("bypass", "ab", "ai", "release")  # index = realtime.midi.ACTION_*
CURVES: tuple[str, ...] = ("linear", "log")
N_CHANNELS = 16
N_SLOTS = N_CHANNELS * 128  # one lookup slot per (channel, cc)
ROLE_MSB, ROLE_LSB = 0, 1  # a 7-bit control is its own "MSB"
DEFAULT_MAP_RESOURCE = "default_midi_map.toml"

_KEYS = ("cc", "channel", "param", "action", "curve", "min", "max", "range", "cc14", "soft_takeover")
RANGES: tuple[str, ...] = ("hard", "ai")
# [[cc]] written the usual ways: [[cc]], [[ cc ]], [["cc"]], [['cc']]
_TABLE_RE = re.compile(r"""^\s*\[\[\s*(?:cc|"cc"|'cc')\s*\]\]""")
_ANY_TABLE_RE = re.compile(r"^\s*\[")


def controllable_params() -> tuple[str, ...]:
    """Names a map may bind: every parameter except the structural (``fixed``) ones."""
    return tuple(p.name for p in PARAMS if p.glide != "fixed")


def slot(channel0: int, cc: int) -> int:
    """Index into :attr:`MidiMap.lookup` for a 0-based channel and a CC number."""
    return channel0 * 128 + cc


@dataclass(frozen=True)
class MidiBinding:
    """One ``[[cc]]`` table.

    ``channel`` is 1..16 or None (any channel); exactly one of ``param`` and
    ``action`` is set.  ``min``/``max`` are what the file says (None: the
    parameter's hard range, or its AI-safe range when ``range == "ai"``);
    :attr:`lo`/:attr:`hi` are the resolved range.
    ``line`` is the line of the table in its source file (None if not from one).
    """

    cc: int
    channel: int | None = None
    param: str | None = None
    action: str | None = None
    curve: str = "linear"
    min: float | None = None
    max: float | None = None
    range: str = "hard"
    cc14: bool = False
    soft_takeover: bool = True
    line: int | None = None

    # -- resolved range and curve ------------------------------------------------
    @property
    def param_index(self) -> int:
        return PARAM_INDEX[self.param] if self.param is not None else -1

    @property
    def action_index(self) -> int:
        return ACTIONS.index(self.action) if self.action is not None else -1

    def _param_spec(self) -> Param:
        if self.param is None:
            raise MidiMapError(f"CC {self.cc} is bound to the action {self.action!r}, not to a parameter")
        return PARAMS[PARAM_INDEX[self.param]]

    @property
    def lo(self) -> float:
        if self.min is not None:
            return float(self.min)
        p = self._param_spec()
        return p.ai_minimum if self.range == "ai" else p.minimum

    @property
    def hi(self) -> float:
        if self.max is not None:
            return float(self.max)
        p = self._param_spec()
        return p.ai_maximum if self.range == "ai" else p.maximum

    @property
    def steps(self) -> int:
        """Largest raw controller value: 127, or 16383 for a 14-bit pair."""
        return 16383 if self.cc14 else 127

    def value_at(self, x: float) -> float:
        """Parameter value at knob position ``x`` (0..1), by the curve."""
        lo, hi = self.lo, self.hi
        if self.curve == "log":
            return lo * (hi / lo) ** x
        return lo + x * (hi - lo)

    def position_of(self, value: float) -> float:
        """Inverse of :meth:`value_at`, clamped to 0..1 (a value outside the range
        sits at the nearer end)."""
        lo, hi = self.lo, self.hi
        if self.curve == "log":
            x = math.log(value / lo) / math.log(hi / lo) if value > 0.0 else 0.0
        else:
            x = (value - lo) / (hi - lo)
        if not x >= 0.0:  # also NaN
            return 0.0
        return 1.0 if x > 1.0 else x

    def slots(self) -> list[tuple[int, int]]:
        """(lookup slot, role) pairs this binding claims."""
        channels = range(N_CHANNELS) if self.channel is None else (self.channel - 1,)
        out = [(slot(ch, self.cc), ROLE_MSB) for ch in channels]
        if self.cc14:
            out += [(slot(ch, self.cc + 32), ROLE_LSB) for ch in channels]
        return out

    def describe(self) -> str:
        ch = f"channel {self.channel}" if self.channel is not None else "any channel"
        cc = f"CC {self.cc}/{self.cc + 32} (14-bit)" if self.cc14 else f"CC {self.cc}"
        if self.action is not None:
            return f"{cc} on {ch} -> {self.action}"
        p = self._param_spec()
        return f"{cc} on {ch} -> {self.param} ({self.curve}, {self.lo:g}..{self.hi:g} {p.unit})".replace(" )", ")")

    def to_toml(self) -> str:
        lines = ["[[cc]]", f"cc = {self.cc}"]
        if self.channel is not None:
            lines.append(f"channel = {self.channel}")
        if self.action is not None:
            lines.append(f'action = "{self.action}"')
        else:
            lines.append(f'param = "{self.param}"')
            lines.append(f'curve = "{self.curve}"')
            if self.range != "hard":
                lines.append(f'range = "{self.range}"')
            if self.min is not None:
                lines.append(f"min = {_toml_float(self.min)}")
            if self.max is not None:
                lines.append(f"max = {_toml_float(self.max)}")
        if self.cc14:
            lines.append("cc14 = true")
        if not self.soft_takeover:
            lines.append("soft_takeover = false")
        return "\n".join(lines) + "\n"


def _toml_float(v: float) -> str:
    text = repr(float(v))
    return text if any(c in text for c in ".en") else text + ".0"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _near(name: str, choices: tuple[str, ...]) -> str:
    near = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    if near:
        return "did you mean " + " or ".join(repr(n) for n in near) + "?"
    return "see `mixpilot params`"


def validate_binding(raw: dict[str, Any], *, line: int | None = None) -> MidiBinding:
    """A :class:`MidiBinding` from one ``[[cc]]`` table, or ValueError (the problem only)."""
    unknown = [k for k in raw if k not in _KEYS]
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (allowed: {', '.join(_KEYS)})")
    if "cc" not in raw:
        raise ValueError("missing 'cc' (0-127)")
    cc = raw["cc"]
    if not _is_int(cc) or not 0 <= cc <= 127:
        raise ValueError(f"cc = {cc!r} is out of range (0-127)")
    channel = raw.get("channel")
    if channel is not None and (not _is_int(channel) or not 1 <= channel <= 16):
        raise ValueError(f"channel = {channel!r} is out of range (1-16; omit it for any channel)")
    cc14 = raw.get("cc14", False)
    if not isinstance(cc14, bool):
        raise ValueError(f"cc14 = {cc14!r} must be true or false")
    takeover = raw.get("soft_takeover", True)
    if not isinstance(takeover, bool):
        raise ValueError(f"soft_takeover = {takeover!r} must be true or false")
    param, action = raw.get("param"), raw.get("action")
    if param is not None and action is not None:
        raise ValueError("has both 'param' and 'action'; a control does one or the other")
    if param is None and action is None:
        raise ValueError("needs 'param' (a parameter name) or 'action' (bypass, ab, ai, release)")
    if action is not None:
        if not isinstance(action, str) or action not in ACTIONS:
            raise ValueError(f"unknown action {action!r} (bypass, ab, ai, release)")
        for key in ("curve", "min", "max", "range"):
            if key in raw:
                raise ValueError(f"'{key}' does not apply to action {action!r}")
        if cc14:
            raise ValueError(f"cc14 does not apply to action {action!r} (a button)")
        return MidiBinding(cc=cc, channel=channel, action=action, soft_takeover=takeover, line=line)

    if not isinstance(param, str):
        raise ValueError(f"param = {param!r} must be a parameter name")
    if param not in PARAM_INDEX:
        raise ValueError(f"unknown param {param!r}; {_near(param, PARAM_NAMES)}")
    p = PARAMS[PARAM_INDEX[param]]
    if p.glide == "fixed":
        raise ValueError(f"param {param!r} is fixed when the chain is prepared and cannot be controlled live")
    if cc14 and cc > 31:
        raise ValueError(f"cc14 needs the MSB on cc 0-31 (LSB on cc + 32), got cc = {cc}")
    curve = raw.get("curve", "linear")
    if curve not in CURVES:
        raise ValueError(f"unknown curve {curve!r} (linear or log)")
    rng = raw.get("range", "hard")
    if rng not in RANGES:
        raise ValueError(f"unknown range {rng!r} (hard or ai)")
    if rng == "ai" and not p.ai_minimum < p.ai_maximum:
        raise ValueError(f'{param} has no AI-safe range to default to (range = "ai")')
    lo_raw, hi_raw = raw.get("min"), raw.get("max")
    for key, v in (("min", lo_raw), ("max", hi_raw)):
        if v is None:
            continue
        if not _is_num(v):
            raise ValueError(f"{key} = {v!r} must be a number")
        if not p.minimum <= v <= p.maximum:
            raise ValueError(f"{key} = {v!r} is outside the range of {param} ({p.range_text})")
    lo = float(lo_raw) if lo_raw is not None else (p.ai_minimum if rng == "ai" else p.minimum)
    hi = float(hi_raw) if hi_raw is not None else (p.ai_maximum if rng == "ai" else p.maximum)
    if not lo < hi:
        raise ValueError(f"min ({lo:g}) must be below max ({hi:g})")
    if curve == "log" and lo <= 0.0:
        raise ValueError(
            f"curve 'log' needs a range above 0, but {param} range {lo:g}..{hi:g} "
            "includes values <= 0 (use 'linear' or set min > 0)"
        )
    return MidiBinding(
        cc=cc,
        channel=channel,
        param=param,
        curve=curve,
        min=None if lo_raw is None else float(lo_raw),
        max=None if hi_raw is None else float(hi_raw),
        range=rng,
        cc14=cc14,
        soft_takeover=takeover,
        line=line,
    )


def _table_lines(text: str) -> list[int]:
    """1-based line numbers of the ``[[cc]]`` headers, in order."""
    return [n for n, ln in enumerate(text.splitlines(), 1) if _TABLE_RE.match(ln)]


def _key_line(text: str, key: str) -> int | None:
    pat = re.compile(r"^\s*\[*\s*[\"']?" + re.escape(key) + r"[\"']?\s*[\]=.]")
    for n, ln in enumerate(text.splitlines(), 1):
        if pat.match(ln):
            return n
    return None


class MidiMap:
    """A validated MIDI map.

    ``bindings`` in file order; ``lookup`` has one entry per (channel, cc)
    slot (:func:`slot`): None, or ``(binding index, ROLE_MSB | ROLE_LSB)``.
    A binding on one channel wins over an any-channel binding of the same cc.
    """

    def __init__(
        self,
        bindings: list[MidiBinding] | tuple[MidiBinding, ...] = (),
        *,
        source: str = "<map>",
        text: str | None = None,
    ) -> None:
        self.source = source
        self.bindings: list[MidiBinding] = list(bindings)
        self._text = text
        self._from_text: list[MidiBinding] = list(bindings) if text is not None else []
        self.lookup: list[tuple[int, int] | None] = []
        self._rebuild()

    # -- loading ----------------------------------------------------------------
    @classmethod
    def from_toml_text(cls, text: str, source: str = "<map>") -> MidiMap:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise MidiMapError(f"{source}: invalid TOML: {exc}") from None
        lines = _table_lines(text)
        for key in data:
            if key != "cc":
                line = _key_line(text, key)
                where = f"{source}:{line}" if line else source
                raise MidiMapError(f"{where}: unknown top-level key {key!r} (a map is a list of [[cc]] tables)")
        tables = data.get("cc", [])
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            line = _key_line(text, "cc")
            raise MidiMapError(f"{source}:{line or 1}: 'cc' must be [[cc]] tables")
        if len(lines) != len(tables):  # an inline array (cc = [{...}]): no per-table lines
            lines = [_key_line(text, "cc") or 1] * len(tables)
        bindings = []
        for k, (raw, line) in enumerate(zip(tables, lines)):
            try:
                bindings.append(validate_binding(raw, line=line))
            except ValueError as exc:
                raise MidiMapError(f"{source}:{line}: [[cc]] #{k + 1}: {exc}") from None
        owner: dict[tuple[int, bool], MidiBinding] = {}
        for k, b in enumerate(bindings):
            for s, role in b.slots():
                owner_key = (s, b.channel is None)
                if owner_key in owner:
                    o = owner[owner_key]
                    what = f"cc {b.cc + 32 if role == ROLE_LSB else b.cc}"
                    raise MidiMapError(
                        f"{source}:{b.line}: [[cc]] #{k + 1}: duplicate {what} "
                        f"on {_ch_text(s // 128 + 1 if b.channel is not None else None)}: "
                        f"already bound at line {o.line} ({o.describe()})"
                    )
                owner[owner_key] = b
        return cls(bindings, source=source, text=text)

    @classmethod
    def load(cls, path: str | os.PathLike) -> MidiMap:
        path = os.fspath(path)
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            raise MidiMapError(f"{path}: no such MIDI map file") from None
        except IsADirectoryError:
            raise MidiMapError(f"{path}: is a directory, not a MIDI map file") from None
        except OSError as exc:
            raise MidiMapError(f"{path}: cannot read: {exc.strerror or exc}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise MidiMapError(f"{path}:{line}: not UTF-8 text") from None
        return cls.from_toml_text(text, source=path)

    @classmethod
    def default(cls) -> MidiMap:
        """The built-in map (``realtime/default_midi_map.toml``)."""
        ref = resources.files(__package__).joinpath(DEFAULT_MAP_RESOURCE)  # mixpilot.realtime
        return cls.from_toml_text(ref.read_text(encoding="utf-8"), source=f"<built-in {DEFAULT_MAP_RESOURCE}>")

    # -- editing (midi-learn) -----------------------------------------------------
    def assign(self, binding: MidiBinding) -> list[MidiBinding]:
        """Add ``binding``, removing the bindings it displaces (returned).

        Displaced: any binding sharing one of its (channel, cc) slots, where an
        any-channel binding counts as on every channel.
        """
        binding = replace(binding, line=None)
        mine = {s for s, _ in binding.slots()}
        removed = [b for b in self.bindings if mine & {s for s, _ in b.slots()}]
        self.bindings = [b for b in self.bindings if b not in removed] + [binding]
        self._rebuild()
        return removed

    def find(self, channel: int, cc: int) -> MidiBinding | None:
        """The binding a CC on ``channel`` (1..16) reaches, if any."""
        hit = self.lookup[slot(channel - 1, cc)]
        return None if hit is None else self.bindings[hit[0]]

    def _rebuild(self) -> None:
        lookup: list[tuple[int, int] | None] = [None] * N_SLOTS
        # any-channel bindings first, so one-channel bindings overwrite them
        order = sorted(range(len(self.bindings)), key=lambda i: self.bindings[i].channel is not None)
        for i in order:
            for s, role in self.bindings[i].slots():
                lookup[s] = (i, role)
        self.lookup = lookup

    # -- writing ------------------------------------------------------------------
    def to_toml(self) -> str:
        """TOML text of the map.  A map read from a file keeps that file's text
        (comments included): removed tables are cut out, new ones appended."""
        new = [b for b in self.bindings if not any(b is s for s in self._from_text)]
        if self._text is not None:
            gone = [b for b in self._from_text if not any(b is k for k in self.bindings)]
            text = _cut_tables(self._text, [b.line for b in gone if b.line is not None])
        else:
            text = "# mixpilot MIDI map (format: INTERFACE.md; parameters: `mixpilot params`)\n"
        parts = [text.rstrip("\n") + "\n"] if text.strip() else []
        parts += [b.to_toml() for b in new]
        return "\n".join(parts)

    def save(self, path: str | os.PathLike) -> None:
        """Write the map atomically (:func:`realtime.audio_io.write_text_atomic`:
        temporary file in the same folder, then ``os.replace``), so a reader
        never sees half a file."""
        path = os.fspath(path)
        text = self.to_toml()
        fresh = MidiMap.from_toml_text(text, source=path)  # never write what we cannot read
        write_text_atomic(path, text)
        self.source, self.bindings, self._text = path, fresh.bindings, text
        self._from_text = list(fresh.bindings)
        self._rebuild()

    def __len__(self) -> int:
        return len(self.bindings)

    def __repr__(self) -> str:
        return f"MidiMap({self.source!r}, {len(self.bindings)} bindings)"


def _ch_text(channel: int | None) -> str:
    return "any channel" if channel is None else f"channel {channel}"


def _cut_tables(text: str, header_lines: list[int]) -> str:
    """``text`` without the ``[[cc]]`` tables whose headers are on ``header_lines``
    (a table runs to the next table header; comments just before that header
    stay with it)."""
    if not header_lines:
        return text
    lines = text.splitlines(keepends=True)
    drop: set[int] = set()
    for h in header_lines:
        start = h - 1
        end = start + 1
        while end < len(lines) and not _ANY_TABLE_RE.match(lines[end]):
            end += 1
        while end > start + 1 and (lines[end - 1].strip() == "" or lines[end - 1].lstrip().startswith("#")):
            end -= 1
        drop.update(range(start, end))
    return "".join(ln for i, ln in enumerate(lines) if i not in drop)


def load_map(path: str | os.PathLike | None) -> MidiMap:
    """``--midi-map`` semantics: the file when given, the built-in map otherwise."""
    return MidiMap.default() if path is None else MidiMap.load(Path(path))


def ceiling_warning(midi_map: MidiMap, ceiling_dbtp: float | None) -> str | None:
    """One line when a binding of ``midi_map`` can set ``limiter_ceiling_dbtp`` above the run's ceiling.

    The engine holds the ceiling at ``ceiling_dbtp`` whatever a control asks
    (:meth:`dsp.chain.MixChain.limit`, issue 13 item 2); this says so once, at
    start, instead of letting the top of the knob's travel do nothing silently.
    ``None`` when no binding reaches above it (or the run has no ceiling bound).
    """
    if ceiling_dbtp is None:
        return None
    lifting = [b for b in midi_map.bindings if b.param == "limiter_ceiling_dbtp" and b.hi > ceiling_dbtp + 1e-9]
    if not lifting:
        return None
    top = max(b.hi for b in lifting)
    which = "; ".join(b.describe() for b in lifting)
    return (
        f"warning: MIDI map {midi_map.source}: {which} reaches {top:g} dBTP, above the run's ceiling "
        f"{ceiling_dbtp:g} dBTP (--ceiling-dbtp); the limiter holds {ceiling_dbtp:g} dBTP over the rest of its travel"
    )
