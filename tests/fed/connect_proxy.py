#!/usr/bin/env python3
"""A small HTTP CONNECT proxy on loopback for tests/fed/ops_test.sh (mode proxy).

    connect_proxy.py PORTFILE LOGFILE

Listens on 127.0.0.1:0, writes its port to PORTFILE (whole, then renamed), and for each
connection reads one `CONNECT host:port HTTP/1.1` request, dials host:port, answers
`HTTP/1.1 200 Connection established` and relays bytes both ways. Anything but CONNECT gets a
405. LOGFILE gets one line per tunnel: `CONNECT host:port` and, when the tunnel closes, the
bytes each way and whether the first client bytes were a TLS handshake record (0x16 0x03): the
test checks that mutual TLS ran end to end through it, the proxy seeing only ciphertext.
"""
import os
import socket
import sys
import threading

portfile, logfile = sys.argv[1], sys.argv[2]
lock = threading.Lock()


def log(line):
    with lock, open(logfile, "a") as f:
        f.write(line + "\n")


def pump(src, dst, counter, first):
    try:
        while True:
            b = src.recv(65536)
            if not b:
                break
            if not first:
                first.append(b[:3])
            counter[0] += len(b)
            dst.sendall(b)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def handle(c):
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 8192:
        b = c.recv(1)
        if not b:
            c.close()
            return
        head += b
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split()
    if len(parts) != 3 or parts[0] != "CONNECT":
        c.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
        log("refused " + line)
        c.close()
        return
    target = parts[1]
    host, _, port = target.rpartition(":")
    try:
        u = socket.create_connection((host.strip("[]"), int(port)), timeout=30)
        u.settimeout(None)
    except OSError as e:
        c.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        log("CONNECT %s failed: %s" % (target, e))
        c.close()
        return
    log("CONNECT " + target)
    c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
    up, down, first = [0], [0], []
    t = threading.Thread(target=pump, args=(u, c, down, []), daemon=True)
    t.start()
    pump(c, u, up, first)
    t.join()
    tls = bool(first) and first[0][:2] == b"\x16\x03"
    log("closed %s: %d bytes up, %d bytes down, tls=%s" % (target, up[0], down[0], tls))
    c.close()
    u.close()


srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(16)
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.getsockname()[1]))
os.rename(portfile + ".tmp", portfile)
while True:
    conn, _ = srv.accept()
    threading.Thread(target=handle, args=(conn,), daemon=True).start()
