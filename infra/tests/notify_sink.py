#!/usr/bin/env python3
"""Stands in for systemd's notification socket: binds a Unix datagram socket at PATH and appends
every message a service sends (READY=1, WATCHDOG=1, STOPPING=1, ...) to PATH.log, one line per
message, until it is terminated.

    notify_sink.py PATH        then run the service with NOTIFY_SOCKET=PATH
"""
import os
import signal
import socket
import sys

path = sys.argv[1]
if os.path.exists(path):
    os.remove(path)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
with open(path + ".log", "a", buffering=1) as log:
    while True:
        data = sock.recv(4096).decode(errors="replace")
        log.write(data.replace("\n", " ").strip() + "\n")
