#!/usr/bin/env python3
"""Regenerates the committed seeds of the scmi fuzz target, fuzz/seeds/scmi/: 8 control bytes
(see fuzz_targets/scmi.rs) and a 128-byte channel area holding one message as Linux's
shmem_tx_prepare posts it, for every message a Linux 6.1/6.12 agent sends at probe and after,
plus hostile channels (lengths 0, 3, past the area, u32::MAX; a free channel; an area too
small). Run from anywhere: fuzz/make-scmi-seeds.py
"""

import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "seeds", "scmi")
AREA = 0x80

BASE, POWER, CLOCK, RESET = 0x10, 0x11, 0x14, 0x16
POWER_OFF = 1 << 30

# 3 clocks (clock 2 settable), 2 reset domains (domain 0 with an action), 2 power domains;
# names of 20 bytes (extended) or 6 (short); two rounds, the second re-reading the reply.
LONG_NAMES = bytes([3, 2, 2, 20, 0, 0b100, 0b01, 1 << 3])
SHORT_NAMES = bytes([3, 2, 2, 6, 0, 0b100, 0b01, 0])

MESSAGES = {
    "base": [
        (BASE, m, args)
        for m, args in [(0, []), (1, []), (2, [6]), (3, []), (4, []), (5, []), (6, [0]),
                        (6, [2]), (7, [0]), (7, [0xFFFFFFFF]), (8, [1])]
    ],
    "clock": [
        (CLOCK, m, args)
        for m, args in [(0, []), (1, []), (2, [9]), (3, [0]), (3, [1]), (8, [1]), (4, [0, 0]),
                        (4, [2, 0]), (6, [0]), (5, [0, 0, 50_000_000, 0]),
                        (5, [0, 2, 48_000_000, 0]), (5, [1, 2, 1, 0]), (7, [0, 0]),
                        (7, [0, 1]), (7, [1, 3])]
    ],
    "reset": [
        (RESET, m, args)
        for m, args in [(0, []), (1, []), (2, [5]), (3, [0]), (6, [1]), (4, [0, 1, 0]),
                        (4, [0, 2, 0]), (4, [0, 0, 0]), (4, [1, 1, 0]), (4, [0, 4, 0])]
    ],
    "power": [
        (POWER, m, args)
        for m, args in [(0, []), (1, []), (2, [6]), (3, [0]), (8, [1]), (5, [0]),
                        (4, [0, 0, POWER_OFF]), (4, [0, 1, 0]), (4, [1, 0, POWER_OFF])]
    ],
    "other": [(0x13, 0, []), (0x15, 3, [0])],
}


def header(protocol, message, token):
    return message | protocol << 10 | token << 18


def channel(protocol, message, args, token=1, length=None, status=0, size=AREA):
    """An area with the message posted: channel busy, interrupt wanted."""
    payload = struct.pack("<%dI" % len(args), *args)
    length = 4 + len(payload) if length is None else length
    area = bytearray(size)
    head = struct.pack("<7I", 0, status, 0, 0, 1, length, header(protocol, message, token))
    area[: min(size, len(head))] = head[:size]
    area[28 : 28 + len(payload)] = payload[: max(0, size - 28)]
    return bytes(area)


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    for group, messages in MESSAGES.items():
        for i, (protocol, message, args) in enumerate(messages):
            area = channel(protocol, message, args, token=i)
            write("%s-%d" % (group, i), LONG_NAMES + area)
            write("%s-%d-short" % (group, i), SHORT_NAMES + area)
    hostile = {
        "length-0": channel(CLOCK, 6, [0], length=0),
        "length-3": channel(CLOCK, 6, [0], length=3),
        "length-past-area": channel(CLOCK, 6, [0], length=AREA - 24 + 1),
        "length-max": channel(CLOCK, 6, [0], length=0xFFFFFFFF),
        "channel-free": channel(BASE, 0, [], status=1),
        "area-too-small": channel(BASE, 0, [], size=31),
        "reply-too-large": channel(CLOCK, 8, [1], size=0x40),
    }
    for name, area in hostile.items():
        write(name, LONG_NAMES + area)


if __name__ == "__main__":
    main()
