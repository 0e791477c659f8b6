"""Hardening, the ways to wear the server down: slow headers and bodies, bodies an unsigned
client would make it buffer, too many connections, generations nobody waits for or that run
too long or too many, direct-ingestion requests without bound, and a shutdown that waits on
them. Then serving it safely without a proxy: TLS (reloaded on SIGHUP) and /metrics on an
address of its own."""
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import boto3
import botocore.config
import botocore.exceptions

from harness import KEY_ID, NO_RETRIES, SECRET, Server, free_port
from openai_server import OpenAiServer
from sigv4 import sign

RETRIEVE = "/knowledgebases/DEMOKB0001/retrieve"
CUSTOM = '''
[[knowledge_bases]]
id = "CUSTKB0001"
name = "custom"
embedding_model = "minilm"

[[knowledge_bases.data_sources]]
id = "CUSTDS0001"
name = "direct"
type = "custom"
'''


def slow_model(llm):
    return f'''
[models.slow]
kind = "openai"
base_url = "{llm.url}"
model = "slow"
max_retries = 0
'''


def rag_config(model="slow"):
    return {"type": "KNOWLEDGE_BASE", "knowledgeBaseConfiguration": {
        "knowledgeBaseId": "DEMOKB0001", "modelArn": model}}


def read_until_closed(sock, limit):
    """Everything the server sends until it closes (or `limit` seconds pass); and when."""
    sock.settimeout(limit)
    started, data = time.time(), b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except socket.timeout:
        return data, None
    return data, time.time() - started


class SlowClientsAndGenerations(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.llm = OpenAiServer()
        cls.server = Server(
            extra_server_toml="""
[server.limits]
header_timeout_secs = 2
body_timeout_secs = 2
max_concurrent_generations = 1
generation_timeout_secs = 6
max_concurrent_document_requests = 1
""",
            extra_toml=CUSTOM + slow_model(cls.llm))
        cls.port = int(cls.server.url.rsplit(":", 1)[1])
        job = cls.server.sync("DEMOKB0001", "DEMODS0001")
        assert job["status"] == "COMPLETE", job

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        cls.llm.close()

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.port), timeout=30)

    def test_slow_headers_are_cut_off(self):
        with self.connect() as s:
            s.sendall(b"POST " + RETRIEVE.encode() + b" HTTP/1.1\r\nhost: 127.0.0.1\r\n")
            started = time.time()
            closed = None
            for i in range(40):  # a header line every 0.25 s, never the blank line
                try:
                    s.sendall(f"x-slow-{i}: a\r\n".encode())
                except OSError:
                    closed = time.time() - started
                    break
                time.sleep(0.25)
            if closed is None:
                _, after = read_until_closed(s, 1)
                closed = None if after is None else time.time() - started
        self.assertIsNotNone(closed, "a client trickling headers was still connected after 10 s")
        self.assertLess(closed, 6)

    def test_an_unsigned_client_cannot_make_the_server_wait_for_its_body(self):
        with self.connect() as s:
            s.sendall((f"POST {RETRIEVE} HTTP/1.1\r\nhost: 127.0.0.1:{self.port}\r\n"
                       "content-type: application/json\r\ncontent-length: 1000000\r\n\r\n").encode())
            s.sendall(b"{" * 1000)
            reply, _ = read_until_closed(s, 5)
        self.assertTrue(reply.startswith(b"HTTP/1.1 403"), reply[:200])
        self.assertIn(b"AccessDeniedException", reply)

    def test_a_body_that_does_not_come_times_out(self):
        body = b'{"retrievalQuery": {"text": "battery"}}' + b" " * 60
        headers = sign(self.server.url + RETRIEVE, body, KEY_ID, SECRET)
        head = f"POST {RETRIEVE} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += f"content-length: {len(body)}\r\n\r\n"
        with self.connect() as s:
            s.sendall(head.encode() + body[:10])
            reply, _ = read_until_closed(s, 8)
        self.assertTrue(reply.startswith(b"HTTP/1.1 408"), reply[:200])

    def test_a_declared_oversized_body_is_refused_before_it_is_read(self):
        headers = sign(self.server.url + RETRIEVE, b"", KEY_ID, SECRET)
        head = f"POST {RETRIEVE} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += "content-length: 50000000\r\n\r\n"
        with self.connect() as s:
            s.sendall(head.encode())
            reply, _ = read_until_closed(s, 5)
        self.assertTrue(reply.startswith(b"HTTP/1.1 400"), reply[:200])
        self.assertIn(b"limit", reply)

    def test_generations_are_bounded_timed_and_stop_when_the_caller_leaves(self):
        rt = self.server.runtime()
        # One slot: while a stream holds it, another answer is refused at once.
        stream = rt.retrieve_and_generate_stream(input={"text": "vacation days"},
                                                 retrieveAndGenerateConfiguration=rag_config())
        events = iter(stream["stream"])
        self.assertIn("output", next(events))
        with self.assertRaises(rt.exceptions.ThrottlingException):
            rt.retrieve_and_generate(input={"text": "vacation days"},
                                     retrieveAndGenerateConfiguration=rag_config())
        # The streamed caller leaves: its generation stops, and the backend is hung up on.
        left = time.time()
        stream["stream"]._raw_stream.close()
        self.wait_for_log(1)
        entry = self.llm.slow_log()[0]
        self.assertTrue(entry["hung_up"], entry)
        self.assertLess(entry["ended"] - left, 4, entry)
        self.assertLess(entry["sent"], 40, entry)

        # A non-streamed caller that hangs up: the same.
        body = json.dumps({"input": {"text": "vacation days"},
                           "retrieveAndGenerateConfiguration": rag_config()}).encode()
        headers = sign(self.server.url + "/retrieveAndGenerate", body, KEY_ID, SECRET)
        head = "POST /retrieveAndGenerate HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += f"content-length: {len(body)}\r\n\r\n"
        self.wait_for_slot(rt)
        with self.connect() as s:
            s.sendall(head.encode() + body)
            time.sleep(1.5)
        left = time.time()
        self.wait_for_log(len(self.llm.slow_log()) + 1)
        entry = self.llm.slow_log()[-1]
        self.assertTrue(entry["hung_up"], entry)
        self.assertLess(entry["ended"] - left, 4, entry)

        # Nobody leaves, but the answer takes longer than generation_timeout_secs (6 s).
        self.wait_for_slot(rt)
        started = time.time()
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            rt.retrieve_and_generate(input={"text": "vacation days"},
                                     retrieveAndGenerateConfiguration=rag_config())
        self.assertEqual(e.exception.response["Error"]["Code"], "DependencyFailedException")
        self.assertIn("generation_timeout_secs", str(e.exception))
        self.assertLess(time.time() - started, 15)

    def wait_for_log(self, n, timeout=15):
        deadline = time.time() + timeout
        while len(self.llm.slow_log()) < n:
            if time.time() > deadline:
                self.fail(f"the backend's answer did not end within {timeout} s")
            time.sleep(0.1)

    def wait_for_slot(self, rt, timeout=15):
        """The previous generation's slot is given back once its thread has ended."""
        deadline = time.time() + timeout
        while True:
            try:
                rt.retrieve_and_generate(input={"text": "x"}, retrieveAndGenerateConfiguration=rag_config("nope"))
            except rt.exceptions.ValidationException:
                pass  # an unknown model: refused before a slot is taken
            try:
                rt.retrieve_and_generate(input={"text": "x"},
                                         retrieveAndGenerateConfiguration=rag_config(), sessionId="no-such-session")
            except rt.exceptions.ThrottlingException:
                if time.time() > deadline:
                    self.fail("the generation slot was not given back")
                time.sleep(0.2)
                continue
            except rt.exceptions.ValidationException:
                return  # the slot was free (the unknown session is refused after taking it)

    def test_direct_ingestion_requests_are_bounded(self):
        ag = self.server.agent(config=botocore.config.Config(retries={"total_max_attempts": 1}, read_timeout=180))
        big = " ".join(f"Robot unit {i} passed inspection step {i % 7}." for i in range(5000))
        results = {}

        def ingest():
            try:
                results["first"] = ag.ingest_knowledge_base_documents(
                    knowledgeBaseId="CUSTKB0001", dataSourceId="CUSTDS0001",
                    documents=[{"content": {"dataSourceType": "CUSTOM", "custom": {
                        "customDocumentIdentifier": {"id": "big"}, "sourceType": "IN_LINE",
                        "inlineContent": {"type": "TEXT", "textContent": {"data": big}}}}}])
            except Exception as e:  # noqa: BLE001 - reported below
                results["first"] = e

        worker = threading.Thread(target=ingest)
        worker.start()
        time.sleep(1.0)
        with self.assertRaises(ag.exceptions.ThrottlingException):
            ag.ingest_knowledge_base_documents(
                knowledgeBaseId="CUSTKB0001", dataSourceId="CUSTDS0001",
                documents=[{"content": {"dataSourceType": "CUSTOM", "custom": {
                    "customDocumentIdentifier": {"id": "small"}, "sourceType": "IN_LINE",
                    "inlineContent": {"type": "TEXT", "textContent": {"data": "a small note"}}}}}])
        worker.join(timeout=120)
        self.assertNotIsInstance(results.get("first"), Exception, results)
        # The slot is back: the next request is served.
        listed = ag.list_knowledge_base_documents(knowledgeBaseId="CUSTKB0001", dataSourceId="CUSTDS0001")
        self.assertEqual([d["identifier"]["custom"]["id"] for d in listed["documentDetails"]], ["big"])

    def test_z_a_normal_signed_retrieve_still_works_after_all_that(self):
        rt = self.server.runtime()
        hits = rt.retrieve(knowledgeBaseId="DEMOKB0001", retrievalQuery={"text": "vacation days"})
        self.assertTrue(hits["retrievalResults"])


class ConnectionCap(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(extra_server_toml="""
[server.limits]
max_connections = 3
header_timeout_secs = 30
""")
        cls.port = int(cls.server.url.rsplit(":", 1)[1])

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def test_past_the_cap_a_connection_is_answered_429_at_once(self):
        held = [socket.create_connection(("127.0.0.1", self.port), timeout=10) for _ in range(3)]
        try:
            time.sleep(0.3)
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as extra:
                extra.sendall(f"GET /metrics HTTP/1.1\r\nhost: 127.0.0.1:{self.port}\r\n\r\n".encode())
                reply, closed_after = read_until_closed(extra, 5)
            self.assertTrue(reply.startswith(b"HTTP/1.1 429"), reply[:200])
            self.assertIn(b"ThrottlingException", reply)
            self.assertIsNotNone(closed_after)
        finally:
            for s in held:
                s.close()
        # Once they are gone, clients are served again.
        deadline = time.time() + 10
        while True:
            try:
                self.server.runtime().retrieve(knowledgeBaseId="DEMOKB0001", retrievalQuery={"text": "x"})
                break
            except botocore.exceptions.ClientError as e:
                if e.response["Error"]["Code"] != "ThrottlingException" or time.time() > deadline:
                    raise
                time.sleep(0.2)


class ShutdownCancelsGenerations(unittest.TestCase):
    def test_sigterm_ends_a_streaming_answer_and_the_server(self):
        llm = OpenAiServer()
        server = Server(extra_toml=slow_model(llm))
        try:
            rt = server.runtime()
            stream = rt.retrieve_and_generate_stream(input={"text": "vacation days"},
                                                     retrieveAndGenerateConfiguration=rag_config())
            self.assertIn("output", next(iter(stream["stream"])))
            started = time.time()
            code = server.stop(signal.SIGTERM, timeout=30)
            self.assertEqual(code, 0)
            self.assertLess(time.time() - started, 15)
            deadline = time.time() + 5
            while not llm.slow_log() and time.time() < deadline:
                time.sleep(0.1)
            self.assertTrue(llm.slow_log() and llm.slow_log()[0]["hung_up"], llm.slow_log())
        finally:
            server.close()
            llm.close()


def make_cert(directory, name):
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", key + ".new", "-out", cert + ".new"], check=True, capture_output=True)
    os.replace(key + ".new", key)
    os.replace(cert + ".new", cert)
    return cert, key


class TlsAndMetricsListener(unittest.TestCase):
    def test_https_with_reload_on_sighup_and_metrics_on_their_own_address(self):
        certs = tempfile.mkdtemp(prefix="quarry-tls-")
        cert, key = make_cert(certs, "first")
        metrics_port = free_port()
        server = Server(extra_server_toml=f"""
tls = {{ cert = "{cert}", key = "{key}" }}
metrics_listen = "127.0.0.1:{metrics_port}"
""")
        try:
            self.assertTrue(server.url.startswith("https://"), server.url)
            rt = boto3.client("bedrock-agent-runtime", endpoint_url=server.url, region_name="us-east-1",
                              aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET, config=NO_RETRIES,
                              verify=cert)
            self.assertIn("retrievalResults",
                          rt.retrieve(knowledgeBaseId="DEMOKB0001", retrievalQuery={"text": "battery"}))
            port = int(server.url.rsplit(":", 1)[1])
            self.assertEqual(peer_common_name(port), "first")

            make_cert(certs, "second")
            server.process.send_signal(signal.SIGHUP)
            deadline = time.time() + 10
            while peer_common_name(port) != "second":
                self.assertLess(time.time(), deadline, "the certificate was not reloaded")
                time.sleep(0.2)
            # A broken file on reload keeps the certificate in use.
            with open(cert, "w") as f:
                f.write("not a certificate")
            server.process.send_signal(signal.SIGHUP)
            time.sleep(1)
            self.assertEqual(peer_common_name(port), "second")

            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
                self.assertIn(b"quarry_requests_total", r.read())
            # On the API's address /metrics is no operation, even for a signed caller.
            url = server.url + "/metrics"
            request = urllib.request.Request(url, headers=sign(url, b"", KEY_ID, SECRET, method="GET"))
            with self.assertRaises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(request, timeout=10, context=ssl._create_unverified_context())
            self.assertEqual(e.exception.code, 404)
            self.assertEqual(e.exception.headers["x-amzn-ErrorType"], "UnknownOperationException")
        finally:
            server.close()


def peer_common_name(port):
    ctx = ssl._create_unverified_context()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            der = tls.getpeercert(binary_form=True)
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject"], input=der,
                         capture_output=True, check=True).stdout.decode()
    return out.strip().rsplit("=", 1)[-1].strip()


if __name__ == "__main__":
    unittest.main()
