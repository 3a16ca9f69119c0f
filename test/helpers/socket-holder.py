#!/usr/bin/env python3
# Holds a listening TCP socket the way systemd holds a .socket unit's, for the tests: binds
# 127.0.0.1:PORT (argv[1]) with the kernel's largest backlog and never accepts; for each line
# "start" on stdin it starts the command (argv[2:]) with the socket as fd 3 and LISTEN_FDS=1,
# LISTEN_FDNAMES=web, and prints {"started": pid}. Instances share the socket: one can start
# while another drains, and connections wait in the kernel's queue while none accepts. Exits
# when stdin closes; the test stops the instances it started by pid.
import json
import os
import socket
import subprocess
import sys

port = int(sys.argv[1])
command = sys.argv[2:]
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", port))
sock.listen(socket.SOMAXCONN)
if sock.fileno() != 3:
    os.dup2(sock.fileno(), 3)
os.set_inheritable(3, True)
env = dict(os.environ, LISTEN_FDS="1", LISTEN_FDNAMES="web")
env.pop("LISTEN_PID", None)
print(json.dumps({"holding": port}), flush=True)
for line in sys.stdin:
    if line.strip() == "start":
        # Not the holder's stdin: an instance must not read, or end, the holder's commands.
        child = subprocess.Popen(command, env=env, pass_fds=(3,), stdin=subprocess.DEVNULL)
        print(json.dumps({"started": child.pid}), flush=True)
