"""A small reranking server on 127.0.0.1 for tests, speaking the common `/rerank` protocol
(Cohere's shape, as text-embeddings-inference, vLLM and Jina serve it): `{"model", "query",
"documents", "top_n"}` in, `{"results": [{"index", "relevance_score"}]}` out. It records
every request and behaves by the requested model name:

- "overlap": scores each document by the share of the query's words it contains, ties
  broken towards the *last* document (so its order is visibly not the retriever's);
- "reverse": the documents in the opposite of the order given;
- "fail": 500 to every request.
"""
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def words(text):
    return set(re.findall(r"[a-z0-9]+", text.lower()))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.log.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if self.path != "/rerank":
            return self.send_json(404, {"error": "no such path"})
        if body["model"] == "fail":
            return self.send_json(500, {"error": "the model is down"})
        query = words(body["query"])
        scored = []
        for i, doc in enumerate(body["documents"]):
            if body["model"] == "reverse":
                scored.append((float(i), i))
                continue
            share = len(query & words(doc)) / max(len(query), 1)
            scored.append((round(share + i * 1e-4, 6), i))
        scored.sort(reverse=True)
        top = scored[: body.get("top_n") or len(scored)]
        self.send_json(200, {"results": [{"index": i, "relevance_score": s} for s, i in top]})


class RerankServer:
    def __init__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.log = []
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def requests(self):
        return list(self.httpd.log)

    def close(self):
        self.httpd.shutdown()


def server_with_reranker():
    """A real `quarry serve` over the fixtures, synced, with the "overlap" model of a new
    RerankServer as `[models.overlap]`; returns (server, reranker)."""
    from harness import Server
    reranker = RerankServer()
    server = Server(extra_toml=f'''
[models.overlap]
kind = "rerank-api"
base_url = "{reranker.url}"
model = "overlap"
''')
    job = server.sync("DEMOKB0001", "DEMODS0001")
    assert job["status"] == "COMPLETE", job
    return server, reranker
