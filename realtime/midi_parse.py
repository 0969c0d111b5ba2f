"""MIDI 1.0 byte streams into messages: SysEx, running status, real-time bytes anywhere.

Why this exists: under JACK, python-rtmidi's input keeps appending every later
event to a SysEx that never got its ``F7`` (RtMidi's ``continueSysex`` flag),
and queues nothing until some event ends in ``F7``.  One unterminated
``F0 7D 01 02 03`` from a controller therefore swallowed every control change
after it (issue 13 item 8).  :mod:`realtime.midi` ends such a SysEx by sending
its own input a lone ``F7`` every few milliseconds, and the packet rtmidi then
delivers (``F0 ... B0 07 64 B0 07 65 ... F7``) is split here by the rules of
the MIDI 1.0 Detailed Specification (4.2, "Data Types"; "System Exclusive"):

* a status byte ``80``-``EF`` starts a channel message of 2 bytes (``C0``-``DF``)
  or 3 bytes (the rest) and sets the running status: later data bytes with no
  status of their own belong to a message of that status;
* ``F0`` starts a SysEx; it ends at ``F7`` *or at any other status byte except
  real-time* (that status byte then begins the next message);
* real-time bytes ``F8``-``FF`` may appear anywhere, even inside another
  message, and are messages of one byte that change no state;
* system common ``F1``-``F6`` are messages of 2, 3, 3, 1, 1, 1 bytes (``F4`` and
  ``F5`` are undefined: one byte) and cancel the running status; a lone ``F7``
  ends nothing and is dropped;
* data bytes with no status to belong to, and a message cut short by the next
  status byte or by the end of the packet, are *fragments* (dropped).

Pure functions over bytes: no I/O, no state beyond one call, never raises for
any ``bytes``/list of ints 0..255.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["EOX", "SYSEX", "channel_message_length", "split_stream"]

SYSEX, EOX = 0xF0, 0xF7
_COMMON_LENGTH = {0xF1: 2, 0xF2: 3, 0xF3: 2, 0xF4: 1, 0xF5: 1, 0xF6: 1}


def channel_message_length(status: int) -> int:
    """Bytes in a channel message with this status (``80``-``EF``): 2 for program change and
    channel pressure (``C0``-``DF``), 3 for the others."""
    return 2 if 0xC0 <= status <= 0xDF else 3


def split_stream(data: Iterable[int]) -> tuple[list[tuple[int, ...]], int]:
    """Split a MIDI 1.0 byte stream into complete messages.

    Returns ``(messages, fragments)``: the messages in order (a SysEx as one
    tuple from ``F0`` through ``F7``, or up to the byte before the status byte
    that ended it), and the number of fragments dropped (see the module notes).
    Running status is carried within the one stream given.
    """
    out: list[tuple[int, ...]] = []
    fragments = 0
    running = 0  # the running status (0: none)
    cur: list[int] = []  # the message being assembled (cur[0] is its status), or empty
    need = 0  # its complete length; 0 for a SysEx (ends at F7)
    for b in data:
        b = int(b) & 0xFF
        if b >= 0xF8:  # real-time: a message of its own, anywhere, no state change
            out.append((b,))
            continue
        if b >= 0x80:  # a status byte ends whatever was open
            if cur:
                if cur[0] == SYSEX:
                    if b == EOX:
                        cur.append(b)
                        out.append(tuple(cur))
                        cur = []
                        continue
                    out.append(tuple(cur))  # a SysEx ended by another status byte (no F7)
                else:
                    fragments += 1  # a channel or common message cut short
                cur = []
            if b == SYSEX:
                cur, need, running = [b], 0, 0
            elif b == EOX:
                fragments += 1  # an F7 that ends nothing
                running = 0
            elif b >= 0xF0:  # system common
                running = 0
                n = _COMMON_LENGTH[b]
                if n == 1:
                    out.append((b,))
                else:
                    cur, need = [b], n
            else:
                running = b
                cur, need = [b], channel_message_length(b)
            continue
        # a data byte
        if cur:
            cur.append(b)
            if need and len(cur) == need:
                out.append(tuple(cur))
                cur = []
        elif running:
            cur, need = [running, b], channel_message_length(running)
            if len(cur) == need:
                out.append(tuple(cur))
                cur = []
        else:
            fragments += 1  # a stray data byte
    if cur:
        if cur[0] == SYSEX:
            out.append(tuple(cur))  # an unterminated SysEx at the end: a SysEx all the same (ignored later)
        else:
            fragments += 1
    return out, fragments
