#!/usr/bin/env python3
"""bench/webhook-receiver.py: the webhook receiver of bench/settle.sh.

    PW_BENCH_WEBHOOK_SECRET=whsec_... python3 bench/webhook-receiver.py PORT

Listens on 127.0.0.1:PORT (HTTP/1.1, keep-alive, a thread per connection) and
answers every POST 204 at once, after checking its Standard Webhooks signature
with the secret (as docs/webhooks.md tells receivers to; a few microseconds).
GET /stats answers JSON: requests, distinct webhook-ids, invalid signatures.
Python's standard library only, so that it runs wherever the bench does; the
bench measures its ceiling with wrk beside the delivery figure.
"""

import base64
import hashlib
import hmac
import http.server
import json
import os
import sys
import threading

SECRET = base64.b64decode(os.environ["PW_BENCH_WEBHOOK_SECRET"].removeprefix("whsec_"))

lock = threading.Lock()
stats = {"requests": 0, "invalid": 0}
ids = set()


def valid(headers, body):
    msg_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(SECRET, signed, hashlib.sha256).digest()).decode()
    return any(
        hmac.compare_digest(sig.removeprefix("v1,"), expected)
        for sig in headers.get("webhook-signature", "").split()
        if sig.startswith("v1,")
    )


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        ok = valid(self.headers, body)
        with lock:
            stats["requests"] += 1
            if ok:
                ids.add(self.headers["webhook-id"])
            else:
                stats["invalid"] += 1
        self.send_response_only(204 if ok else 401)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_GET(self):
        with lock:
            text = json.dumps({**stats, "distinct": len(ids)}).encode()
        self.send_response_only(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # A client closing its connections (wrk when it stops) is no error here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


if __name__ == "__main__":
    Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
