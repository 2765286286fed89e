#!/usr/bin/env python3
"""Writes a newc cpio archive (the initramfs format) from a spec read on stdin.

Why not `cpio -o`: device nodes (/dev/console) would need mknod, hence root, on the build
host, and owners and mtimes would leak from the build tree. Here every entry is owned by
root with mtime 0, so the same inputs give the same bytes (and the same cache hash).

Spec lines (blank lines and # comments are ignored; parents are created as needed):
    dir   PATH MODE
    file  PATH SRC MODE        (MODE "-" keeps SRC's permission bits)
    slink PATH TARGET
    nod   PATH MODE c|b MAJOR MINOR
    tree  PATH SRCDIR          (SRCDIR's contents, recursively, modes kept)

usage: mkcpio.py [--compress none|gzip] OUTPUT < SPEC
"""
import gzip
import os
import stat
import sys


class Writer:
    def __init__(self, out):
        self.out = out
        self.ino = 1
        self.seen = set()

    def _entry(self, name, mode, data=b"", rdev=(0, 0)):
        name = name.strip("/")
        if name in self.seen:
            raise SystemExit(f"mkcpio: duplicate entry {name}")
        self.seen.add(name)
        encoded = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, 0, len(data),
                  0, 0, rdev[0], rdev[1], len(encoded), 0]
        self.ino += 1
        hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
        self.out.write(hdr + encoded + b"\0" * (-(len(hdr) + len(encoded)) % 4))
        self.out.write(data + b"\0" * (-len(data) % 4))

    def parents(self, path):
        parts = path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self.seen:
                self._entry(d, stat.S_IFDIR | 0o755)

    def dir(self, path, mode):
        self.parents(path)
        if path.strip("/") not in self.seen:
            self._entry(path, stat.S_IFDIR | mode)

    def file(self, path, src, mode=None):
        self.parents(path)
        with open(src, "rb") as f:
            data = f.read()
        if mode is None:
            mode = stat.S_IMODE(os.stat(src).st_mode)
        self._entry(path, stat.S_IFREG | mode, data)

    def slink(self, path, target):
        self.parents(path)
        self._entry(path, stat.S_IFLNK | 0o777, target.encode())

    def nod(self, path, mode, kind, major, minor):
        self.parents(path)
        t = stat.S_IFCHR if kind == "c" else stat.S_IFBLK
        self._entry(path, t | mode, rdev=(major, minor))

    def tree(self, path, srcdir):
        self.dir(path, 0o755)
        for top, dirs, files in os.walk(srcdir):
            dirs.sort()
            rel = os.path.relpath(top, srcdir)
            base = path.strip("/") if rel == "." else f"{path.strip('/')}/{rel}"
            for d in dirs:
                full = os.path.join(top, d)
                if os.path.islink(full):
                    self.slink(f"{base}/{d}", os.readlink(full))
                else:
                    self.dir(f"{base}/{d}", stat.S_IMODE(os.stat(full).st_mode))
            for f in sorted(files):
                full = os.path.join(top, f)
                if os.path.islink(full):
                    self.slink(f"{base}/{f}", os.readlink(full))
                else:
                    self.file(f"{base}/{f}", full)

    def finish(self):
        self.seen.discard("TRAILER!!!")
        self._entry("TRAILER!!!", 0)


def main():
    args = sys.argv[1:]
    compress = "none"
    if len(args) >= 2 and args[0] == "--compress":
        compress, args = args[1], args[2:]
    if len(args) != 1 or compress not in ("none", "gzip"):
        raise SystemExit(__doc__)
    output = args[0]
    tmp = output + ".tmp"
    raw = open(tmp, "wb")
    out = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=6) if compress == "gzip" else raw
    w = Writer(out)
    for lineno, line in enumerate(sys.stdin, 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        op, rest = words[0], words[1:]
        try:
            if op == "dir" and len(rest) == 2:
                w.dir(rest[0], int(rest[1], 8))
            elif op == "file" and len(rest) == 3:
                w.file(rest[0], rest[1], None if rest[2] == "-" else int(rest[2], 8))
            elif op == "slink" and len(rest) == 2:
                w.slink(rest[0], rest[1])
            elif op == "nod" and len(rest) == 5 and rest[2] in ("c", "b"):
                w.nod(rest[0], int(rest[1], 8), rest[2], int(rest[3]), int(rest[4]))
            elif op == "tree" and len(rest) == 2:
                w.tree(rest[0], rest[1])
            else:
                raise SystemExit(f"mkcpio: line {lineno}: cannot parse: {line.rstrip()}")
        except OSError as e:
            raise SystemExit(f"mkcpio: line {lineno}: {e}")
    w.finish()
    out.close()
    raw.close()
    os.replace(tmp, output)


if __name__ == "__main__":
    main()
