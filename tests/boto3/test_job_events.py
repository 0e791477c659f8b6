"""Job events through the real `quarry serve`: every state change of a sync and every failed
document reach a webhook (a real HTTP server here, which checks each HMAC-SHA256 signature and
refuses the first attempts) and Amazon EventBridge (moto's, routing them by a rule to an SQS
queue); a webhook that is down while the server stops gets them all after the restart; one
that never answers gets its events in the dead-letter file; `quarry events tail` prints them."""
import hashlib
import hmac
import json
import os
import subprocess
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3

from harness import S3Server, Server, free_port

SECRET = "webhook-secret-for-tests"
STATES = ["STARTING", "IN_PROGRESS", "COMPLETE"]


class Webhook:
    """Records each POST; refuses (503) the first `refuse` requests."""

    def __init__(self, refuse=0, port=None):
        self.requests, self.refuse, self.lock = [], refuse, threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                with hook.lock:
                    hook.requests.append({"headers": dict(self.headers), "body": body})
                    refused = hook.refuse > 0
                    hook.refuse -= 1 if refused else 0
                self.send_response(503 if refused else 204)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", port or 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def accepted(self):
        """The events of the requests answered 2xx, in order (the refused ones come first)."""
        with self.lock:
            return [json.loads(r["body"]) for r in self.requests][self.initial_refusals:]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def wait_for(condition, timeout=60, what="the condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class JobEvents(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.aws = S3Server()  # moto: EventBridge and SQS as well
        kw = dict(endpoint_url=cls.aws.url, region_name="us-east-1", aws_access_key_id="test",
                  aws_secret_access_key="test")
        cls.sqs, events = boto3.client("sqs", **kw), boto3.client("events", **kw)
        cls.queue = cls.sqs.create_queue(QueueName="job-events")["QueueUrl"]
        arn = cls.sqs.get_queue_attributes(QueueUrl=cls.queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="quarry-jobs", EventPattern=json.dumps({"source": ["quarry"]}), State="ENABLED")
        events.put_targets(Rule="quarry-jobs", Targets=[{"Id": "queue", "Arn": arn}])
        cls.hook = Webhook(refuse=2)
        cls.hook.initial_refusals = 2
        cls.late_port = free_port()  # a webhook that is down until the restart
        cls.dead_port = free_port()  # nothing ever listens here
        sinks = f'''
[[server.event_sinks]]
type = "webhook"
url = "{cls.hook.url}"
secret_env = "QUARRY_WEBHOOK_SECRET"

[[server.event_sinks]]
type = "eventbridge"
endpoint_url = "{cls.aws.url}"
region = "us-east-1"

[[server.event_sinks]]
type = "webhook"
url = "http://127.0.0.1:{cls.late_port}/late"

[[server.event_sinks]]
type = "webhook"
url = "http://127.0.0.1:{cls.dead_port}/dead"
max_attempts = 2
'''
        cls.server = Server(extra_server_toml=sinks, env={
            "QUARRY_WEBHOOK_SECRET": SECRET, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"})
        with open(os.path.join(cls.server.dir, "docs", "broken.pdf"), "wb") as f:
            f.write(b"%PDF-1.7\nnot a PDF body")
        cls.job = cls.server.sync("DEMOKB0001", "DEMODS0001")

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        cls.hook.close()
        cls.aws.close()

    def test_a_webhook_gets_every_state_change_and_failure_signed(self):
        self.assertEqual(self.job["status"], "COMPLETE")
        self.assertEqual(self.job["statistics"]["numberOfDocumentsFailed"], 1)
        job_id = self.job["ingestionJobId"]
        events = wait_for(lambda: [e for e in self.hook.accepted() if e["ingestionJobId"] == job_id]
                          if len(self.hook.accepted()) >= 4 else None, what="four events at the webhook")
        states = [e["status"] for e in events if e["type"] == "ingestion-job.state"]
        self.assertEqual(states, STATES)
        failed = [e for e in events if e["type"] == "ingestion-job.document-failed"]
        self.assertEqual(len(failed), 1)
        self.assertTrue(failed[0]["documentUri"].endswith("/broken.pdf"), failed[0])
        self.assertIn("malformed pdf", failed[0]["reason"])
        self.assertEqual(events[-1]["statistics"], self.job["statistics"])
        for e in events:
            self.assertEqual((e["knowledgeBaseId"], e["dataSourceId"]), ("DEMOKB0001", "DEMODS0001"))
        with self.hook.lock:
            requests = list(self.hook.requests)
        for r in requests:
            expected = "sha256=" + hmac.new(SECRET.encode(), r["body"], hashlib.sha256).hexdigest()
            self.assertEqual(r["headers"]["x-quarry-signature"], expected)
            self.assertEqual(r["headers"]["x-quarry-event-id"], json.loads(r["body"])["id"])
        # The refused attempts were the first event, sent again with the same id.
        ids = [json.loads(r["body"])["id"] for r in requests]
        self.assertEqual(ids[0], ids[1])
        self.assertEqual(ids[1], ids[2])
        self.assertEqual(len(set(ids[2:])), len(ids[2:]), "each event delivered once it is accepted")

    def test_eventbridge_routes_them_to_a_queue(self):
        job_id = self.job["ingestionJobId"]
        seen = []

        def received():
            for m in self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10,
                                              WaitTimeSeconds=1).get("Messages", []):
                seen.append(json.loads(m["Body"]))
            return len(seen) >= 4

        wait_for(received, what="four events on the queue")
        self.assertEqual({m["source"] for m in seen}, {"quarry"})
        # At least once: an event sent again (a PutEvents answer lost to a timeout) carries the
        # same id, which is what a consumer drops duplicates by.
        details, ids = [], {}
        for m in seen:
            d = m["detail"]
            if d["id"] in ids:
                self.assertEqual(d, ids[d["id"]], "an event sent again is the same event")
            elif d["ingestionJobId"] == job_id:
                ids[d["id"]] = d
                details.append(d)
        self.assertEqual([d["status"] for d in details if d["type"] == "ingestion-job.state"], STATES)
        kinds = {m["detail-type"] for m in seen}
        self.assertEqual(kinds, {"Ingestion Job State Change", "Ingestion Job Document Failed"})

    def test_a_webhook_down_across_a_restart_gets_everything_and_a_dead_one_is_dead_lettered(self):
        job_id = self.job["ingestionJobId"]
        dead_letter = os.path.join(self.server.dir, "data", "events", "dead-letter.jsonl")
        def dead_letters():
            if not os.path.exists(dead_letter):
                return None
            with open(dead_letter) as f:
                lines = f.read().splitlines()
            return lines if len(lines) >= 4 else None

        lines = wait_for(dead_letters, what="four dead letters")
        letters = [json.loads(l) for l in lines]
        self.assertEqual({l["attempts"] for l in letters}, {2})
        self.assertTrue(all(l["sink"].startswith("webhook-") for l in letters))
        self.assertEqual([l["event"]["status"] for l in letters if l["event"]["type"] == "ingestion-job.state"], STATES)
        # The late webhook was down all along: restart the server with it up.
        self.server.stop()
        late = Webhook(port=self.late_port)
        late.initial_refusals = 0
        try:
            self.server.start()
            events = wait_for(lambda: late.accepted() if len(late.accepted()) >= 4 else None,
                              what="the queued events after the restart")
            self.assertEqual([e["status"] for e in events if e["type"] == "ingestion-job.state"
                              and e["ingestionJobId"] == job_id], STATES)
        finally:
            late.close()

    def test_events_tail_prints_the_knowledge_bases_events(self):
        done = subprocess.run([os.environ["QUARRY_BIN"], "--config", os.path.join(self.server.dir, "knowledge-bases.toml"),
                               "events", "tail", "demo", "--from-start", "--count", "4"],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        events = [json.loads(l) for l in done.stdout.splitlines()]
        self.assertEqual([e["status"] for e in events if e["type"] == "ingestion-job.state"][:3], STATES)
        self.assertEqual(sum(e["type"] == "ingestion-job.document-failed" for e in events), 1)


if __name__ == "__main__":
    unittest.main()
