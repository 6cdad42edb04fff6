#!/usr/bin/env python3
"""A pull consumer client of the Kafka sidecar's REST port, as Confluent v2 and Strimzi bridge
clients use it (Python's standard library only). Each check prints its name; the first failure
exits 1.

usage: pull-client.py PORT STEP
  produce N TOPIC   produce N records (values "v0".."vN-1", keys "k0"..) through POST /topics/TOPIC
  flows TOPIC       the Confluent and Strimzi flows, the error cases, long polls, expiry
  metadata TOPIC    GET /topics, /topics/TOPIC, partition offsets, /consumers/cg/lag (after flows)
  resume-1 TOPIC    create a Confluent instance in group "resume", read 100 records, commit the first 60
  resume-2 TOPIC    after the sidecar was killed: the instance is gone (404); a new one resumes at 60
"""
import base64
import http.client
import json
import sys
import time

PORT = int(sys.argv[1])
V2 = "application/vnd.kafka.v2+json"
BINARY = "application/vnd.kafka.binary.v2+json"
JSON_TYPE = "application/vnd.kafka.json.v2+json"


def call(method, path, body=None, accept=None, content_type=V2, raw=None):
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    headers = {"Content-Type": content_type}
    if accept:
        headers["Accept"] = accept
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    conn.request(method, path, body=data, headers=headers)
    r = conn.getresponse()
    text = r.read()
    conn.close()
    parsed = None
    if text:
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = text
    return r.status, parsed, r.getheader("Content-Type")


def check(name, ok, detail=""):
    if not ok:
        print(f"FAIL {name}: {detail}")
        sys.exit(1)
    print(f"ok   {name}")


def fetch_all(base, want, accept=BINARY, limit=60):
    """Polls until `want` records came back (or `limit` polls); returns them in arrival order."""
    got = []
    for _ in range(limit):
        s, records, _ = call("GET", base + "/records?timeout=1000", accept=accept)
        check("records answer 200", s == 200, f"{s} {records}")
        got += records
        if len(got) >= want:
            break
    return got


def produce(n, topic):
    for start in range(0, n, 50):
        records = [{"key": f"k{i}", "value": f"v{i}"} for i in range(start, min(n, start + 50))]
        s, body, _ = call("POST", f"/topics/{topic}", {"records": records}, content_type=JSON_TYPE)
        check(f"produce {start}..", s == 200 and all(o.get("error_code") is None for o in body["offsets"]), f"{s} {body}")


def flows(topic):
    # Confluent v2: string properties, 200 on create, five-digit error codes, offset+1 stored, 200 [] on commit.
    s, body, ctype = call("POST", "/consumers/cg", {"name": "c1", "format": "binary", "auto.offset.reset": "earliest",
                                                     "auto.commit.enable": "false", "fetch.min.bytes": "1"})
    check("confluent create 200", s == 200 and body["instance_id"] == "c1" and body["base_uri"].endswith("/consumers/cg/instances/c1"), f"{s} {body}")
    check("confluent create content type", ctype == V2, ctype)
    s, body, _ = call("POST", "/consumers/cg", {"name": "c1"})
    check("duplicate name 409 40902", s == 409 and body["error_code"] == 40902, f"{s} {body}")
    base = "/consumers/cg/instances/c1"
    s, _, _ = call("POST", base + "/subscription/", {"topics": [topic]})
    check("subscribe 204 (trailing slash)", s == 204, s)
    s, body, _ = call("GET", base + "/subscription", raw="{}")
    check("subscription 200, a body on GET ignored", s == 200 and body == {"topics": [topic]}, f"{s} {body}")
    s, body, _ = call("GET", base + "/records?timeout=100", accept=JSON_TYPE)
    check("Accept of another format 406 40601", s == 406 and body["error_code"] == 40601, f"{s} {body}")
    records = fetch_all(base, 20)
    check("records carry topic, partition, offset, timestamp", all({"topic", "key", "value", "partition", "offset", "timestamp"} <= set(r) for r in records), records[:1])
    # json.v2 stores a value as its JSON text: "v7" with its quotes.
    values = sorted(int(json.loads(base64.b64decode(r["value"]))[1:]) for r in records)
    # At least once: a rebalance while the group forms may hand a record out twice.
    check("records decode (binary = base64 of the stored bytes)", len(set(values)) >= 20, values[:10])
    check("headers carried as base64 pairs", all(isinstance(h["key"], str) and base64.b64decode(h["value"]) for r in records for h in r.get("headers", [])), records[:1])
    last = {}
    for r in records:
        last[r["partition"]] = max(last.get(r["partition"], -1), r["offset"])
    p, o = sorted(last.items())[0]
    s, body, _ = call("POST", base + "/offsets", {"offsets": [{"topic": topic, "partition": p, "offset": o}]})
    check("confluent commit 200 []", s == 200 and body == [], f"{s} {body}")
    s, body, _ = call("GET", base + "/offsets", {"partitions": [{"topic": topic, "partition": p}]})
    check("confluent stores offset+1 (GET offsets, with a body)", s == 200 and body["offsets"][0]["offset"] == o + 1, f"{s} {body}")
    s, body, _ = call("POST", base + "/offsets", {"offsets": [{"topic": topic, "partition": p, "offset": o + 1000}]})
    check("a commit past what was returned is refused 409", s == 409 and body["error_code"] == 40903, f"{s} {body}")
    s, body, _ = call("POST", base + "/offsets")
    check("an empty commit commits everything returned", s == 200, f"{s} {body}")
    s, body, _ = call("GET", base + "/offsets")
    check("committed = last returned + 1 on every partition", s == 200 and all(e["offset"] == last[e["partition"]] + 1 for e in body["offsets"] if e["partition"] in last), f"{body} {last}")
    # Long poll: nothing left (20 records produced per partition set below), answered at the timeout.
    fetch_all(base, 10_000, limit=3)  # drain
    started = time.time()
    s, body, _ = call("GET", base + "/records?timeout=1500", accept=BINARY)
    took = time.time() - started
    check("an empty long poll waits its timeout", s == 200 and body == [] and 1.3 < took < 3.5, f"{s} {body} {took:.2f}s")
    s, _, _ = call("DELETE", base, raw="{}")
    check("delete 204 (a body on DELETE ignored)", s == 204, s)
    s, body, _ = call("GET", base + "/records", accept=BINARY)
    check("unknown instance 404 40403", s == 404 and body["error_code"] == 40403, f"{s} {body}")

    # Strimzi: boolean auto commit, text format, HTTP codes, offsets stored as given, 204 on commit.
    s, body, _ = call("POST", "/consumers/sg", {"name": "s1", "format": "binary", "auto.offset.reset": "earliest",
                                                 "enable.auto.commit": False, "api_flavour": "strimzi"})
    check("strimzi create 200", s == 200, f"{s} {body}")
    base = "/consumers/sg/instances/s1"
    s, body, _ = call("POST", base + "/subscription", {"topic_pattern": "("})
    check("a topic_pattern that is no regular expression: 422", s == 422, f"{s} {body}")
    s, _, _ = call("POST", base + "/subscription", {"topic_pattern": topic[:3] + ".*"})
    check("strimzi subscribe by topic_pattern 204", s == 204, s)
    s, body, _ = call("GET", base + "/records?timeout=100")
    check("strimzi wants the exact Accept: none is 406", s == 406 and body["error_code"] == 406, f"{s} {body}")
    records = fetch_all(base, 5)
    check("the pattern brought the topic's records", all(x["topic"] == topic for x in records) and records, records[:2])
    s, body, _ = call("GET", base + "/subscription")
    check("a pattern subscription names the topics it brought", s == 200 and body["topics"] == [topic], f"{s} {body}")
    r = records[0]
    s, body, _ = call("POST", base + "/offsets", {"offsets": [{"topic": topic, "partition": r["partition"], "offset": r["offset"] + 1}]})
    check("strimzi commit 204", s == 204, f"{s} {body}")
    s, body, _ = call("GET", base + "/offsets", {"partitions": [{"topic": topic, "partition": r["partition"]}]})
    check("strimzi stores the offset as given", s == 200 and body["offsets"][0]["offset"] == r["offset"] + 1, f"{s} {body}")
    s, body, _ = call("POST", base + "/positions", {"offsets": [{"topic": topic, "partition": r["partition"], "offset": 0}]})
    check("seek 204", s == 204, f"{s} {body}")
    again = []
    for _ in range(20):
        again += call("GET", base + "/records?timeout=500", accept=BINARY)[1]
        if any(x["partition"] == r["partition"] and x["offset"] == 0 for x in again):
            break
    check("after a seek the partition reads again from there", any(x["partition"] == r["partition"] and x["offset"] == 0 for x in again), again[:3])
    s, body, _ = call("POST", base + "/positions", {"offsets": [{"topic": "not-ours", "partition": 0, "offset": 0}]})
    check("seek of a partition not assigned 404 (strimzi)", s == 404 and body["error_code"] == 404, f"{s} {body}")

    # Limits: instances per sidecar (3 in the test's config), and idle expiry (3 s).
    made = []
    status = 200
    for i in range(5):
        s, body, _ = call("POST", "/consumers/lg", {})
        if s == 200:
            made.append(body["instance_id"])
        status = s
    check("past max_instances: 429", status == 429, status)
    time.sleep(4.5)
    s, body, _ = call("GET", f"/consumers/lg/instances/{made[0]}/subscription")
    check("an idle instance expires (404 after idle_timeout)", s == 404, f"{s} {body}")
    s, body, _ = call("POST", "/consumers/lg", {"format": "avro"})
    check("an unsupported format 422", s == 422 and body["message"] == "Error: 422 : Invalid format type.", f"{s} {body}")


def metadata(topic):
    s, body, _ = call("GET", "/topics")
    check("GET /topics lists the topic, not internal ones", s == 200 and topic in body and not any(t.startswith("__") for t in body), f"{s} {body}")
    s, body, _ = call("GET", f"/topics/{topic}")
    check("GET /topics/{t}: its partitions", s == 200 and body["name"] == topic and len(body["partitions"]) == 3, f"{s} {body}")
    s, body, _ = call("GET", "/topics/no-such-topic")
    check("an unknown topic 404 40401", s == 404 and body["error_code"] == 40401, f"{s} {body}")
    s, body, _ = call("GET", f"/topics/{topic}/partitions/0/offsets")
    check("partition offsets", s == 200 and body["beginning_offset"] == 0 and body["end_offset"] > 0, f"{s} {body}")
    s, body, _ = call("GET", f"/topics/{topic}/partitions/7")
    check("a partition past the topic's 404 40402", s == 404 and body["error_code"] == 40402, f"{s} {body}")
    s, body, _ = call("GET", "/consumers/cg/lag")
    parts = body.get("partitions", []) if isinstance(body, dict) else []
    check("lag per committed partition: end - committed", s == 200 and parts and all(p["lag"] == max(0, p["end"] - p["committed"]) for p in parts), f"{s} {body}")


def resume_1(topic):
    s, body, _ = call("POST", "/consumers/resume", {"name": "r1", "auto.offset.reset": "earliest", "auto.commit.enable": "false"})
    check("resume: create", s == 200, f"{s} {body}")
    base = "/consumers/resume/instances/r1"
    check("resume: subscribe", call("POST", base + "/subscription", {"topics": [topic]})[0] == 204)
    records = fetch_all(base, 100)
    check("resume: 100 records read", len(records) >= 100, len(records))
    s, _, _ = call("POST", base + "/offsets", {"offsets": [{"topic": topic, "partition": 0, "offset": 59}]})
    check("resume: committed the first 60", s == 200, s)


def resume_2(topic):
    s, body, _ = call("GET", "/consumers/resume/instances/r1/records", accept=BINARY)
    check("resume: the instance is gone with the process (404)", s == 404, f"{s} {body}")
    s, body, _ = call("POST", "/consumers/resume", {"name": "r2", "auto.offset.reset": "earliest", "auto.commit.enable": "false"})
    check("resume: a new instance", s == 200, f"{s} {body}")
    base = "/consumers/resume/instances/r2"
    check("resume: subscribe", call("POST", base + "/subscription", {"topics": [topic]})[0] == 204)
    records = fetch_all(base, 40)
    offsets = sorted(r["offset"] for r in records)
    check("resume: it starts at the last commit (60), nothing committed comes back, nothing is lost",
          offsets[:1] == [60] and offsets[:40] == list(range(60, 100)), offsets[:5])


step = sys.argv[2]
if step == "produce":
    produce(int(sys.argv[3]), sys.argv[4])
elif step == "flows":
    flows(sys.argv[3])
elif step == "metadata":
    metadata(sys.argv[3])
elif step == "resume-1":
    resume_1(sys.argv[3])
elif step == "resume-2":
    resume_2(sys.argv[3])
else:
    sys.exit(f"unknown step {step}")
