#!/usr/bin/env python3
"""The app behind the Kafka sidecar in ci/live-kafka-sidecar: answers pushes by each record's value
{"n": N}: N%10==3 DEADLETTER, N%10==5 DROP, N%10==7 RETRY on its first attempt then SUCCESS, else
SUCCESS. Records every delivery and decision; GET /stats returns them, GET /health/ready answers 200."""
import json, sys, threading, time, http.server

lock = threading.Lock()
deliveries = 0
decisions = {}      # n -> list of statuses sent
delay = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0

def verdict(n, attempt):
    if n % 10 == 3: return "DEADLETTER"
    if n % 10 == 5: return "DROP"
    if n % 10 == 7 and attempt == 1: return "RETRY"
    return "SUCCESS"

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args): pass
    def reply(self, status, obj):
        out = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def do_GET(self):
        if self.path == "/stats":
            with lock:
                self.reply(200, {"deliveries": deliveries, "decisions": decisions})
        else:
            self.reply(200, {"status": "ready"})
    def do_POST(self):
        global deliveries
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        if delay: time.sleep(delay)
        statuses = []
        with lock:
            for r in body["records"]:
                n = r["value"]["n"]
                s = verdict(n, r["attempt"])
                deliveries += 1
                decisions.setdefault(str(n), []).append(s)
                statuses.append({"id": r["id"], "status": s, "reason": "n=%d" % n})
        self.reply(200, {"statuses": statuses})

http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
