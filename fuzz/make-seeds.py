#!/usr/bin/env python3
"""Regenerates the committed seed corpora under fuzz/seeds/<target>/ from fuzz/dts/, the
repository's resources/boards/*.dts and a real arm64 Image head. Needs dtc. Run from anywhere:

    fuzz/make-seeds.py [--image PATH]   (default: target/board/debian/boot/vmlinuz-*-arm64)

guest_node seeds are 16 control bytes (see fuzz_targets/guest_node.rs) + a host DTB: one per
device node (a node with `reg` and `compatible`) and option set. image_header seeds are 32
control bytes + the head of a kernel file.
"""

import glob
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SEEDS = os.path.join(HERE, "seeds")
MIB = 1 << 20


def dtc(path, symbols=False):
    args = ["dtc", "-q", "-I", "dts", "-O", "dtb"] + (["-@"] if symbols else []) + [path]
    return subprocess.run(args, check=True, capture_output=True).stdout


def device_nodes(blob):
    """Depth-first indexes (root = 0, as the fuzz target counts) of nodes with reg and
    compatible."""
    off_struct, off_strings = struct.unpack(">II", blob[8:16])
    size_struct = struct.unpack(">I", blob[36:40])[0]
    strings = blob[off_strings:]
    pos, end = off_struct, off_struct + size_struct
    index, stack, found = -1, [], []
    while pos < end:
        (tok,) = struct.unpack(">I", blob[pos : pos + 4])
        pos += 4
        if tok == 1:  # BEGIN_NODE
            name_end = blob.index(b"\0", pos)
            pos = (name_end + 4) & ~3
            index += 1
            stack.append([index, set()])
        elif tok == 2:  # END_NODE
            i, props = stack.pop()
            if {"reg", "compatible"} <= props:
                found.append(i)
        elif tok == 3:  # PROP
            length, nameoff = struct.unpack(">II", blob[pos : pos + 8])
            pos = (pos + 8 + length + 3) & ~3
            name = strings[nameoff : strings.index(b"\0", nameoff)].decode()
            stack[-1][1].add(name)
        elif tok == 9:  # END
            break
    return sorted(found)


def write(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def guest_node():
    sources = sorted(glob.glob(os.path.join(HERE, "dts", "*.dts")))
    sources += sorted(glob.glob(os.path.join(ROOT, "resources", "boards", "*.dts")))
    for src in sources:
        blob = dtc(src)
        base = os.path.splitext(os.path.basename(src))[0]
        for i in device_nodes(blob):
            # Option sets: none; mac=, fixed-link=1000, clock-rates= for every clock, varied
            # regions and IRQs, direct clocks, the SEC controller (flag bits: 0 mac, 1
            # fixed-link, 2 full duplex, 3 clock-rates, 4 regions, 5 clocks, 6 compatible=,
            # 7 SEC controller).
            plain = bytes([i]) + bytes(15)
            opts = bytes([i, 0xBF, 0, 0x02, 0x00, 0x5E, 0x10, 0x00, 0x01, 0xE8, 0x03, 5, 99, 0x5A, 12, 0x15])
            write("guest_node", f"{base}-{i}", plain + blob)
            write("guest_node", f"{base}-{i}-opts", opts + blob)


def overlay():
    for src in sorted(glob.glob(os.path.join(HERE, "dts", "overlay", "*.dts"))):
        base = os.path.splitext(os.path.basename(src))[0]
        write("overlay", base, dtc(src, symbols=base == "symbols"))


def image_ctl(file_size, ram=256 * MIB, base_odd=False, initrd=None):
    ram_index = (ram - 64 * MIB) // 4096
    b = 1 if base_odd else 0
    i = 0 if initrd is None else (initrd << 1) | 1
    return struct.pack("<QQQQ", max(file_size - 4096, 0), ram_index, b | (0x40 << 1), i)


def arm64_header(text_offset, image_size, flags=0xA):
    h = bytearray(64)
    h[0:4] = b"\x00\x00\x00\x14"  # b +0x?? (code0)
    struct.pack_into("<QQQ", h, 8, text_offset, image_size, flags)
    h[56:60] = b"ARM\x64"
    return bytes(h)


def image_header(image):
    if image:
        with open(image, "rb") as f:
            head = f.read(4096)
        size = os.path.getsize(image)
        write("image_header", "debian-6.1-arm64-efi", image_ctl(size, initrd=30 * MIB) + head)
        write("image_header", "debian-6.1-arm64-efi-small-ram", image_ctl(size, ram=64 * MIB, base_odd=True) + head)
    modern = arm64_header(0, 0x2A10000)
    write("image_header", "plain-modern", image_ctl(0x2000000) + modern + bytes(4096 - 64))
    write("image_header", "plain-legacy", image_ctl(0x1000000) + arm64_header(0x80000, 0) + bytes(4096 - 64))
    write("image_header", "short", image_ctl(64) + modern)
    write("image_header", "gzip", image_ctl(4) + b"\x1f\x8b\x08\x00")
    write("image_header", "elf", image_ctl(5) + b"\x7fELF\x02")
    # EFI stub: "MZ", PE header at 0x40, two sections ending at 0x8000.
    pe = bytearray(arm64_header(0, 0x8000))
    pe[0:2] = b"MZ"
    struct.pack_into("<I", pe, 0x3C, 0x40)
    pe += b"PE\0\0" + struct.pack("<HHIIIHH", 0xAA64, 2, 0, 0, 0, 8, 0x206) + bytes(8)
    for ptr, size in ((0x1000, 0x1000), (0x2000, 0x6000)):
        pe += bytes(16) + struct.pack("<II", size, ptr) + bytes(16)
    write("image_header", "pe-truncated", image_ctl(0x7FFF) + bytes(pe))


VFIO_SPECS = {
    "gem": "/sys/bus/platform/devices/ff0b0000.ethernet,mac=02:00:00:00:00:01,"
    "clock-rates=pclk:100M;hclk:100M,fixed-link=1000",
    "gem-half": "/sys/bus/platform/devices/ff0e0000.ethernet,clock-rates=pclk:100M;hclk:125M;"
    "tx_clk:125M;rx_clk:125M;tsu_clk:250M,fixed-link=100:half",
    "sdhci": "/sys/bus/platform/devices/ff170000.mmc,clock-rates=clk_xin:200M;clk_ahb:100000k,handler=mmc",
    "pl031": "/sys/bus/amba/devices/9010000.pl031,compatible=arm,pl031;arm,primecell,overlay=/x.dtb",
    "sata": "/sys/bus/platform/devices/3200000.sata,compatible=generic-ahci,handler=sata",
    "jr": "/sys/bus/platform/devices/1710000.jr,handler=sec",
    "usb": "/sys/bus/platform/devices/fe200000.usb,compatible=generic-xhci,handler=usb",
    "bad-mac": "/d,mac=01:00:5e:00:00:01",
    "bad-rate": "/d,clock-rates=pclk:5G",
    "index-rate": "/d,clock-rates=0:24000000;1:1G",
    "size-m": "256M",
    "size-g": "2GiB",
    "size-t": "1T",
}


def vfio_spec():
    for name, s in VFIO_SPECS.items():
        write("vfio_spec", name, s.encode())


def trapped(size, fd_index, ops):
    out = struct.pack("<H", size - 1) + bytes([fd_index])
    for write_, width, offset, seed in ops:
        out += bytes([(width << 1) | write_]) + struct.pack("<Q", offset) + bytes([seed])
    return out


def trapped_access():
    # LS1046A's 4-byte sata-ecc register at the start of its guest page.
    write("trapped_access", "sata-ecc", trapped(4, 2, [(0, 4, 0, 0), (1, 4, 0, 0x11), (0, 4, 0, 0), (0, 8, 0, 0), (0, 4, 4, 0), (1, 4, 0xFFC, 1)]))
    # QEMU's fw-cfg: 0x18 bytes, accessed at 1, 2, 4 and 8 bytes.
    write("trapped_access", "fw-cfg", trapped(0x18, 1, [(0, 8, 0, 0), (0, 1, 0x17, 0), (1, 2, 0x8, 0xAA), (0, 4, 0x16, 0), (0, 4, 0x18, 0), (1, 4, (1 << 64) - 2, 0)]))
    # A 0x100-byte register block (a DWC3 glue) read and written everywhere around its end.
    write("trapped_access", "glue", trapped(0x100, 3, [(w, n, 0x100 - k, k) for w in (0, 1) for n in (1, 2, 4, 8) for k in (0, 1, 4, 8)]))


def virtio_image(chains, indirect=None, desc=0, avail=0x1000, used=0x2000, size=0x4000):
    """The rings' addresses (three u16s in units of 4 bytes), then guest memory for
    virtio_queue: the descriptor table at `desc`, the available ring at `avail` (every chain
    posted), the used ring at `used`, buffers from 0x3000. `chains` lists requests as lists of
    (addr, len, write_only, payload); `indirect` (addr, chain) adds one chain whose head
    descriptor points at an indirect table at addr."""
    mem = bytearray(size)
    d = 0
    heads = []
    def desc_at(at, i, addr, ln, flags, nxt):
        struct.pack_into("<QIHH", mem, at + 16 * i, addr, ln, flags, nxt)
    def put(addr, payload):
        if addr + len(payload) <= len(mem):
            mem[addr:addr + len(payload)] = payload
    for chain in chains:
        heads.append(d)
        for k, (addr, ln, wo, payload) in enumerate(chain):
            last = k == len(chain) - 1
            desc_at(desc, d, addr, ln, (0 if last else 1) | (2 if wo else 0), d + 1)
            put(addr, payload)
            d += 1
    if indirect:
        table, chain = indirect
        heads.append(d)
        desc_at(desc, d, table, 16 * len(chain), 4, 0)
        for k, (addr, ln, wo, payload) in enumerate(chain):
            last = k == len(chain) - 1
            desc_at(table, k, addr, ln, (0 if last else 1) | (2 if wo else 0), k + 1)
            put(addr, payload)
    struct.pack_into("<HH", mem, avail, 0, len(heads))
    for i, h in enumerate(heads):
        struct.pack_into("<H", mem, avail + 4 + 2 * i, h)
    return struct.pack("<HHH", desc // 4, avail // 4, used // 4) + bytes(mem)


def blk(i, kind, sector, data_len, write_only, payload=b""):
    """A virtio-blk request at 0x3000 + i * 0x400: header, one data buffer, status byte."""
    base = 0x3000 + i * 0x400
    hdr = struct.pack("<IIQ", kind, 0, sector)
    return [(base, 16, False, hdr), (base + 0x10, data_len, write_only, payload), (base + 0x3F0, 1, True, b"")]


def blk_data(i, kind, data):
    """A virtio-blk request at 0x3000 + i * 0x400 with device-readable `data` descriptors,
    each (addr, len, payload), between the header and the status byte."""
    base = 0x3000 + i * 0x400
    hdr = struct.pack("<IIQ", kind, 0, 0)
    return [(base, 16, False, hdr)] + [(a, n, False, p) for a, n, p in data] + [(base + 0x3F0, 1, True, b"")]


def segs(*ss):
    """Discard / write-zeroes segments (sector, count, flags)."""
    return b"".join(struct.pack("<QII", *x) for x in ss)


def virtio_queue():
    # control: bit 0 read-only, 1 EVENT_IDX, 2 INDIRECT_DESC, 3-5 log2 size, 6 rng, 7 size 256
    ctl = lambda ro=0, ev=0, ind=0, log2=4, rng=0: bytes([ro | ev << 1 | ind << 2 | log2 << 3 | rng << 6])
    write("virtio_queue", "blk-read-write-flush", ctl() + virtio_image([blk(0, 0, 1, 512, True), blk(1, 1, 3, 512, False, b"\x5a" * 512), blk(2, 4, 0, 0, False)]))
    write("virtio_queue", "blk-readonly-write", ctl(ro=1) + virtio_image([blk(0, 1, 0, 512, False, b"\xa5" * 512), blk(1, 13, 0, 16, False, struct.pack("<QII", 0, 8, 0))]))
    write("virtio_queue", "blk-id-discard-zeroes", ctl(ev=1) + virtio_image([blk(0, 8, 0, 20, True), blk(1, 11, 0, 16, False, struct.pack("<QII", 2, 4, 0)), blk(2, 13, 30, 16, False, struct.pack("<QII", 30, 4, 1))]))
    write("virtio_queue", "blk-past-end", ctl() + virtio_image([blk(0, 0, 31, 1024, True), blk(1, 1, (1 << 64) - 1, 512, False), blk(2, 99, 0, 8, True)]))
    write("virtio_queue", "blk-indirect", ctl(ind=1, ev=1) + virtio_image([], indirect=(0x2800, blk(0, 0, 2, 512, True))))
    past = bytearray(virtio_image([blk(0, 0, 1, 512, True)]))
    struct.pack_into("<H", past, 6 + 0x1002, 100)  # 100 chains claimed in a 16-entry queue
    write("virtio_queue", "avail-idx-past-size", ctl() + bytes(past))
    write("virtio_queue", "rng", ctl(rng=1, log2=1) + virtio_image([[(0x3000, 64, True, b"")], [(0x3100, 0x1000, True, b"")]]))
    # Discard and write-zeroes with several segments: in one buffer, split over two (a segment
    # straddling them), one bad segment among good ones, one at the top of the address space.
    three = segs((2, 1, 0), (10, 2, 0), (20, 1, 1))
    write("virtio_queue", "blk-zero-segments", ctl() + virtio_image([
        blk_data(0, 13, [(0x3010, 48, three)]),
        blk_data(1, 11, [(0x3410, 26, segs((4, 1, 0), (6, 1, 0))[:26]), (0x3440, 6, segs((4, 1, 0), (6, 1, 0))[26:])]),
        blk_data(2, 11, [(0x3810, 32, segs((4, 1, 0), (31, 4, 0)))]),
        blk_data(3, 13, [(0x3C10, 16, segs((8, 1, 2)))]),
    ]))
    top = (1 << 64) - 8
    write("virtio_queue", "blk-zero-top-address", ctl() + virtio_image([
        blk_data(0, 11, [(top, 16, b"")]),
        blk_data(1, 13, [(0x3410, 8, segs((2, 1, 0))[:8]), (top, 8, b"")]),
        [(top, 16, False, b""), (0x3BF0, 1, True, b"")],
    ]))
    # Rings near the region boundary at 0x8000: the descriptor table across it, then the
    # used ring, then each ring inside one region but the three in different ones.
    def near(desc, avail, used, log2=4):
        return ctl(log2=log2) + virtio_image([blk(0, 0, 1, 512, True)], desc=desc, avail=avail, used=used, size=0x10000)
    write("virtio_queue", "rings-desc-across-regions", near(0x7F80, 0x1000, 0x2000))
    write("virtio_queue", "rings-used-across-regions", near(0, 0x1000, 0x7FE0))
    write("virtio_queue", "rings-in-two-regions", near(0x7F00, 0x8000, 0x9000))


def main():
    image = None
    args = sys.argv[1:]
    if args[:1] == ["--image"]:
        image = args[1]
    else:
        found = sorted(glob.glob(os.path.join(ROOT, "target", "board", "debian", "boot", "vmlinuz-*-arm64")))
        image = found[-1] if found else None
    guest_node()
    overlay()
    image_header(image)
    vfio_spec()
    trapped_access()
    virtio_queue()
    for t in sorted(os.listdir(SEEDS)):
        files = os.listdir(os.path.join(SEEDS, t))
        total = sum(os.path.getsize(os.path.join(SEEDS, t, f)) for f in files)
        print(f"{t}: {len(files)} seeds, {total} bytes")


if __name__ == "__main__":
    main()
