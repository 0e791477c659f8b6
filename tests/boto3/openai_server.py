"""A small OpenAI-compatible chat-completions server on 127.0.0.1 for tests: it speaks the
real protocol (JSON in, server-sent events out, `data: [DONE]`), records every request,
and behaves by the requested model name:

- "cite": answers from the prompt's numbered search results, one sentence per result with
  its marker ("<first words of result 1> [1]. <first words of result 2> [2]."), streamed a
  few characters per event.
- "flaky": 503 to the first request, then answers like "cite".
- "fail": 500 to every request.
- "denied": 401 with an OpenAI-style error body.
- "midway": streams the start of an answer, then an error event.
- "slow": streams 80 words, one every 0.25 s (20 s in all), and records in `slow_log` how
  many it sent and whether its client hung up before the end.
- "wrongfilter": proposes a filter on an attribute nobody declared.

Asked (by its system message) to split a question into sub-questions, "cite" splits it at
" and ", one per line; asked for a metadata filter, it proposes `equals` for each declared
STRING attribute whose key the query names followed by a word ("team logistics"), else NONE.
"""
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def sub_questions(messages):
    question = messages[-1]["content"].rstrip("?")
    return "\n".join(part.strip() + "?" for part in question.split(" and "))


def proposed_filter(messages, model):
    prompt = messages[-1]["content"]
    if model == "wrongfilter":
        return json.dumps({"equals": {"key": "undeclared", "value": "x"}})
    query = prompt.split("Query:", 1)[1]
    terms = []
    for key, kind in re.findall(r"^- (\S+) \((\w+)\):", prompt, flags=re.M):
        found = re.search(rf"\b{re.escape(key)} (\w+)", query)
        if kind == "STRING" and found:
            terms.append({"equals": {"key": key, "value": found.group(1)}})
    if not terms:
        return "NONE"
    return json.dumps(terms[0] if len(terms) == 1 else {"andAll": terms})


def answer_from(messages):
    prompt = "\n".join(m["content"] for m in messages)
    results = re.findall(r"^\[(\d+)\] (.+)$", prompt, flags=re.M)
    if not results:
        return "I could not find an exact answer to the question."
    sentences = []
    for number, text in results[:2]:
        words = re.sub(r"[^\w\s-]", "", text).split()[:6]
        sentences.append(f"{' '.join(words)} [{number}].")
    return " ".join(sentences)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        server = self.server
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        with server.lock:
            server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            seen = sum(1 for r in server.requests if r["body"].get("model") == body.get("model"))
        if self.path != "/v1/chat/completions":
            return self.send_json(404, {"error": {"message": f"no route {self.path}"}})
        model = body.get("model")
        if model == "fail" or (model == "flaky" and seen == 1):
            return self.send_json(500 if model == "fail" else 503, {"error": {"message": "the model is overloaded"}})
        if model == "denied":
            return self.send_json(401, {"error": {"message": "Incorrect API key provided"}})
        if model == "slow":
            return self.slow()
        system = body["messages"][0]["content"] if body["messages"][0]["role"] == "system" else ""
        if system.startswith("You prepare searches"):
            text = sub_questions(body["messages"])
        elif system.startswith("You turn a search query into a metadata filter"):
            text = proposed_filter(body["messages"], model)
        else:
            text = answer_from(body["messages"])
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.end_headers()

        def event(payload):
            self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
            self.wfile.flush()

        base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "model": model}
        self.wfile.write(b": keep-alive\n\n")
        event({**base, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]})
        for i in range(0, len(text), 5):
            event({**base, "choices": [{"index": 0, "delta": {"content": text[i:i + 5]}, "finish_reason": None}]})
            if model == "midway" and i >= 10:
                event({"error": {"message": "the backend crashed mid-answer"}})
                self.close_connection = True
                return
        event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


    def slow(self):
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        base = {"id": "chatcmpl-slow", "object": "chat.completion.chunk", "model": "slow"}
        sent, hung_up = 0, False
        try:
            for i in range(80):
                chunk = {**base, "choices": [{"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                sent += 1
                time.sleep(0.25)
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            hung_up = True
        with self.server.lock:
            self.server.slow_log.append({"sent": sent, "hung_up": hung_up, "ended": time.time()})
        self.close_connection = True


class OpenAiServer:
    def __init__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.requests = []
        self.httpd.slow_log = []
        self.httpd.lock = threading.Lock()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def requests(self, model):
        with self.httpd.lock:
            return [r for r in self.httpd.requests if r["body"].get("model") == model]

    def slow_log(self):
        with self.httpd.lock:
            return list(self.httpd.slow_log)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
