"""Hardening, the ways in and the ways to learn what one should not: bodies bound to their
signature, knowledge-base names that cannot shadow, grants that follow knowledge bases,
sessions tied to their owner, buckets an API caller may read, one answer for "not yours"
and "not there", bounded filters and checked list tokens, Bedrock's chunking bounds, and an
open (loopback) server that browsers elsewhere cannot reach."""
import hashlib
import json
import socket
import unittest

from botocore.config import Config

from harness import KEY_ID, LIMITED_KEY_ID, LIMITED_SECRET, SECRET, Server
from openai_server import OpenAiServer
from sigv4 import sign

TEAM_A, TEAM_A_SECRET = "AKIDQUARRYTEAMA00001", "team-a-secret"
TEAM_B, TEAM_B_SECRET = "AKIDQUARRYTEAMB00001", "team-b-secret"
READER_A, READER_A_SECRET = "AKIDQUARRYREADA00001", "reader-a-secret"
KEYS = f'''
[[server.access_keys]]
id = "{TEAM_A}"
secret_env = "TEAM_A_SECRET"
knowledge_bases = ["team-a", "team-a-docs-kb"]
buckets = ["team-a-docs"]

[[server.access_keys]]
id = "{TEAM_B}"
secret_env = "TEAM_B_SECRET"
knowledge_bases = ["team-b", "demo"]

[[server.access_keys]]
id = "{READER_A}"
secret_env = "READER_A_SECRET"
knowledge_bases = ["team-a"]
'''
ARN = "arn:aws:bedrock:us-east-1::foundation-model/minilm"
# What a client that does not check Bedrock's shapes itself (any HTTP client) can send.
UNCHECKED = Config(retries={"total_max_attempts": 1}, read_timeout=30, parameter_validation=False)
RETRIEVE = "/knowledgebases/DEMOKB0001/retrieve"


def kb_request(name):
    return dict(name=name, roleArn="arn:aws:iam::123456789012:role/quarry",
                knowledgeBaseConfiguration={"type": "VECTOR", "vectorKnowledgeBaseConfiguration": {
                    "embeddingModelArn": ARN}})


def s3_source(bucket, chunking=None, name=None):
    request = dict(name=name or f"docs-{bucket.replace('.', '-')}", dataSourceConfiguration={
        "type": "S3", "s3Configuration": {"bucketArn": f"arn:aws:s3:::{bucket}"}})
    if chunking:
        request["vectorIngestionConfiguration"] = {"chunkingConfiguration": chunking}
    return request


class Hardening(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.llm = OpenAiServer()
        cls.server = Server(
            extra_keys=KEYS,
            extra_server_toml="",
            extra_toml=f'''
[s3]
endpoint_url = "http://127.0.0.1:9"
allowed_buckets = ["shared-docs"]

[models.cite]
kind = "openai"
base_url = "{cls.llm.url}"
model = "cite"
''',
            env={"TEAM_A_SECRET": TEAM_A_SECRET, "TEAM_B_SECRET": TEAM_B_SECRET,
                 "READER_A_SECRET": READER_A_SECRET})
        job = cls.server.sync("DEMOKB0001", "DEMODS0001")
        assert job["status"] == "COMPLETE", job

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        cls.llm.close()

    def agent(self, key, secret):
        return self.server.agent(key=key, secret=secret)

    def raw_signed(self, path, body, **kw):
        return sign(self.server.url + path, body, KEY_ID, SECRET, **kw)

    # --- bodies bound to the signature -------------------------------------------------

    def test_a_signature_does_not_carry_another_body(self):
        signed_body = json.dumps({"retrievalQuery": {"text": "battery"}}).encode()
        headers = self.raw_signed(RETRIEVE, signed_body,
                                  content_sha256=hashlib.sha256(signed_body).hexdigest())
        status, _, _ = self.server.raw("POST", RETRIEVE, signed_body, headers)
        self.assertEqual(status, 200)
        other = json.dumps({"retrievalQuery": {"text": "vacation days"}}).encode()
        status, h, body = self.server.raw("POST", RETRIEVE, other, headers)
        self.assertEqual(status, 403, body)
        self.assertEqual(h.get("x-amzn-ErrorType"), "AccessDeniedException")
        self.assertIn("x-amz-content-sha256", json.loads(body)["message"])

    def test_unsigned_payload_is_refused(self):
        body = json.dumps({"retrievalQuery": {"text": "battery"}}).encode()
        headers = self.raw_signed(RETRIEVE, body, payload_hash="UNSIGNED-PAYLOAD",
                                  content_sha256="UNSIGNED-PAYLOAD")
        status, _, payload = self.server.raw("POST", RETRIEVE, body, headers)
        self.assertEqual(status, 403, payload)
        self.assertIn("UNSIGNED-PAYLOAD", json.loads(payload)["message"])

    # --- names, grants, renames ----------------------------------------------------------

    def test_names_cannot_shadow_and_grants_follow_their_knowledge_base(self):
        a, b, reader = (self.agent(TEAM_A, TEAM_A_SECRET), self.agent(TEAM_B, TEAM_B_SECRET),
                        self.agent(READER_A, READER_A_SECRET))
        admin = self.server.agent()
        a_id = a.create_knowledge_base(**kb_request("team-a"))["knowledgeBase"]["knowledgeBaseId"]
        b_id = b.create_knowledge_base(**kb_request("team-b"))["knowledgeBase"]["knowledgeBaseId"]
        # A may not take B's name for its own, nor may anyone create it again or use an id
        # as a name.
        with self.assertRaises(a.exceptions.ConflictException):
            a.update_knowledge_base(knowledgeBaseId=a_id, **update_request("team-b"))
        with self.assertRaises(admin.exceptions.ConflictException):
            admin.create_knowledge_base(**kb_request("team-b"))
        with self.assertRaises(admin.exceptions.ConflictException):
            admin.create_knowledge_base(**kb_request(b_id))
        self.assertEqual(b.get_knowledge_base(knowledgeBaseId="team-b")["knowledgeBase"]["knowledgeBaseId"], b_id)
        with self.assertRaises(a.exceptions.AccessDeniedException):
            a.get_knowledge_base(knowledgeBaseId="team-b")

        # A rename moves no grant: the reader of team-a keeps it under its new name, and a
        # newcomer taking the old name is nobody's but its creator's.
        a.update_knowledge_base(knowledgeBaseId=a_id, **update_request("team-a-v2"))
        self.assertEqual(reader.get_knowledge_base(knowledgeBaseId=a_id)["knowledgeBase"]["name"], "team-a-v2")
        newcomer = admin.create_knowledge_base(**kb_request("team-a"))["knowledgeBase"]["knowledgeBaseId"]
        for key in (a, reader):
            with self.assertRaises(key.exceptions.AccessDeniedException):
                key.get_knowledge_base(knowledgeBaseId=newcomer)
            with self.assertRaises(key.exceptions.AccessDeniedException):
                key.get_knowledge_base(knowledgeBaseId="team-a")

        # And so after a restart.
        self.server.restart()
        reader = self.agent(READER_A, READER_A_SECRET)
        self.assertEqual(reader.get_knowledge_base(knowledgeBaseId=a_id)["knowledgeBase"]["name"], "team-a-v2")
        with self.assertRaises(reader.exceptions.AccessDeniedException):
            reader.get_knowledge_base(knowledgeBaseId=newcomer)
        names = sorted(kb["name"] for kb in reader.list_knowledge_bases()["knowledgeBaseSummaries"])
        self.assertEqual(names, ["team-a-v2"])

    # --- one answer for "not yours" and "not there" ----------------------------------------

    def test_a_key_learns_nothing_of_knowledge_bases_it_is_not_granted(self):
        rt = self.server.runtime(key=LIMITED_KEY_ID, secret=LIMITED_SECRET)
        answers = []
        for kb in ("DEMOKB0001", "NOPEKB0001"):
            with self.assertRaises(rt.exceptions.AccessDeniedException) as e:
                rt.retrieve(knowledgeBaseId=kb, retrievalQuery={"text": "battery"})
            answers.append(str(e.exception).replace(kb, "KB"))
        self.assertEqual(answers[0], answers[1])
        ag = self.server.agent(key=LIMITED_KEY_ID, secret=LIMITED_SECRET)
        statuses = []
        for kb in ("DEMOKB0001", "NOPEKB0001"):
            try:
                ag.list_data_sources(knowledgeBaseId=kb)
            except ag.exceptions.ClientError as e:
                statuses.append((e.response["ResponseMetadata"]["HTTPStatusCode"],
                                 e.response["Error"]["Message"].replace(kb, "KB")))
        self.assertEqual(len(statuses), 2)
        self.assertEqual(statuses[0], statuses[1])
        # A key granted everything still hears "not found" for what is not there.
        with self.assertRaises(self.server.runtime().exceptions.ResourceNotFoundException):
            self.server.runtime().retrieve(knowledgeBaseId="NOPEKB0001", retrievalQuery={"text": "x"})

    # --- sessions --------------------------------------------------------------------------

    def test_a_session_belongs_to_the_key_and_knowledge_base_that_made_it(self):
        config = {"type": "KNOWLEDGE_BASE", "knowledgeBaseConfiguration": {
            "knowledgeBaseId": "DEMOKB0001", "modelArn": "cite"}}
        owner = self.server.runtime()
        first = owner.retrieve_and_generate(input={"text": "vacation days"},
                                            retrieveAndGenerateConfiguration=config)
        session = first["sessionId"]
        other = self.server.runtime(key=TEAM_B, secret=TEAM_B_SECRET)
        with self.assertRaises(other.exceptions.ValidationException) as stolen:
            other.retrieve_and_generate(input={"text": "and then?"}, sessionId=session,
                                        retrieveAndGenerateConfiguration=config)
        with self.assertRaises(other.exceptions.ValidationException) as unknown:
            other.retrieve_and_generate(input={"text": "and then?"}, sessionId="never-made-1",
                                        retrieveAndGenerateConfiguration=config)
        self.assertEqual(str(stolen.exception).replace(session, "S"),
                         str(unknown.exception).replace("never-made-1", "S"))
        # The owner's session still has just its own turn.
        again = owner.retrieve_and_generate(input={"text": "and then?"}, sessionId=session,
                                            retrieveAndGenerateConfiguration=config)
        self.assertEqual(again["sessionId"], session)
        last = json.dumps(self.llm.requests("cite")[-1]["body"]["messages"])
        self.assertIn("vacation days", last)
        self.assertEqual(last.count("and then?"), 1)

    # --- buckets ---------------------------------------------------------------------------

    def test_api_data_sources_read_only_allowed_buckets(self):
        a = self.agent(TEAM_A, TEAM_A_SECRET)
        kb = a.create_knowledge_base(**kb_request("team-a-docs-kb"))["knowledgeBase"]["knowledgeBaseId"]
        made = [a.create_data_source(knowledgeBaseId=kb, **s3_source(bucket))["dataSource"]["dataSourceId"]
                for bucket in ("team-a-docs", "shared-docs")]
        self.assertEqual(len(made), 2)
        with self.assertRaises(a.exceptions.AccessDeniedException) as e:
            a.create_data_source(knowledgeBaseId=kb, **s3_source("team-b-docs"))
        self.assertIn("team-b-docs", str(e.exception))
        for bad in ("a..b", "Company-Docs", "ab", "192.168.0.1", "docs-"):
            with self.assertRaises(a.exceptions.ValidationException, msg=bad):
                a.create_data_source(knowledgeBaseId=kb, **s3_source(bad))
        # The key's own buckets are its own: a key granted every knowledge base does not
        # get them.
        admin = self.server.agent()
        with self.assertRaises(admin.exceptions.AccessDeniedException):
            admin.create_data_source(knowledgeBaseId=kb, **s3_source("team-a-docs", name="admins"))
        # Nor can an update move a data source to a bucket it may not read.
        with self.assertRaises(a.exceptions.AccessDeniedException):
            a.update_data_source(knowledgeBaseId=kb, dataSourceId=made[0],
                                 **s3_source("team-b-docs", name="docs-team-a-docs"))
        self.assertEqual(len(a.list_data_sources(knowledgeBaseId=kb)["dataSourceSummaries"]), 2)

    # --- filters, tokens, chunking ---------------------------------------------------------

    def test_filters_are_bounded(self):
        rt = self.server.runtime(config=UNCHECKED)
        clauses = [{"equals": {"key": "k", "value": i}} for i in range(20_000)]
        for flt in ({"orAll": clauses},
                    {"andAll": [{"equals": {"key": "k", "value": 1}}]}):
            with self.assertRaises(rt.exceptions.ValidationException):
                rt.retrieve(knowledgeBaseId="DEMOKB0001", retrievalQuery={"text": "battery"},
                            retrievalConfiguration={"vectorSearchConfiguration": {"filter": flt}})
        deep = {"equals": {"key": "k", "value": 0}}
        for _ in range(6):
            deep = {"andAll": [deep, {"equals": {"key": "k", "value": 1}}]}
        with self.assertRaises(rt.exceptions.ValidationException) as e:
            rt.retrieve(knowledgeBaseId="DEMOKB0001", retrievalQuery={"text": "battery"},
                        retrievalConfiguration={"vectorSearchConfiguration": {"filter": deep}})
        self.assertIn("nest", str(e.exception))

    def test_list_tokens_are_checked(self):
        ag = self.server.agent()
        for token in ("offset-18446744073709551615", "offset-99999999999999999999", "offset--3", "x"):
            with self.assertRaises(ag.exceptions.ValidationException):
                ag.list_knowledge_bases(nextToken=token)
            with self.assertRaises(ag.exceptions.ValidationException):
                ag.list_ingestion_jobs(knowledgeBaseId="DEMOKB0001", dataSourceId="DEMODS0001", nextToken=token)
        self.assertIn("knowledgeBaseSummaries", ag.list_knowledge_bases(maxResults=1))

    def test_chunking_bounds_are_bedrocks(self):
        ag = self.server.agent(config=UNCHECKED)
        kb = ag.create_knowledge_base(**kb_request("chunking-bounds"))["knowledgeBase"]["knowledgeBaseId"]
        for chunking in (
            {"chunkingStrategy": "FIXED_SIZE", "fixedSizeChunkingConfiguration": {"maxTokens": 0, "overlapPercentage": 20}},
            {"chunkingStrategy": "FIXED_SIZE", "fixedSizeChunkingConfiguration": {"maxTokens": 100, "overlapPercentage": 0}},
            {"chunkingStrategy": "HIERARCHICAL", "hierarchicalChunkingConfiguration": {
                "levelConfigurations": [{"maxTokens": 1500}, {"maxTokens": 200}], "overlapTokens": 0}},
            {"chunkingStrategy": "SEMANTIC", "semanticChunkingConfiguration": {
                "maxTokens": 200, "bufferSize": 2, "breakpointPercentileThreshold": 95}},
        ):
            with self.assertRaises(ag.exceptions.ValidationException, msg=json.dumps(chunking)):
                ag.create_data_source(knowledgeBaseId=kb, **s3_source("shared-docs", chunking))
        self.assertEqual(ag.list_data_sources(knowledgeBaseId=kb)["dataSourceSummaries"], [])


def update_request(name):
    return kb_request(name)


class OpenMode(unittest.TestCase):
    """No access keys: loopback only, and no browser elsewhere may use it."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server(auth=False)
        cls.port = int(cls.server.url.rsplit(":", 1)[1])

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def request(self, headers, method="POST", path=RETRIEVE):
        body = b'{"retrievalQuery": {"text": "battery"}}' if method == "POST" else b""
        lines = [f"{method} {path} HTTP/1.1", f"content-length: {len(body)}", "content-type: text/plain",
                 "connection: close"] + [f"{k}: {v}" for k, v in headers.items()]
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as s:
            s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        return int(reply.split(b" ", 2)[1]), reply

    def test_foreign_host_names_are_refused(self):
        for host in (f"evil.example:{self.port}", "attacker.test", f"10.0.0.1:{self.port}"):
            status, reply = self.request({"host": host})
            self.assertEqual(status, 403, reply)
            self.assertIn(b"loopback", reply)
            # Nor are the metrics read through a rebound name.
            status, reply = self.request({"host": host}, method="GET", path="/metrics")
            self.assertEqual(status, 403, reply)

    def test_cross_site_origins_are_refused(self):
        status, reply = self.request({"host": f"127.0.0.1:{self.port}", "origin": "https://evil.example"})
        self.assertEqual(status, 403, reply)
        self.assertIn(b"Origin", reply)

    def test_loopback_and_same_origin_requests_are_served(self):
        for headers in ({"host": f"127.0.0.1:{self.port}"}, {"host": f"localhost:{self.port}"},
                        {"host": f"127.0.0.1:{self.port}", "origin": f"http://127.0.0.1:{self.port}"}):
            status, reply = self.request(headers)
            self.assertEqual(status, 200, reply)


if __name__ == "__main__":
    unittest.main()
