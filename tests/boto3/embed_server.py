"""An embedding server for tests, on 127.0.0.1, speaking text-embeddings-inference's native
`POST /embed` ({"inputs": [...], "truncate": true} -> [[...], ...]) and OpenAI's
`POST /v1/embeddings`. Its vectors are 64-dimensional hashed character trigrams (texts that
share words are near), so retrieval through it means something. It records every request
and how many were in flight at once, waits `delay` seconds per request, and misbehaves on
demand (`mode`):

- "ok": answers;
- "flaky": the first request of each model name gets 429 with Retry-After: 1, later ones answer;
- "down": every request gets 503.
"""
import hashlib
import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DIM = 64


def vector(text):
    v = [0.0] * DIM
    padded = f"  {text.lower()}  "
    for i in range(len(padded) - 2):
        h = int.from_bytes(hashlib.blake2b(padded[i:i + 3].encode(), digest_size=4).digest(), "little")
        v[h % DIM] += 1.0 if (h >> 8) & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in v)) or 1.0
    return [x / norm for x in v]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        server = self.server
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        model = body.get("model", "tei")
        with server.lock:
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
            server.requests.append({"path": self.path, "body": body, "time": time.time(),
                                    "authorization": self.headers.get("authorization")})
            seen = sum(1 for r in server.requests if r["body"].get("model", "tei") == model)
        try:
            time.sleep(server.delay)
            if server.mode == "down":
                return self.send_json(503, {"error": "the model is not loaded"})
            if server.mode == "flaky" and seen == 1:
                return self.send_json(429, {"error": {"message": "slow down"}}, [("retry-after", "1")])
            if self.path == "/embed":
                return self.send_json(200, [vector(t) for t in body["inputs"]])
            if self.path == "/v1/embeddings":
                data = [{"object": "embedding", "index": i, "embedding": vector(t)}
                        for i, t in enumerate(body["input"])]
                data.reverse()  # OpenAI's order is by `index`, not by position
                return self.send_json(200, {"object": "list", "data": data, "model": model,
                                            "usage": {"prompt_tokens": 1, "total_tokens": 1}})
            return self.send_json(404, {"error": f"no route {self.path}"})
        finally:
            with server.lock:
                server.in_flight -= 1


class EmbedServer:
    def __init__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.requests, self.httpd.lock = [], threading.Lock()
        self.httpd.in_flight = self.httpd.max_in_flight = 0
        self.httpd.mode, self.httpd.delay = "ok", 0.0
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def set(self, mode=None, delay=None):
        with self.httpd.lock:
            if mode is not None:
                self.httpd.mode = mode
            if delay is not None:
                self.httpd.delay = delay
            self.httpd.max_in_flight = 0

    def requests(self, path=None):
        with self.httpd.lock:
            return [r for r in self.httpd.requests if path is None or r["path"] == path]

    def max_in_flight(self):
        with self.httpd.lock:
            return self.httpd.max_in_flight

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
