#!/usr/bin/env python3
"""The demo upstream: answers every request with what it received, as JSON.

Usage: upstream.py HOST:PORT [NAME] — NAME comes back in `x-upstream`."""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    name = "demo"

    def _answer(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        payload = json.dumps(
            {"upstream": self.name, "method": self.command, "path": self.path, "headers": dict(self.headers), "body": body},
            indent=2,
        ).encode() + b"\n"
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("x-upstream", self.name)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    host, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9000").rsplit(":", 1)
    if len(sys.argv) > 2:
        Echo.name = sys.argv[2]
    ThreadingHTTPServer((host, int(port)), Echo).serve_forever()
