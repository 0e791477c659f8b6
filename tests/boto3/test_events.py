"""Change events (EventBridge's S3 events on POST /events), schedules, and one job per data
source across processes, against a real S3 server (moto)."""
import json
import os
import subprocess
import time
import unittest

import boto3

from harness import S3Server, Server

EVENTS_KEY = "events-test-key"


def s3_event(kind, bucket, key):
    return {"version": "0", "source": "aws.s3", "detail-type": kind, "account": "123456789012",
            "region": "us-east-1", "detail": {"bucket": {"name": bucket}, "object": {"key": key}}}


class Events(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s3 = S3Server()
        for bucket in ("watched", "scheduled", "unrelated", "notified"):
            cls.s3.client.create_bucket(Bucket=bucket)
        sqs = boto3.client("sqs", endpoint_url=cls.s3.url, region_name="us-east-1",
                           aws_access_key_id="test", aws_secret_access_key="test")
        queue_url = sqs.create_queue(QueueName="notify")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        cls.s3.client.put_bucket_notification_configuration(Bucket="notified", NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}]})
        extra = f'''
[s3]
endpoint_url = "{cls.s3.url}"
region = "us-east-1"

[[knowledge_bases]]
id = "S3KB000001"
name = "watched"
embedding_model = "minilm"

[[knowledge_bases.data_sources]]
id = "WATCHDS001"
name = "watched"
type = "s3"
bucket = "watched"
inclusion_prefixes = ["in/"]

[[knowledge_bases.data_sources]]
id = "SCHEDDS001"
name = "scheduled"
type = "s3"
bucket = "scheduled"
sync_interval = "2s"

[[knowledge_bases.data_sources]]
id = "NOTIFYDS01"
name = "notified"
type = "s3"
bucket = "notified"
sqs_queue_url = "{queue_url}"
'''
        cls.server = Server(extra_toml=extra, generated_docs=150,
                            extra_server_toml='events_api_key_env = "QUARRY_TEST_EVENTS_KEY"',
                            env={"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                                 "QUARRY_TEST_EVENTS_KEY": EVENTS_KEY})

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        cls.s3.close()

    def post(self, events, key=EVENTS_KEY):
        status, _, body = self.server.raw("POST", "/events", json.dumps(events).encode(),
                                          {"Content-Type": "application/json", "x-api-key": key})
        return status, json.loads(body)

    def wait_job(self, answer):
        [job] = answer["ingestionJobs"]
        return self.server.wait(job["knowledgeBaseId"], job["dataSourceId"], job["ingestionJobId"])

    def sources(self, text="note"):
        rt = self.server.runtime()
        results = rt.retrieve(knowledgeBaseId="S3KB000001", retrievalQuery={"text": text},
                              retrievalConfiguration={"vectorSearchConfiguration": {
                                  "numberOfResults": 100,
                                  "filter": {"equals": {"key": "x-amz-bedrock-kb-data-source-id", "value": "WATCHDS001"}}}})
        return sorted({r["location"]["s3Location"]["uri"] for r in results["retrievalResults"]})

    def test_events_sync_just_the_objects_they_name(self):
        put = self.s3.client.put_object
        put(Bucket="watched", Key="in/a.txt", Body=b"Note A: the harbour crane lifts forty tonnes.")
        put(Bucket="watched", Key="in/b.txt", Body=b"Note B: the ferry leaves at seven.")
        status, answer = self.post(s3_event("Object Created", "watched", "in/a.txt"))
        self.assertEqual(status, 200, answer)
        self.assertEqual((answer["accepted"], answer["ignored"]), (1, 0))
        job = self.wait_job(answer)
        self.assertEqual(job["status"], "COMPLETE")
        self.assertEqual((job["statistics"]["numberOfDocumentsScanned"], job["statistics"]["numberOfNewDocumentsIndexed"]), (1, 1))
        # b.txt was never announced, so it is not indexed: the event synced just its key.
        self.assertEqual(self.sources(), ["s3://watched/in/a.txt"])

        # A batch with a duplicate, an event outside the inclusion prefix, one for a bucket no
        # data source reads, and a non-S3 event.
        status, answer = self.post([s3_event("Object Created", "watched", "in/b.txt"),
                                    s3_event("Object Created", "watched", "in/b.txt"),
                                    s3_event("Object Created", "watched", "out/c.txt"),
                                    s3_event("Object Created", "unrelated", "in/d.txt"),
                                    {"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification", "detail": {}}])
        self.assertEqual((answer["accepted"], answer["ignored"]), (2, 3))
        job = self.wait_job(answer)
        self.assertEqual(job["statistics"]["numberOfNewDocumentsIndexed"], 1)
        self.assertEqual(self.sources(), ["s3://watched/in/a.txt", "s3://watched/in/b.txt"])

        # The object's current state wins: a late "created" event for a deleted object deletes it,
        # and a "deleted" event for an object that exists leaves it indexed.
        self.s3.client.delete_object(Bucket="watched", Key="in/a.txt")
        job = self.wait_job(self.post(s3_event("Object Created", "watched", "in/a.txt"))[1])
        self.assertEqual(job["statistics"]["numberOfDocumentsDeleted"], 1)
        job = self.wait_job(self.post(s3_event("Object Deleted", "watched", "in/b.txt"))[1])
        self.assertEqual(job["statistics"]["numberOfDocumentsDeleted"], 0)
        self.assertEqual(self.sources(), ["s3://watched/in/b.txt"])

    def test_sqs_notifications_sync_changes_without_a_manual_sync(self):
        rt = self.server.runtime()

        def notified_sources():
            results = rt.retrieve(knowledgeBaseId="S3KB000001", retrievalQuery={"text": "lighthouse"},
                                  retrievalConfiguration={"vectorSearchConfiguration": {
                                      "numberOfResults": 100,
                                      "filter": {"equals": {"key": "x-amz-bedrock-kb-data-source-id", "value": "NOTIFYDS01"}}}})
            return sorted(r["location"]["s3Location"]["uri"] for r in results["retrievalResults"])

        def eventually(expected):
            deadline = time.time() + 60
            while time.time() < deadline:
                if notified_sources() == expected:
                    return
                time.sleep(0.5)
            self.fail(f"still {notified_sources()} after 60 s, expected {expected}")

        self.s3.client.put_object(Bucket="notified", Key="with space/keeper.txt", Body=b"The lighthouse keeper trims the wick.")
        eventually(["s3://notified/with space/keeper.txt"])
        self.s3.client.delete_object(Bucket="notified", Key="with space/keeper.txt")
        eventually([])

    def test_a_wrong_events_key_is_denied(self):
        status, answer = self.post(s3_event("Object Created", "watched", "in/a.txt"), key="wrong")
        self.assertEqual(status, 403)
        self.assertIn("x-api-key", answer["message"])

    def test_scheduled_data_sources_sync_by_themselves(self):
        self.s3.client.put_object(Bucket="scheduled", Key="timetable.txt", Body=b"The night bus runs every twenty minutes.")
        rt = self.server.runtime()
        deadline = time.time() + 60
        while time.time() < deadline:
            results = rt.retrieve(knowledgeBaseId="S3KB000001", retrievalQuery={"text": "night bus"},
                                  retrievalConfiguration={"vectorSearchConfiguration": {
                                      "filter": {"equals": {"key": "x-amz-bedrock-kb-data-source-id", "value": "SCHEDDS001"}}}})
            if results["retrievalResults"]:
                self.assertEqual(results["retrievalResults"][0]["location"]["s3Location"]["uri"], "s3://scheduled/timetable.txt")
                jobs = self.server.agent().list_ingestion_jobs(knowledgeBaseId="S3KB000001", dataSourceId="SCHEDDS001")["ingestionJobSummaries"]
                self.assertTrue(all(j.get("description") == "scheduled" for j in jobs))
                return
            time.sleep(0.5)
        self.fail("the scheduled data source was not synced within 60 s")

    def test_the_cli_is_refused_while_the_server_syncs_the_same_data_source(self):
        ag = self.server.agent()
        job = ag.start_ingestion_job(knowledgeBaseId="BULKKB0001", dataSourceId="BULKDS0001")["ingestionJob"]
        cli = subprocess.run([os.environ["QUARRY_BIN"], "--config", os.path.join(self.server.dir, "knowledge-bases.toml"),
                              "sync", "bulk"], capture_output=True, text=True, timeout=120)
        self.assertNotEqual(cli.returncode, 0)
        self.assertIn("ConflictException", cli.stderr)
        self.assertIn(job["ingestionJobId"], cli.stderr)
        self.assertEqual(self.server.wait("BULKKB0001", "BULKDS0001", job["ingestionJobId"], timeout=300)["status"], "COMPLETE")


if __name__ == "__main__":
    unittest.main()
