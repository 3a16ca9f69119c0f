#!/usr/bin/env python3
# A stand-in for systemd's notification socket, for the tests: Node has no unix datagram
# sockets. Binds a SOCK_DGRAM socket at the path given, prints {"listening": path} once bound,
# then one JSON line per datagram: {"ms": time since start, "message": the text}. File
# descriptors passed along (systemd-notify's BARRIER=1 sends one and waits for it to close) are
# closed at once. Runs until killed; the test stops it by pid.
import array
import json
import os
import socket
import sys
import time

path = sys.argv[1]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
print(json.dumps({"listening": path}), flush=True)
start = time.monotonic()
while True:
    data, ancdata, _flags, _addr = sock.recvmsg(65536, socket.CMSG_SPACE(64 * 4))
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
            for fd in fds:
                os.close(fd)
    print(json.dumps({"ms": round((time.monotonic() - start) * 1000, 1), "message": data.decode()}), flush=True)
