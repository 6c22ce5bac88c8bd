#!/usr/bin/env python3
"""Pre-authentication descriptor flood (hostile review, issue #19 item 2): holds COUNT idle
TCP connections to HOST:PORT (they never send a byte, so never authenticate) and opens a new
one for each that the server closes, until the file STOP exists. Writes `opened N` lines to
stdout (flushed) as it goes, so the test can wait for the flood to be in place.

    fd_flood.py HOST PORT COUNT STOP_FILE
"""
import os
import select
import socket
import sys
import time


def connect(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.connect_ex((host, port))
    return s


def main():
    host, port, count, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    socks = []
    opened = 0
    while not os.path.exists(stop):
        # refill: every connection the server dropped is replaced, so the pressure stays
        while len(socks) < count:
            try:
                socks.append(connect(host, port))
                opened += 1
            except OSError:
                break
        print(f"opened {opened} holding {len(socks)}", flush=True)
        # a connection the server closed (or refused) reads as EOF or an error
        ready, _, _ = select.select(socks, [], [], 0.5)
        for s in ready:
            try:
                if s.recv(1) != b"":
                    continue
            except BlockingIOError:
                continue
            except OSError:
                pass
            socks.remove(s)
            s.close()
        time.sleep(0.2)
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
