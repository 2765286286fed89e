#!/usr/bin/env python3
"""uart-peer SOCKET LOG: the far end of an emulated board's serial port (QEMU -serial
unix:SOCKET connects to it). Every line "platvmm-uart N PAYLOAD" gets the answer
"platvmm-host N MD5(PAYLOAD)", so the guest can tell its bytes reached the host and the
host's reached it; each line answered is appended to LOG. Exits when QEMU disconnects, or
after 5 minutes without one."""
import hashlib
import os
import socket
import sys


def answer(line: bytes):
    """The reply to one received line, or None if it is not a ping."""
    words = line.strip(b"\r").split()
    if len(words) != 3 or words[0] != b"platvmm-uart":
        return None
    return b"platvmm-host %s %s\n" % (words[1], hashlib.md5(words[2]).hexdigest().encode())


def serve(conn: socket.socket, log) -> None:
    pending = b""
    while True:
        data = conn.recv(4096)
        if not data:
            return
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            reply = answer(line)
            if reply is not None:
                conn.sendall(reply)
                log.write(line.strip(b"\r").decode(errors="replace") + "\n")
                log.flush()


def main() -> None:
    path, log_path = sys.argv[1], sys.argv[2]
    if os.path.exists(path):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    srv.settimeout(300)
    conn, _ = srv.accept()
    with conn, open(log_path, "w", encoding="utf-8") as log:
        serve(conn, log)


if __name__ == "__main__":
    main()
