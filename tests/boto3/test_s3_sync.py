"""Full syncs of an S3 bucket through the API: 1,500 objects (more than one ListObjectsV2
page), then changes: a sidecar edit updates metadata without embedding anything, an edit
re-embeds only that object, a deletion removes it."""
import json
import re
import unittest
import urllib.request

from harness import S3Server, Server

OBJECTS = 1500


class S3Sync(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s3 = S3Server()
        cls.s3.client.create_bucket(Bucket="many")
        for i in range(OBJECTS):
            cls.s3.client.put_object(Bucket="many", Key=f"notes/n{i:04d}.txt", Body=f"Field note {i}: sample {i % 37} was taken at site {i % 11}.".encode())
        cls.s3.client.put_object(Bucket="many", Key="notes/n0042.txt.metadata.json",
                                 Body=json.dumps({"metadataAttributes": {"site": "north"}}).encode())
        extra = f'''
[s3]
endpoint_url = "{cls.s3.url}"
region = "us-east-1"

[[knowledge_bases]]
id = "MANYKB0001"
name = "many"
embedding_model = "minilm"

[[knowledge_bases.data_sources]]
id = "MANYDS0001"
name = "many"
type = "s3"
bucket = "many"
'''
        cls.server = Server(extra_toml=extra, env={"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"})

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        cls.s3.close()

    def embedded(self):
        metrics = urllib.request.urlopen(self.server.url + "/metrics").read().decode()
        return int(re.search(r"^quarry_chunks_embedded_total (\d+)$", metrics, re.M).group(1))

    def stats(self):
        job = self.server.sync("MANYKB0001", "MANYDS0001", timeout=600)
        self.assertEqual(job["status"], "COMPLETE", job)
        s = job["statistics"]
        return (s["numberOfDocumentsScanned"], s["numberOfMetadataDocumentsScanned"], s["numberOfNewDocumentsIndexed"],
                s["numberOfModifiedDocumentsIndexed"], s["numberOfMetadataDocumentsModified"], s["numberOfDocumentsDeleted"],
                s["numberOfDocumentsFailed"])

    def north(self):
        rt = self.server.runtime()
        r = rt.retrieve(knowledgeBaseId="MANYKB0001", retrievalQuery={"text": "field note"},
                        retrievalConfiguration={"vectorSearchConfiguration": {"filter": {"equals": {"key": "site", "value": "north"}}}})
        return [x["location"]["s3Location"]["uri"] for x in r["retrievalResults"]]

    def test_a_bucket_of_1500_objects_and_its_changes(self):
        self.assertEqual(self.stats(), (OBJECTS, 1, OBJECTS, 0, 0, 0, 0))
        self.assertEqual(self.embedded(), OBJECTS)
        self.assertEqual(self.north(), ["s3://many/notes/n0042.txt"])

        # A sidecar change updates metadata and embeds nothing.
        self.s3.client.put_object(Bucket="many", Key="notes/n0042.txt.metadata.json",
                                  Body=json.dumps({"metadataAttributes": {"site": "south"}}).encode())
        self.s3.client.put_object(Bucket="many", Key="notes/n0007.txt.metadata.json",
                                  Body=json.dumps({"metadataAttributes": {"site": "north"}}).encode())
        self.assertEqual(self.stats(), (OBJECTS, 2, 0, 0, 2, 0, 0))
        self.assertEqual(self.embedded(), OBJECTS)
        self.assertEqual(self.north(), ["s3://many/notes/n0007.txt"])

        # An edit re-embeds that object alone; a deletion removes it.
        self.s3.client.put_object(Bucket="many", Key="notes/n0100.txt", Body=b"Field note 100, corrected: the sample was contaminated.")
        self.s3.client.delete_object(Bucket="many", Key="notes/n0200.txt")
        self.assertEqual(self.stats(), (OBJECTS - 1, 2, 0, 1, 0, 1, 0))
        self.assertEqual(self.embedded(), OBJECTS + 1)
        rt = self.server.runtime()
        r = rt.retrieve(knowledgeBaseId="MANYKB0001", retrievalQuery={"text": "the sample was contaminated"})
        self.assertEqual(r["retrievalResults"][0]["location"]["s3Location"]["uri"], "s3://many/notes/n0100.txt")
        everything = rt.retrieve(knowledgeBaseId="MANYKB0001", retrievalQuery={"text": "Field note 200: sample 15 was taken at site 2."},
                                 retrievalConfiguration={"vectorSearchConfiguration": {"numberOfResults": 100}})
        self.assertNotIn("s3://many/notes/n0200.txt", [x["location"]["s3Location"]["uri"] for x in everything["retrievalResults"]])


if __name__ == "__main__":
    unittest.main()
