#!/usr/bin/env python3
"""A ten-line app for the sidecars (README, "Three things to try"): answers any GET with 200 and
who it saw (the ingress adds X-Forwarded-For and a traceparent), and takes the Kafka sidecar's pushes
on POST /kafka/records, printing each record and answering SUCCESS for it. Port: argv[1], else 8080."""
import http.server, json, sys

class App(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args): pass
    def answer(self, obj):
        out = json.dumps(obj).encode() + b"\n"
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def do_GET(self):
        self.answer({"path": self.path, "forwarded_for": self.headers.get("x-forwarded-for"), "traceparent": self.headers.get("traceparent")})
    def do_POST(self):
        batch = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        for r in batch.get("records", []):
            print(f"record {r['id']}: key={r.get('key')!r} value={json.dumps(r.get('value'))}", flush=True)
        self.answer({"statuses": [{"id": r["id"], "status": "SUCCESS"} for r in batch.get("records", [])]})

http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 8080), App).serve_forever()
