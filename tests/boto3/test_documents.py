"""Direct ingestion through boto3: IngestKnowledgeBaseDocuments, GetKnowledgeBaseDocuments,
ListKnowledgeBaseDocuments and DeleteKnowledgeBaseDocuments, on a CUSTOM data source
(inline text and bytes) and an S3 one (a real S3 server, moto)."""
import unittest

from harness import S3Server, Server


def inline_text(doc_id, text, **attributes):
    doc = {"content": {"dataSourceType": "CUSTOM", "custom": {
        "customDocumentIdentifier": {"id": doc_id}, "sourceType": "IN_LINE",
        "inlineContent": {"type": "TEXT", "textContent": {"data": text}}}}}
    if attributes:
        doc["metadata"] = {"type": "IN_LINE_ATTRIBUTE", "inlineAttributes": [
            {"key": k, "value": {"type": "STRING", "stringValue": v}} for k, v in attributes.items()]}
    return doc


def inline_bytes(doc_id, mime_type, data):
    return {"content": {"dataSourceType": "CUSTOM", "custom": {
        "customDocumentIdentifier": {"id": doc_id}, "sourceType": "IN_LINE",
        "inlineContent": {"type": "BYTE", "byteContent": {"mimeType": mime_type, "data": data}}}}}


def custom_id(doc_id):
    return {"dataSourceType": "CUSTOM", "custom": {"id": doc_id}}


class Documents(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s3 = S3Server()
        cls.s3.client.create_bucket(Bucket="direct")
        extra = f'''
[s3]
endpoint_url = "{cls.s3.url}"
region = "us-east-1"

[[knowledge_bases]]
id = "DIRECTKB01"
name = "direct"
embedding_model = "minilm"

[[knowledge_bases.data_sources]]
id = "CUSTOMDS01"
name = "pushed"
type = "custom"

[[knowledge_bases.data_sources]]
id = "S3DIRECT01"
name = "bucket"
type = "s3"
bucket = "direct"
'''
        cls.server = Server(extra_toml=extra, env={"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"})
        cls.ag = cls.server.agent()
        cls.rt = cls.server.runtime()

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        cls.s3.close()

    def top(self, text):
        r = self.rt.retrieve(knowledgeBaseId="DIRECTKB01", retrievalQuery={"text": text},
                             retrievalConfiguration={"vectorSearchConfiguration": {"numberOfResults": 1}})
        return r["retrievalResults"][0] if r["retrievalResults"] else None

    def test_custom_documents_are_indexed_updated_and_deleted(self):
        html = b"<html><body><h1>Ferry timetable</h1><p>The ferry to the island leaves at 07:15 and 17:45.</p></body></html>"
        details = self.ag.ingest_knowledge_base_documents(knowledgeBaseId="DIRECTKB01", dataSourceId="CUSTOMDS01", documents=[
            inline_text("memo-1", "The warehouse inventory is counted every Friday afternoon.", team="logistics"),
            inline_bytes("timetable", "text/html", html),
            inline_bytes("scan", "image/png", b"\x89PNG\r\n"),
            inline_bytes("clip", "video/mp4", b"\0\0\0\x18ftypmp42"),
        ])["documentDetails"]
        self.assertEqual([(d["identifier"]["custom"]["id"], d["status"]) for d in details],
                         [("memo-1", "INDEXED"), ("timetable", "INDEXED"), ("scan", "FAILED"), ("clip", "FAILED")])
        # A PNG is read by OCR; this one is cut off after its signature.
        self.assertIn("malformed png", details[2]["statusReason"])
        self.assertIn("video/mp4", details[3]["statusReason"])

        top = self.top("when is the inventory counted")
        self.assertEqual(top["location"], {"type": "CUSTOM", "customDocumentLocation": {"id": "memo-1"}})
        self.assertEqual(top["metadata"]["team"], "logistics")
        self.assertIn("07:15", self.top("ferry departure times")["content"]["text"])

        got = self.ag.get_knowledge_base_documents(knowledgeBaseId="DIRECTKB01", dataSourceId="CUSTOMDS01",
                                                   documentIdentifiers=[custom_id("memo-1"), custom_id("scan")])["documentDetails"]
        self.assertEqual([d["status"] for d in got], ["INDEXED", "NOT_FOUND"])
        listed = self.ag.list_knowledge_base_documents(knowledgeBaseId="DIRECTKB01", dataSourceId="CUSTOMDS01")["documentDetails"]
        self.assertEqual(sorted(d["identifier"]["custom"]["id"] for d in listed), ["memo-1", "timetable"])

        # Ingesting the same id again replaces the document.
        self.ag.ingest_knowledge_base_documents(knowledgeBaseId="DIRECTKB01", dataSourceId="CUSTOMDS01", documents=[
            inline_text("memo-1", "The warehouse inventory is now counted on Monday mornings.")])
        top = self.top("when is the inventory counted")
        self.assertIn("Monday", top["content"]["text"])
        self.assertNotIn("team", top["metadata"])

        deleted = self.ag.delete_knowledge_base_documents(knowledgeBaseId="DIRECTKB01", dataSourceId="CUSTOMDS01",
                                                          documentIdentifiers=[custom_id("memo-1"), custom_id("never")])["documentDetails"]
        self.assertEqual([d["status"] for d in deleted], ["DELETING", "NOT_FOUND"])
        self.assertNotEqual(self.top("warehouse inventory")["location"]["customDocumentLocation"]["id"], "memo-1")

        with self.assertRaises(self.ag.exceptions.ValidationException):
            self.ag.start_ingestion_job(knowledgeBaseId="DIRECTKB01", dataSourceId="CUSTOMDS01")

    def test_s3_documents_are_read_from_the_bucket(self):
        self.s3.client.put_object(Bucket="direct", Key="guides/kiln.txt", Body=b"Fire the kiln slowly to 1240 degrees for stoneware.")
        details = self.ag.ingest_knowledge_base_documents(knowledgeBaseId="DIRECTKB01", dataSourceId="S3DIRECT01", documents=[
            {"content": {"dataSourceType": "S3", "s3": {"s3Location": {"uri": "s3://direct/guides/kiln.txt"}}}},
            {"content": {"dataSourceType": "S3", "s3": {"s3Location": {"uri": "s3://elsewhere/x.txt"}}}},
        ])["documentDetails"]
        self.assertEqual([d["status"] for d in details], ["INDEXED", "FAILED"])
        self.assertEqual(self.top("kiln temperature for stoneware")["location"],
                         {"type": "S3", "s3Location": {"uri": "s3://direct/guides/kiln.txt"}})
        with self.assertRaises(self.ag.exceptions.ValidationException):
            self.ag.ingest_knowledge_base_documents(knowledgeBaseId="DIRECTKB01", dataSourceId="S3DIRECT01",
                                                    documents=[inline_text("x", "inline text to an S3 data source")])


if __name__ == "__main__":
    unittest.main()
