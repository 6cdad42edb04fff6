#!/usr/bin/env python3
"""Live checks and a bounded fuzz of the sidecars' REST listeners, as processes.

Usage: rest-fuzz.py SECONDS NAME=HOST:PORT[:PID] ...

First the regressions of issue 22 that need sockets (each names what it checks), then, for SECONDS
in all, random requests to every listener: random methods, targets (with the query shapes that
crashed the Kafka sidecar: `?=`, `&=`, `%`), headers (Expect, Content-Length, Transfer-Encoding,
control bytes) and bodies (JSON-ish, truncated, oversized). After every batch each listener must
still answer a well-formed request, and its process (when a PID is given) must be alive. Prints
`rest-fuzz: N passed, N failed` and exits non-zero on any failure.
"""
import json
import os
import random
import socket
import sys
import time

passed = 0
failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"  ok   {name}")
    else:
        failed += 1
        print(f"  FAIL {name} {detail}")


def exchange(addr, data, timeout=3.0, read_all=True):
    """Sends raw bytes, returns what came back before the close or the timeout."""
    host, port = addr
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
            if not read_all and b"\r\n\r\n" in out:
                head, _, body = out.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v.strip())
                if len(body) >= length:
                    break
        return out
    finally:
        s.close()


def request(addr, method, target, headers=(), body=b""):
    lines = [f"{method} {target} HTTP/1.1", f"Host: {addr[0]}:{addr[1]}"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    return exchange(addr, raw, read_all=False)


def status(answer):
    try:
        return int(answer.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def head_fields(answer):
    head = answer.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]
    return {k.strip().lower().decode(): v.strip().decode() for k, _, v in (line.partition(b":") for line in head)}


def body_json(answer):
    try:
        return json.loads(answer.partition(b"\r\n\r\n")[2])
    except ValueError:
        return None


def alive(addr, pid, probe):
    if pid and not os.path.exists(f"/proc/{pid}"):
        return False
    try:
        return status(request(addr, "GET", probe)) is not None
    except OSError:
        return False


def trickle(addr, start, piece, seconds=8):
    """Sends `start`, then `piece` every 0.5 s until the server ends the connection (a close or a
    reset both cut it off) or `seconds` pass; returns what came back and how long it took."""
    s = socket.create_connection(addr, timeout=10)
    s.sendall(start)
    started, got = time.time(), b""
    s.settimeout(0.5)
    while time.time() - started < seconds:
        try:
            s.sendall(piece)
        except OSError:
            break
        try:
            chunk = s.recv(1000)
            if not chunk:
                break
            got += chunk
        except socket.timeout:
            pass
        except OSError:
            break  # reset: the sidecar closed with bytes unread, which cuts off too
    s.close()
    return got, time.time() - started


def regressions(listeners):
    kafka = listeners.get("kafka-rest")
    admin = listeners.get("kafka-admin")
    if kafka:
        a = kafka[0]
        check("kafka REST: GET /openapi.json?= is answered", status(request(a, "GET", "/openapi.json?=")) == 200)
        check("kafka REST: a query of only '?' and '&=' is answered", status(request(a, "GET", "/openapi.json?&=&&==%")) == 200)
        ans = request(a, "POST", "/topics/fuzz?async=true&=", [("Content-Type", "application/vnd.kafka.binary.v2+json")],
                      b'{"records":[{"value":"AA=="}]}')
        check("kafka REST: POST /topics/t?async=true&= is answered 204", status(ans) == 204, ans[:200])
        check("kafka REST: a 204 has no Content-Type", "content-type" not in head_fields(ans), ans[:200])
        ans = request(a, "GET", "/no/such/path")
        j = body_json(ans)
        check("kafka REST: an unknown path is 404 {error_code, message}",
              status(ans) == 404 and isinstance(j, dict) and j.get("error_code") == 404 and "message" in j, ans[:200])
        ans = request(a, "POST", "/topics/fuzz", [("Content-Type", "text/plain")], b"x")
        j = body_json(ans)
        check("kafka REST: 415 carries error_code 415", status(ans) == 415 and j and j.get("error_code") == 415, ans[:200])
        ans = request(a, "POST", "/topics/fuzz", [("Content-Type", "application/vnd.kafka.json.v2+json")], b'{"records":[]}')
        check("kafka REST: empty records is 422", status(ans) == 422, ans[:200])
        ans = request(a, "POST", "/topics/__consumer_offsets", [("Content-Type", "application/vnd.kafka.json.v2+json")],
                      b'{"records":[{"value":1}]}')
        check("kafka REST: producing to __consumer_offsets is refused", status(ans) == 403, ans[:200])
        # Expect: 100-continue gets its go-ahead before the body is sent.
        s = socket.create_connection(a, timeout=3)
        s.sendall(b"POST /topics/fuzz HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.kafka.json.v2+json\r\n"
                  b"Expect: 100-continue\r\nContent-Length: 28\r\n\r\n")
        try:
            first = s.recv(100)
        except socket.timeout:
            first = b""
        s.close()
        check("kafka REST: Expect: 100-continue is answered at once", first.startswith(b"HTTP/1.1 100"), first)
        # A slow upload is cut off by the whole-request deadline, however steadily it trickles.
        got, took = trickle(a, b"POST /topics/fuzz HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.kafka.json.v2+json\r\n"
                               b"Content-Length: 1000\r\n\r\n", b" ")
        check("kafka REST: a body trickling a byte every 0.5 s is cut off with 408 by the request deadline",
              got.startswith(b"HTTP/1.1 408") and took < 6, got[:100])
        # A head that never ends is cut off too.
        got, took = trickle(a, b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n", b"X-A: b\r\n")
        check("kafka REST: a head trickling a field every 0.5 s is cut off by the request deadline", took < 6, got[:100])
        # Connections past the cap are closed on accept.
        cap = int(os.environ.get("REST_MAX_CONNECTIONS", "32"))
        held = [socket.create_connection(a, timeout=3) for _ in range(cap)]
        extra = socket.create_connection(a, timeout=3)
        extra.settimeout(2)
        try:
            extra.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
            closed = extra.recv(10) == b""
        except OSError:
            closed = True
        extra.close()
        for h in held:
            h.close()
        time.sleep(0.3)
        check(f"kafka REST: connection {cap + 1} is closed at a cap of {cap}", closed)
        check("kafka REST: answers again once connections close", status(request(a, "GET", "/openapi.json")) == 200)
    if admin:
        check("kafka admin: GET /metrics?= is answered", status(request(admin[0], "GET", "/metrics?=")) == 200)
        check("kafka admin: GET /health/live?=&= is answered", status(request(admin[0], "GET", "/health/live?=&=")) == 200)


METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "GETT", "", "G\x00T", "POST" * 20]
PATHS = ["/", "/openapi.json", "/topics/fuzz", "/topics/fuzz/partitions/0", "/topics/fuzz/partitions/-1", "/topics/fuzz/partitions/x",
         "/producers/fuzz", "/topics/__consumer_offsets", "/metrics", "/health/live", "/health/ready", "/config", "/endpoints",
         "/topics/" + "a" * 300, "//", "/%", "/%zz", "/topics/f%00z", "*", "http://x/topics/fuzz", "/consumers/g", "/topics",
         "/consumers/fz", "/consumers/fz/", "/consumers/fz/instances/i1", "/consumers/fz/instances/i1/subscription",
         "/consumers/fz/instances/i1/records", "/consumers/fz/instances/i1/offsets", "/consumers/fz/instances/i1/positions",
         "/consumers/fz/instances/i1/positions/end", "/consumers/fz/instances/i1/assignments", "/consumers/fz/instances/" + "i" * 300,
         "/consumers/" + "g" * 300, "/consumers/f%00z/instances/i1/records", "/consumers//instances//records",
         "/deadletters/fuzz", "/deadletters/fuzz/replay", "/deadletters/__consumer_offsets/replay", "/deadletters/", "/deadletters",
         "/deadletters/fuzz/replay/x", "/deadletters/" + "d" * 300 + "/replay"]
QUERIES = ["", "?", "?=", "?&", "?&=", "?==", "?=&=", "?async=true", "?async=true&=", "?async", "?%", "?%zz=1", "?a=%", "?" + "&" * 50,
           "?async=%74rue", "?+=+", "?" + "a=" * 100, "?timeout=2000", "?timeout=-5", "?timeout=99999999999999999999",
           "?max_bytes=0", "?max_bytes=-1&timeout=-1", "?limit=0", "?limit=99999999999999999999", "?group=", "?group=a%2Fb"]
CONTENT_TYPES = ["application/vnd.kafka.json.v2+json", "application/vnd.kafka.binary.v2+json", "application/vnd.kafka.text.v2+json",
                 "application/json", "text/plain", "", "application/vnd.kafka.v2+json; charset=utf-8", "\x01"]
BODIES = [b"", b"{}", b'{"records":[]}', b'{"records":[{"value":1}]}', b'{"records":[{"key":{"b":1,"a":2},"value":[1,2]}]}',
          b'{"records":[{"value":"AA==","partition":99999999999}]}', b'{"records":[{"value":"x","headers":{"a\\u0000b":"c"}}]}',
          b'{"records":[{"value":"x","headers":[{"key":"k","value":"!!"}]}]}', b'{"records":' + b"[" * 200, b"\xff\xfe",
          b'{"records":[' + b"{}," * 2000 + b"{}]}", b'{"keyFormat":"json","valueFormat":"binary","records":[{"value":"QQ=="}]}',
          b'{"records":[{"value":"\\ud800"}]}', b'{"records":[{"value":1e999999}]}',
          b'{"name":"i1","format":"binary","auto.offset.reset":"earliest"}', b'{"name":"i1","format":"avro"}', b'{"id":"../x"}',
          b'{"topics":["fuzz"]}', b'{"topics":["fuzz"],"topic_pattern":"f.*"}', b'{"offsets":[{"topic":"fuzz","partition":0,"offset":99999999}]}',
          b'{"offsets":[{"topic":"fuzz","partition":-1,"offset":1}]}', b'{"partitions":[{"topic":"fuzz","partition":0}]}',
          b'{"partitions":' + b"[" * 300, b'{"enable.auto.commit":"maybe","fetch.min.bytes":"-7"}',
          b'{"max":-1}', b'{"max":1e9,"until_offset":-3}', b'{"group":"../x","max":1}', b'{"max":1,"max":2}']


def random_request(rng):
    method = rng.choice(METHODS)
    target = rng.choice(PATHS) + rng.choice(QUERIES)
    headers = []
    if rng.random() < 0.7:
        headers.append(("Content-Type", rng.choice(CONTENT_TYPES)))
    body = rng.choice(BODIES)
    if rng.random() < 0.2:
        body = bytes(rng.getrandbits(8) for _ in range(rng.randrange(64)))
    if rng.random() < 0.2:
        body = body[: rng.randrange(len(body) + 1)]
    framing = rng.random()
    lines = [f"{method} {target} HTTP/1.{rng.choice('1110')}", "Host: fuzz"]
    if rng.random() < 0.1:
        lines.append("Expect: " + rng.choice(["100-continue", "100-Continue", "nope"]))
    if rng.random() < 0.1:
        lines.append(rng.choice(["X_Odd: 1", "X\x00Y: 1", "Authorization: a", "Connection: close", "Transfer-Encoding: chunked, identity"]))
    lines += [f"{k}: {v}" for k, v in headers]
    if framing < 0.7:
        lines.append(f"Content-Length: {len(body)}")
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    elif framing < 0.85:
        lines.append("Transfer-Encoding: chunked")
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    else:
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    if rng.random() < 0.1:
        raw = raw[: rng.randrange(len(raw) + 1)]
    if rng.random() < 0.1:
        raw = raw * rng.randrange(2, 4)  # pipelined copies
    return raw


def fuzz(listeners, seconds, seed):
    rng = random.Random(seed)
    print(f"fuzz: seed {seed}, {seconds} s over {', '.join(listeners)}")
    counts = {name: 0 for name in listeners}
    stop = time.time() + seconds
    while time.time() < stop:
        for name, (addr, pid, probe) in listeners.items():
            for _ in range(20):
                try:
                    exchange(addr, random_request(rng), timeout=0.15)
                except OSError:
                    pass
                counts[name] += 1
            if not alive(addr, pid, probe):
                check(f"{name} keeps answering under fuzz (seed {seed})", False, f"after {counts[name]} requests")
                return
    for name, (addr, pid, probe) in listeners.items():
        check(f"{name} kept answering through {counts[name]} fuzzed requests (seed {seed})", alive(addr, pid, probe))


def main():
    seconds = float(sys.argv[1])
    listeners = {}
    for spec in sys.argv[2:]:
        name, _, rest = spec.partition("=")
        parts = rest.split(":")
        pid = parts[2] if len(parts) > 2 else None
        probe = "/openapi.json" if name == "kafka-rest" else "/health/live"
        listeners[name] = ((parts[0], int(parts[1])), pid, probe)
    regressions({k: v for k, v in listeners.items()})
    seed = int(os.environ.get("FUZZ_SEED", str(random.randrange(1 << 30))))
    fuzz(listeners, seconds, seed)
    print(f"rest-fuzz: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
