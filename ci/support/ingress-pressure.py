#!/usr/bin/env python3
"""Issue-22 regressions of the HTTP sidecar's ingress that need a process and sockets.

Usage: ingress-pressure.py INGRESS_PORT APP_PORT SIDECAR_PID

It plays the app on APP_PORT (the sidecar must have been started with --app 127.0.0.1:APP_PORT):
- Pipelined heads: 20 clients each send one 60 KB head and then 1 MB of small pipelined heads
  without reading, while the app holds the first request unanswered. The sidecar's resident memory
  must stay bounded (it grew by ~24 MB per such client when every queued head kept a field array
  sized by the largest one).
- Bytes after an answer: the app answers `GET /a` with its answer and, in the same write, a
  crafted second answer; a pipelined `GET /b` must get the app's real answer to `/b`, never the
  crafted one.
Prints `ingress-pressure: N passed, N failed` and exits non-zero on any failure.
"""
import socket
import sys
import threading
import time

ingress_port, app_port, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
passed = failed = 0
mode = {"value": "hold"}


def check(name, ok, detail=""):
    global passed, failed
    passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
    print(f"  {'ok  ' if ok else 'FAIL'} {name} {'' if ok else detail}")


def rss_mb():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def app_connection(conn):
    """Holds requests unanswered ("hold"), or answers /a with trailing bytes and /b plainly."""
    buf = b""
    conn.settimeout(30)
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                return
            buf += data
            while b"\r\n\r\n" in buf:
                head, buf = buf.split(b"\r\n\r\n", 1)
                line = head.split(b"\r\n", 1)[0]
                if mode["value"] == "hold":
                    continue
                if b" /a " in line:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                                 b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL")
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood")
    except OSError:
        return
    finally:
        conn.close()


app = socket.socket()
app.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
app.bind(("127.0.0.1", app_port))
app.listen(128)


def accept_forever():
    while True:
        try:
            conn, _ = app.accept()
        except OSError:
            return
        threading.Thread(target=app_connection, args=(conn,), daemon=True).start()


threading.Thread(target=accept_forever, daemon=True).start()

# 1. Pipelined heads while the app holds the first request.
before = rss_mb()
big = b"GET /big HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 60000 + b"\r\n\r\n"
small = b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n" * (1_000_000 // 29)
clients = []
for _ in range(20):
    c = socket.create_connection(("127.0.0.1", ingress_port), timeout=5)
    c.setblocking(False)
    clients.append([c, big + small])
deadline = time.time() + 10
while time.time() < deadline and any(rest for _, rest in clients):
    progressed = False
    for entry in clients:
        c, rest = entry
        if not rest:
            continue
        try:
            n = c.send(rest[:65536])
            entry[1] = rest[n:]
            progressed = progressed or n > 0
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            entry[1] = b""
    if not progressed:
        time.sleep(0.05)
time.sleep(1)
after = rss_mb()
unsent = sum(len(rest) for _, rest in clients)
check(f"20 clients pipelining 1 MB of heads behind a held request: RSS {before:.0f} -> {after:.0f} MB "
      f"({unsent // 1024} KB still unsent)", after - before < 120,
      "the queued heads are not bounded")
for c, _ in clients:
    c.close()

# 2. Bytes after an answer never become the next request's answer.
mode["value"] = "answer"
time.sleep(0.2)
s = socket.create_connection(("127.0.0.1", ingress_port), timeout=10)
s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
out = b""
try:
    while True:
        data = s.recv(65536)
        if not data:
            break
        out += data
except OSError:
    pass
s.close()
check("an app's bytes after its answer never answer the pipelined next request",
      out.count(b"HTTP/1.1 200") == 2 and b"good" in out and b"EVIL" not in out, repr(out[-300:]))

print(f"ingress-pressure: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
