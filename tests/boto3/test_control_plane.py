"""Knowledge bases, data sources and ingestion jobs through boto3's bedrock-agent client."""
import time
import unittest

from harness import Server

ARN = "arn:aws:bedrock:us-east-1::foundation-model/minilm"


def vector_config(model_arn=ARN):
    return {"type": "VECTOR", "vectorKnowledgeBaseConfiguration": {"embeddingModelArn": model_arn}}


class ControlPlane(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(generated_docs=150, extra_toml="[s3]\nallowed_buckets = [\"shapes\"]\n")
        cls.ag = cls.server.agent()

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def test_declared_knowledge_bases_and_data_sources_are_listed(self):
        summaries = self.ag.list_knowledge_bases()["knowledgeBaseSummaries"]
        self.assertEqual(sorted(s["name"] for s in summaries), ["bulk", "demo"])
        kb = self.ag.get_knowledge_base(knowledgeBaseId="DEMOKB0001")["knowledgeBase"]
        self.assertEqual(kb["status"], "ACTIVE")
        self.assertEqual(kb["description"], "the fixtures")
        self.assertEqual(kb["knowledgeBaseConfiguration"]["vectorKnowledgeBaseConfiguration"]["embeddingModelArn"], ARN)
        page = self.ag.list_knowledge_bases(maxResults=1)
        self.assertEqual(len(page["knowledgeBaseSummaries"]), 1)
        rest = self.ag.list_knowledge_bases(maxResults=1, nextToken=page["nextToken"])
        self.assertNotIn("nextToken", rest)
        sources = self.ag.list_data_sources(knowledgeBaseId="DEMOKB0001")["dataSourceSummaries"]
        self.assertEqual([(s["dataSourceId"], s["status"]) for s in sources], [("DEMODS0001", "AVAILABLE")])
        ds = self.ag.get_data_source(knowledgeBaseId="DEMOKB0001", dataSourceId="DEMODS0001")["dataSource"]
        chunking = ds["vectorIngestionConfiguration"]["chunkingConfiguration"]
        self.assertEqual(chunking["chunkingStrategy"], "FIXED_SIZE")
        with self.assertRaises(self.ag.exceptions.ResourceNotFoundException):
            self.ag.get_data_source(knowledgeBaseId="DEMOKB0001", dataSourceId="NOSUCHDS01")
        with self.assertRaises(self.ag.exceptions.ResourceNotFoundException):
            self.ag.get_knowledge_base(knowledgeBaseId="NOSUCHKB01")

    def test_an_ingestion_job_runs_and_is_listed(self):
        job = self.server.sync("DEMOKB0001", "DEMODS0001")
        self.assertEqual(job["status"], "COMPLETE")
        stats = job["statistics"]
        self.assertEqual(stats["numberOfDocumentsScanned"], 5)
        self.assertEqual(stats["numberOfMetadataDocumentsScanned"], 4)
        # The first sync of this data source in this server's life indexes every document.
        self.assertEqual(stats["numberOfNewDocumentsIndexed"], 5)
        self.assertEqual(stats["numberOfDocumentsFailed"], 0)
        listed = self.ag.list_ingestion_jobs(knowledgeBaseId="DEMOKB0001", dataSourceId="DEMODS0001")["ingestionJobSummaries"]
        self.assertIn(job["ingestionJobId"], [j["ingestionJobId"] for j in listed])
        complete = self.ag.list_ingestion_jobs(
            knowledgeBaseId="DEMOKB0001", dataSourceId="DEMODS0001",
            filters=[{"attribute": "STATUS", "operator": "EQ", "values": ["COMPLETE"]}],
            sortBy={"attribute": "STARTED_AT", "order": "DESCENDING"})["ingestionJobSummaries"]
        self.assertTrue(all(j["status"] == "COMPLETE" for j in complete))
        self.assertEqual(complete[0]["ingestionJobId"], listed[0]["ingestionJobId"])

    def test_one_job_per_data_source_and_stop(self):
        job = self.ag.start_ingestion_job(knowledgeBaseId="BULKKB0001", dataSourceId="BULKDS0001", description="bulk load")["ingestionJob"]
        self.assertEqual(job["status"], "STARTING")
        self.assertEqual(job["description"], "bulk load")
        with self.assertRaises(self.ag.exceptions.ConflictException):
            self.ag.start_ingestion_job(knowledgeBaseId="BULKKB0001", dataSourceId="BULKDS0001")
        time.sleep(0.5)
        stopping = self.ag.stop_ingestion_job(knowledgeBaseId="BULKKB0001", dataSourceId="BULKDS0001", ingestionJobId=job["ingestionJobId"])["ingestionJob"]
        self.assertEqual(stopping["status"], "STOPPING")
        stopped = self.server.wait("BULKKB0001", "BULKDS0001", job["ingestionJobId"])
        self.assertEqual(stopped["status"], "STOPPED")
        self.assertLess(stopped["statistics"]["numberOfNewDocumentsIndexed"], 150)
        with self.assertRaises(self.ag.exceptions.ConflictException):
            self.ag.stop_ingestion_job(knowledgeBaseId="BULKKB0001", dataSourceId="BULKDS0001", ingestionJobId=job["ingestionJobId"])
        # The next job picks up where the stopped one left off.
        done = self.server.sync("BULKKB0001", "BULKDS0001", timeout=300)
        self.assertEqual(done["status"], "COMPLETE")
        self.assertEqual(done["statistics"]["numberOfNewDocumentsIndexed"] + stopped["statistics"]["numberOfNewDocumentsIndexed"], 150)

    def test_knowledge_bases_made_through_the_api_persist(self):
        kb = self.ag.create_knowledge_base(
            name="made-by-api", description="first", roleArn="arn:aws:iam::123456789012:role/kb",
            knowledgeBaseConfiguration=vector_config())["knowledgeBase"]
        kb_id = kb["knowledgeBaseId"]
        self.assertEqual(kb["status"], "ACTIVE")
        self.assertRegex(kb_id, r"^[0-9A-Z]{10}$")
        updated = self.ag.update_knowledge_base(
            knowledgeBaseId=kb_id, name="made-by-api", description="second",
            roleArn="arn:aws:iam::123456789012:role/kb", knowledgeBaseConfiguration=vector_config())["knowledgeBase"]
        self.assertEqual(updated["description"], "second")
        with self.assertRaises(self.ag.exceptions.ConflictException):
            self.ag.create_knowledge_base(name="made-by-api", roleArn="arn:aws:iam::123456789012:role/kb",
                                          knowledgeBaseConfiguration=vector_config())
        with self.assertRaises(self.ag.exceptions.ValidationException) as e:
            self.ag.create_knowledge_base(name="other", roleArn="arn:aws:iam::123456789012:role/kb",
                                          knowledgeBaseConfiguration=vector_config("arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0"))
        self.assertIn("titan", str(e.exception))
        with self.assertRaises(self.ag.exceptions.ValidationException):
            self.ag.delete_knowledge_base(knowledgeBaseId="DEMOKB0001")

        self.server.restart()
        ag = self.server.agent()
        kb = ag.get_knowledge_base(knowledgeBaseId=kb_id)["knowledgeBase"]
        self.assertEqual((kb["name"], kb["description"]), ("made-by-api", "second"))
        rt = self.server.runtime()
        self.assertEqual(rt.retrieve(knowledgeBaseId=kb_id, retrievalQuery={"text": "x"})["retrievalResults"], [])
        deleted = ag.delete_knowledge_base(knowledgeBaseId=kb_id)
        self.assertEqual(deleted["status"], "DELETING")
        with self.assertRaises(ag.exceptions.ResourceNotFoundException):
            ag.get_knowledge_base(knowledgeBaseId=kb_id)
        type(self).ag = ag

    def test_hierarchical_and_semantic_chunking_configurations_round_trip(self):
        kb_id = self.ag.create_knowledge_base(
            name="chunking-shapes", roleArn="arn:aws:iam::123456789012:role/kb",
            knowledgeBaseConfiguration=vector_config())["knowledgeBase"]["knowledgeBaseId"]
        s3 = {"type": "S3", "s3Configuration": {"bucketArn": "arn:aws:s3:::shapes"}}
        hierarchical = {"chunkingStrategy": "HIERARCHICAL", "hierarchicalChunkingConfiguration": {
            "levelConfigurations": [{"maxTokens": 1500}, {"maxTokens": 200}], "overlapTokens": 60}}
        semantic = {"chunkingStrategy": "SEMANTIC", "semanticChunkingConfiguration": {
            "maxTokens": 200, "bufferSize": 1, "breakpointPercentileThreshold": 90}}
        for name, chunking in [("parents", hierarchical), ("meaning", semantic)]:
            ds = self.ag.create_data_source(knowledgeBaseId=kb_id, name=name, dataSourceConfiguration=s3,
                                            vectorIngestionConfiguration={"chunkingConfiguration": chunking})["dataSource"]
            got = self.ag.get_data_source(knowledgeBaseId=kb_id, dataSourceId=ds["dataSourceId"])["dataSource"]
            self.assertEqual(got["vectorIngestionConfiguration"]["chunkingConfiguration"], chunking)
        # Out of Bedrock's bounds in ways botocore does not check itself.
        overlap_too_big = {"chunkingStrategy": "HIERARCHICAL", "hierarchicalChunkingConfiguration": {
            "levelConfigurations": [{"maxTokens": 1500}, {"maxTokens": 200}], "overlapTokens": 250}}
        with self.assertRaises(self.ag.exceptions.ValidationException) as e:
            self.ag.create_data_source(knowledgeBaseId=kb_id, name="bad", dataSourceConfiguration=s3,
                                       vectorIngestionConfiguration={"chunkingConfiguration": overlap_too_big})
        self.assertIn("overlap_tokens", str(e.exception))
        bad_threshold = {"chunkingStrategy": "SEMANTIC", "semanticChunkingConfiguration": {
            "maxTokens": 200, "bufferSize": 0, "breakpointPercentileThreshold": 100}}
        with self.assertRaises(self.ag.exceptions.ValidationException) as e:
            self.ag.create_data_source(knowledgeBaseId=kb_id, name="bad", dataSourceConfiguration=s3,
                                       vectorIngestionConfiguration={"chunkingConfiguration": bad_threshold})
        self.assertIn("breakpoint_percentile_threshold", str(e.exception))


if __name__ == "__main__":
    unittest.main()
