#!/usr/bin/env python3
"""The client of ci/live-kafka-deadletters: produces over REST, inspects and replays dead letters,
and reads a topic back through a pull consumer to count the replayed copies. Standard library only.
Usage: deadletter-client.py PORT STEP ARGS..."""
import base64, json, sys, time, http.client

PORT = int(sys.argv[1])
V2 = "application/vnd.kafka.v2+json"
BINARY = "application/vnd.kafka.binary.v2+json"
JSON_TYPE = "application/vnd.kafka.json.v2+json"


def call(method, path, body=None, accept=None, content_type=V2, timeout=60):
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)
    headers = {"Content-Type": content_type}
    if accept:
        headers["Accept"] = accept
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = conn.getresponse()
    text = r.read()
    conn.close()
    return r.status, (json.loads(text) if text else None)


def check(name, ok, detail=""):
    if not ok:
        print(f"FAIL {name}: {detail}")
        sys.exit(1)
    print(f"ok   {name}")


def produce(n, topic):
    for start in range(0, n, 100):
        records = [{"key": f"k{i}", "value": {"n": i}} for i in range(start, min(n, start + 100))]
        s, body = call("POST", f"/topics/{topic}", {"records": records}, content_type=JSON_TYPE)
        check(f"produce {start}..", s == 200 and all(o.get("error_code") is None for o in body["offsets"]), f"{s} {body}")


def wait_pending(topic, want):
    """Waits until the dead-letter topic holds `want` records not yet replayed; prints its end."""
    body = None
    for _ in range(300):
        s, body = call("GET", f"/deadletters/{topic}?limit=1")
        if s == 200 and body["pending"] >= want:
            break
        time.sleep(0.1)
    check(f"{want} dead letters pending", s == 200 and body["pending"] >= want, f"{s} {body}")
    with open(sys.argv[4], "w") as f:
        f.write(str(sum(p["end"] for p in body["partitions"])))


def inspect(topic):
    s, body = call("GET", f"/deadletters/{topic}?limit=5")
    check("inspect answers 200 with 5 records", s == 200 and len(body["records"]) == 5, f"{s} {body}")
    r = body["records"][0]
    check("an entry says why, how often and where from",
          r["reason"].startswith("n=") and r["attempts"] >= 1 and r["original_topic"] == topic
          and r["original_offset"] is not None and json.loads(base64.b64decode(r["value"]))["n"] % 10 == 3, r)
    check("dead_letter_topic and group", body["dead_letter_topic"] == topic + ".dlq" and body["group"] == "lightmesh-replay." + topic, body)
    for method, path, payload, status in [
        ("POST", f"/deadletters/{topic}/replay", {"max": 0}, 422),
        ("POST", f"/deadletters/{topic}/replay", {"nope": 1}, 422),
        ("DELETE", f"/deadletters/{topic}", None, 405),
        ("GET", "/deadletters/__consumer_offsets", None, 403),
        ("GET", "/deadletters/no-such-topic", None, 404),
    ]:
        s, body = call(method, path, payload)
        check(f"{method} {path} {payload} is {status}", s == status and "error_code" in body, f"{s} {body}")


def replay(topic, max_records, until=None, expect=None):
    payload = {"max": int(max_records)}
    if until is not None:
        payload["until_offset"] = int(until)
    s, body = call("POST", f"/deadletters/{topic}/replay", payload, timeout=120)
    check(f"replay {payload} answers 200", s == 200, f"{s} {body}")
    print(f"     replayed {body['replayed']}, complete {body['complete']}")
    if expect is not None:
        check(f"replay moved {expect}", body["replayed"] == int(expect) and body["complete"], body)
    return body


def copies(topic, end, max_each):
    """Reads `topic` from its beginning with a pull consumer; every dead letter below `end` must be
    there as a replayed copy at least once and at most `max_each` times."""
    group = f"check-{time.time_ns()}"
    s, made = call("POST", f"/consumers/{group}", {"format": "binary", "auto.offset.reset": "earliest"})
    check("check consumer created", s == 200, f"{s} {made}")
    base = f"/consumers/{group}/instances/{made['instance_id']}"
    s, _ = call("POST", base + "/subscription", {"topics": [topic]})
    counts = {}
    quiet = 0
    while quiet < 4:
        s, records = call("GET", base + "/records?timeout=1000&max_bytes=4000000", accept=BINARY)
        if s != 200:
            check("records", False, f"{s} {records}")
        quiet = quiet + 1 if not records else 0
        for r in records:
            for h in r.get("headers") or []:
                if h["key"] == "lightmesh.dlq.replayed.from":
                    source = base64.b64decode(h["value"]).decode()
                    counts[source] = counts.get(source, 0) + 1
    call("DELETE", base)
    dlq = topic + ".dlq"
    wanted = [f"{dlq}/0/{o}" for o in range(int(end))]
    missing = [w for w in wanted if w not in counts]
    check(f"every dead letter below {end} is back in {topic}", not missing, f"{len(missing)} missing, e.g. {missing[:5]}")
    over = {k: v for k, v in counts.items() if v > int(max_each)}
    check(f"none copied more than {max_each} times", not over, f"{over}")
    print(f"     {sum(counts.values())} copies of {len(counts)} dead letters")


def read_all(topic):
    """Every record of `topic` from its beginning, through a throwaway pull consumer."""
    group = f"read-{time.time_ns()}"
    s, made = call("POST", f"/consumers/{group}", {"format": "binary", "auto.offset.reset": "earliest"})
    if s != 200:
        check(f"reader of {topic} created", False, f"{s} {made}")
    base = f"/consumers/{group}/instances/{made['instance_id']}"
    call("POST", base + "/subscription", {"topics": [topic]})
    out, quiet = [], 0
    # Until three empty polls once records came (the group's first assignment takes a few seconds).
    while quiet < (3 if out else 15):
        s, records = call("GET", base + "/records?timeout=1000&max_bytes=4000000", accept=BINARY)
        if s != 200:
            check("records", False, f"{s} {records}")
        quiet = quiet + 1 if not records else 0
        out += records
    call("DELETE", base)
    return out


def audit(topic, audit_topic, count):
    """Every original record of `topic` has an audit entry with the status its value earned
    (n%10==3 DEADLETTER, 5 DROP, else SUCCESS), its pushes and a trace id."""
    numbers = {}
    for r in read_all(topic):
        numbers[(r["partition"], r["offset"])] = json.loads(base64.b64decode(r["value"]))["n"]
    deadline = time.time() + 20
    while True:
        entries = [json.loads(base64.b64decode(r["value"])) for r in read_all(audit_topic)]
        seen = {(e["partition"], e["offset"]): e for e in entries if e["topic"] == topic}
        originals = [k for k, n in numbers.items() if k in seen]
        if len(set(n for k, n in numbers.items() if k in seen)) >= int(count) or time.time() > deadline:
            break
    audited = set(numbers[k] for k in originals)
    check(f"all {count} records audited", len(audited) >= int(count), f"{len(audited)} audited of {len(numbers)} records")
    wrong = []
    for k in originals:
        e, n = seen[k], numbers[k]
        want = "DEADLETTER" if n % 10 == 3 else "DROP" if n % 10 == 5 else "SUCCESS"
        if e["status"] != want or e["attempts"] < 1 or e["latency_ms"] < 0 or not e.get("trace_id"):
            wrong.append((n, e))
    check("every audit entry has the status the app gave, its pushes, a latency and a trace id", not wrong, f"{wrong[:3]}")
    print(f"     {len(entries)} audit entries")


step = sys.argv[2]
if step == "produce":
    produce(int(sys.argv[3]), sys.argv[4])
elif step == "wait-pending":
    wait_pending(sys.argv[3], int(sys.argv[5]))
elif step == "pending":
    s, body = call("GET", f"/deadletters/{sys.argv[3]}?limit=1")
    check("pending", s == 200, f"{s} {body}")
    print(f"     {body['pending']} dead letters pending")
elif step == "wait-progress":
    # Until a replay running now has committed part of the way (pending below its first figure),
    # then kill -9 the sidecar (pid argv[4]) there and then.
    import os, signal
    first = None
    for _ in range(500):
        s, body = call("GET", f"/deadletters/{sys.argv[3]}?limit=1")
        if s == 200:
            first = body["pending"] if first is None else first
            if body["pending"] < first:
                os.kill(int(sys.argv[4]), signal.SIGKILL)
                print(f"     pending went from {first} to {body['pending']}: sidecar killed")
                break
        time.sleep(0.01)
elif step == "inspect":
    inspect(sys.argv[3])
elif step == "replay":
    replay(sys.argv[3], sys.argv[4], sys.argv[5] if len(sys.argv) > 5 and sys.argv[5] != "-" else None, sys.argv[6] if len(sys.argv) > 6 else None)
elif step == "audit":
    audit(sys.argv[3], sys.argv[4], sys.argv[5])
elif step == "copies":
    copies(sys.argv[3], sys.argv[4], sys.argv[5])
else:
    sys.exit(f"unknown step {step}")
