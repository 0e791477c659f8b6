"""S3 data sources made through bedrock-agent, synced from a real S3 server (moto)."""
import json
import unittest

from harness import S3Server, Server

ARN = "arn:aws:bedrock:us-east-1::foundation-model/minilm"
ROLE = "arn:aws:iam::123456789012:role/kb"


class S3DataSources(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s3 = S3Server()
        cls.s3.client.create_bucket(Bucket="handbook")
        put = cls.s3.client.put_object
        put(Bucket="handbook", Key="docs/lighthouse.txt",
            Body=b"The lighthouse keeper climbs 217 steps every evening to light the lamp.")
        put(Bucket="handbook", Key="docs/lighthouse.txt.metadata.json",
            Body=json.dumps({"metadataAttributes": {"region": "north"}}).encode())
        put(Bucket="handbook", Key="docs/volcano.md", Body=b"# Volcanoes\n\nMagma chambers refill slowly over centuries.")
        put(Bucket="handbook", Key="other/skipped.txt", Body=b"Outside the inclusion prefix.")
        cls.server = Server(extra_toml=f'[s3]\nendpoint_url = "{cls.s3.url}"\nregion = "us-east-1"\nallowed_buckets = ["handbook"]\n',
                            env={"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"})
        cls.ag = cls.server.agent()
        cls.rt = cls.server.runtime()
        cls.kb = cls.ag.create_knowledge_base(
            name="from-s3", roleArn=ROLE,
            knowledgeBaseConfiguration={"type": "VECTOR", "vectorKnowledgeBaseConfiguration": {"embeddingModelArn": ARN}},
        )["knowledgeBase"]["knowledgeBaseId"]

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        cls.s3.close()

    def test_create_sync_update_and_delete_an_s3_data_source(self):
        ds = self.ag.create_data_source(
            knowledgeBaseId=self.kb, name="handbook",
            dataSourceConfiguration={"type": "S3", "s3Configuration": {"bucketArn": "arn:aws:s3:::handbook", "inclusionPrefixes": ["docs/"]}},
            vectorIngestionConfiguration={"chunkingConfiguration": {"chunkingStrategy": "FIXED_SIZE",
                                                                    "fixedSizeChunkingConfiguration": {"maxTokens": 100, "overlapPercentage": 10}}},
        )["dataSource"]
        ds_id = ds["dataSourceId"]
        self.assertEqual(ds["dataSourceConfiguration"]["s3Configuration"]["bucketArn"], "arn:aws:s3:::handbook")
        self.assertEqual(ds["vectorIngestionConfiguration"]["chunkingConfiguration"]["fixedSizeChunkingConfiguration"]["maxTokens"], 100)

        job = self.server.sync(self.kb, ds_id)
        self.assertEqual(job["status"], "COMPLETE", job)
        self.assertEqual(job["statistics"]["numberOfDocumentsScanned"], 2)
        self.assertEqual(job["statistics"]["numberOfMetadataDocumentsScanned"], 1)
        self.assertEqual(job["statistics"]["numberOfNewDocumentsIndexed"], 2)

        top = self.rt.retrieve(knowledgeBaseId=self.kb, retrievalQuery={"text": "lighthouse keeper"})["retrievalResults"][0]
        self.assertEqual(top["location"], {"type": "S3", "s3Location": {"uri": "s3://handbook/docs/lighthouse.txt"}})
        self.assertEqual(top["metadata"]["region"], "north")
        self.assertEqual(top["metadata"]["x-amz-bedrock-kb-source-uri"], "s3://handbook/docs/lighthouse.txt")

        # An object changed in the bucket is re-indexed; an unchanged one is not.
        self.s3.client.put_object(Bucket="handbook", Key="docs/volcano.md", Body=b"# Volcanoes\n\nAsh clouds ground aircraft for days.")
        job = self.server.sync(self.kb, ds_id)
        self.assertEqual((job["statistics"]["numberOfModifiedDocumentsIndexed"], job["statistics"]["numberOfNewDocumentsIndexed"]), (1, 0))

        updated = self.ag.update_data_source(
            knowledgeBaseId=self.kb, dataSourceId=ds_id, name="handbook", description="the handbook bucket",
            dataSourceConfiguration={"type": "S3", "s3Configuration": {"bucketArn": "arn:aws:s3:::handbook", "inclusionPrefixes": ["docs/"]}},
        )["dataSource"]
        self.assertEqual(updated["description"], "the handbook bucket")
        listed = self.ag.list_data_sources(knowledgeBaseId=self.kb)["dataSourceSummaries"]
        self.assertEqual([d["dataSourceId"] for d in listed], [ds_id])

        with self.assertRaises(self.ag.exceptions.ValidationException):
            self.ag.create_data_source(
                knowledgeBaseId=self.kb, name="too-big",
                dataSourceConfiguration={"type": "S3", "s3Configuration": {"bucketArn": "arn:aws:s3:::handbook"}},
                vectorIngestionConfiguration={"chunkingConfiguration": {"chunkingStrategy": "FIXED_SIZE",
                                                                        "fixedSizeChunkingConfiguration": {"maxTokens": 1000, "overlapPercentage": 10}}})

        self.server.restart()
        ag, rt = self.server.agent(), self.server.runtime()
        self.assertEqual(ag.get_data_source(knowledgeBaseId=self.kb, dataSourceId=ds_id)["dataSource"]["description"], "the handbook bucket")
        self.assertEqual(len(rt.retrieve(knowledgeBaseId=self.kb, retrievalQuery={"text": "volcano"})["retrievalResults"]), 2)

        deleted = ag.delete_data_source(knowledgeBaseId=self.kb, dataSourceId=ds_id)
        self.assertEqual(deleted["status"], "DELETING")
        self.assertEqual(rt.retrieve(knowledgeBaseId=self.kb, retrievalQuery={"text": "volcano"})["retrievalResults"], [])
        with self.assertRaises(ag.exceptions.ResourceNotFoundException):
            ag.get_data_source(knowledgeBaseId=self.kb, dataSourceId=ds_id)

    def test_data_sources_of_declared_knowledge_bases_are_changed_in_the_file(self):
        ag = self.server.agent()  # a restart in another test may have moved the port
        with self.assertRaises(ag.exceptions.ValidationException) as e:
            ag.create_data_source(
                knowledgeBaseId="DEMOKB0001", name="x",
                dataSourceConfiguration={"type": "S3", "s3Configuration": {"bucketArn": "arn:aws:s3:::handbook"}})
        self.assertIn("knowledge-bases.toml", str(e.exception))


if __name__ == "__main__":
    unittest.main()
