"""Bedrock's control plane, the parts clients rely on: what CreateKnowledgeBase is given is
kept, RDS storage configurations become pgvector tables, client tokens make creates
idempotent, tags, CUSTOM data sources and their deletion policies — through boto3."""
import os
import unittest
import urllib.parse
import uuid

from harness import Server
from openai_server import OpenAiServer
from test_cluster import psql
from test_documents import custom_id, inline_text

ARN = "arn:aws:bedrock:us-east-1::foundation-model/{}"
RDS_ARN = "arn:aws:rds:us-east-1:123456789012:cluster:quarry-parity"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:quarry-parity"
ROLE = "arn:aws:iam::123456789012:role/parity"
VECTOR = {"type": "VECTOR", "vectorKnowledgeBaseConfiguration": {"embeddingModelArn": ARN.format("minilm")}}
FIELDS = {"primaryKeyField": "pk", "vectorField": "vec", "textField": "body", "metadataField": "meta"}


class ControlPlane(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg_url = os.environ["QUARRY_TEST_PG_URL"]
        pg = urllib.parse.urlsplit(cls.pg_url)
        cls.database = pg.path.lstrip("/")
        cls.server = Server(env={"PARITY_PG_PASSWORD": pg.password or ""}, extra_server_toml=(
            'account_id = "123456789012"'), extra_toml=f'''
[rds]
clusters = {{ "{RDS_ARN}" = "{pg.scheme}://{pg.netloc}" }}
secrets = {{ "{SECRET_ARN}" = "PARITY_PG_PASSWORD" }}
''')
        cls.ag = cls.server.agent()
        cls.rt = cls.server.runtime()

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def create_kb(self, name, **kw):
        return self.ag.create_knowledge_base(name=name, roleArn=ROLE, knowledgeBaseConfiguration=kw.pop(
            "configuration", VECTOR), **kw)["knowledgeBase"]

    def custom_source(self, kb, name, **kw):
        return self.ag.create_data_source(knowledgeBaseId=kb, name=name,
                                          dataSourceConfiguration={"type": "CUSTOM"}, **kw)["dataSource"]

    def top_ids(self, kb, text):
        r = self.rt.retrieve(knowledgeBaseId=kb, retrievalQuery={"text": text})["retrievalResults"]
        return [x["location"]["customDocumentLocation"]["id"] for x in r]

    def test_create_knowledge_base_keeps_what_it_was_given(self):
        settings = {"bedrockEmbeddingModelConfiguration": {"dimensions": 384, "embeddingDataType": "FLOAT32"}}
        kb = self.create_kb("parity-kept", description="kept as given", configuration={
            "type": "VECTOR", "vectorKnowledgeBaseConfiguration": {
                "embeddingModelArn": ARN.format("minilm"), "embeddingModelConfiguration": settings}})
        got = self.ag.get_knowledge_base(knowledgeBaseId=kb["knowledgeBaseId"])["knowledgeBase"]
        self.assertEqual((got["roleArn"], got["description"]), (ROLE, "kept as given"))
        self.assertEqual(got["knowledgeBaseArn"],
                         f"arn:aws:bedrock:us-east-1:123456789012:knowledge-base/{kb['knowledgeBaseId']}")
        # A size or type the model does not make is refused, naming the member.
        for member, value in (("dimensions", 512), ("embeddingDataType", "BINARY")):
            bad = {"bedrockEmbeddingModelConfiguration": dict(
                settings["bedrockEmbeddingModelConfiguration"], **{member: value})}
            with self.assertRaisesRegex(self.ag.exceptions.ValidationException, member):
                self.create_kb(f"parity-bad-{member.lower()}", configuration={
                    "type": "VECTOR", "vectorKnowledgeBaseConfiguration": {
                        "embeddingModelArn": ARN.format("minilm"), "embeddingModelConfiguration": bad}})
        # Members Bedrock has and Quarry does not honour are refused by name, not dropped.
        with self.assertRaisesRegex(self.ag.exceptions.ValidationException,
                                    r"storageConfiguration\.opensearchServerlessConfiguration: Quarry does not support"):
            self.create_kb("parity-opensearch", storageConfiguration={
                "type": "OPENSEARCH_SERVERLESS", "opensearchServerlessConfiguration": {
                    "collectionArn": "arn:aws:aoss:us-east-1:1:collection/x", "vectorIndexName": "i",
                    "fieldMapping": {"vectorField": "v", "textField": "t", "metadataField": "m"}}})
        names = [k["name"] for k in self.ag.list_knowledge_bases()["knowledgeBaseSummaries"]]
        self.assertNotIn("parity-opensearch", names)

    def test_rds_storage_configuration_is_a_pgvector_table(self):
        table = f"parity_rds_{uuid.uuid4().hex[:8]}"
        storage = {"type": "RDS", "rdsConfiguration": {
            "resourceArn": RDS_ARN, "credentialsSecretArn": SECRET_ARN, "databaseName": self.database,
            "tableName": table, "fieldMapping": FIELDS}}
        kb = self.create_kb("parity-rds", storageConfiguration=storage)["knowledgeBaseId"]
        got = self.ag.get_knowledge_base(knowledgeBaseId=kb)["knowledgeBase"]
        self.assertEqual(got["storageConfiguration"], storage)
        ds = self.custom_source(kb, "notes")["dataSourceId"]
        self.ag.ingest_knowledge_base_documents(knowledgeBaseId=kb, dataSourceId=ds, documents=[
            inline_text("tides", "High tide at the harbour is at 06:40 and 19:05 today."),
            inline_text("bakery", "The bakery on Mill Lane sells rye bread on Saturdays.")])
        self.assertEqual(self.top_ids(kb, "when is high tide")[0], "tides")
        # The chunks are rows of the named table, in the mapped columns.
        rows = psql(self.pg_url, f"SELECT count(*) FROM {table} WHERE body LIKE '%tide%' AND vec IS NOT NULL "
                                 f"AND meta IS NOT NULL AND pk IS NOT NULL")
        self.assertEqual(rows, [["1"]])
        # The store cannot be changed afterwards; the same one may be restated.
        other = dict(storage, rdsConfiguration=dict(storage["rdsConfiguration"], tableName=table + "_other"))
        with self.assertRaisesRegex(self.ag.exceptions.ValidationException, "cannot be changed"):
            self.ag.update_knowledge_base(knowledgeBaseId=kb, name="parity-rds", roleArn=ROLE,
                                          knowledgeBaseConfiguration=VECTOR, storageConfiguration=other)
        self.ag.update_knowledge_base(knowledgeBaseId=kb, name="parity-rds", roleArn=ROLE,
                                      knowledgeBaseConfiguration=VECTOR, storageConfiguration=storage)
        # ARNs the configuration does not map are refused, naming the member.
        for member, value in (("resourceArn", "arn:aws:rds:us-east-1:1:cluster:unknown"),
                              ("credentialsSecretArn", "arn:aws:secretsmanager:us-east-1:1:secret:unknown")):
            bad = dict(storage, rdsConfiguration=dict(storage["rdsConfiguration"], **{member: value}))
            with self.assertRaisesRegex(self.ag.exceptions.ValidationException, member):
                self.create_kb(f"parity-rds-{member.lower()}", storageConfiguration=bad)

    def test_client_tokens_make_creates_idempotent(self):
        token = "parity-" + uuid.uuid4().hex + uuid.uuid4().hex
        first = self.create_kb("parity-token", clientToken=token)
        again = self.create_kb("parity-token", clientToken=token)
        self.assertEqual(first["knowledgeBaseId"], again["knowledgeBaseId"])
        with self.assertRaises(self.ag.exceptions.ConflictException):
            self.create_kb("parity-token-other", clientToken=token)
        names = [k["name"] for k in self.ag.list_knowledge_bases()["knowledgeBaseSummaries"]]
        self.assertEqual(names.count("parity-token"), 1)
        self.assertNotIn("parity-token-other", names)
        kb = first["knowledgeBaseId"]

        ds = self.custom_source(kb, "tokened", clientToken=token)["dataSourceId"]
        self.assertEqual(self.custom_source(kb, "tokened", clientToken=token)["dataSourceId"], ds)
        with self.assertRaises(self.ag.exceptions.ConflictException):
            self.custom_source(kb, "tokened-other", clientToken=token)
        self.assertEqual(len(self.ag.list_data_sources(knowledgeBaseId=kb)["dataSourceSummaries"]), 1)

        # Documents sent again with the same token are not ingested twice.
        doc = [inline_text("once", "The ferry leaves at noon.")]
        self.ag.ingest_knowledge_base_documents(knowledgeBaseId=kb, dataSourceId=ds, documents=doc,
                                                clientToken=token)
        self.ag.delete_knowledge_base_documents(knowledgeBaseId=kb, dataSourceId=ds,
                                                documentIdentifiers=[custom_id("once")])
        repeated = self.ag.ingest_knowledge_base_documents(knowledgeBaseId=kb, dataSourceId=ds, documents=doc,
                                                           clientToken=token)["documentDetails"]
        self.assertEqual([d["status"] for d in repeated], ["NOT_FOUND"])
        with self.assertRaises(self.ag.exceptions.ConflictException):
            self.ag.ingest_knowledge_base_documents(knowledgeBaseId=kb, dataSourceId=ds, clientToken=token,
                                                    documents=[inline_text("other", "Another text.")])

        # StartIngestionJob: the same job, not a second one.
        job = self.ag.start_ingestion_job(knowledgeBaseId="BULKKB0001", dataSourceId="BULKDS0001",
                                          clientToken=token)["ingestionJob"]
        self.server.wait("BULKKB0001", "BULKDS0001", job["ingestionJobId"])
        same = self.ag.start_ingestion_job(knowledgeBaseId="BULKKB0001", dataSourceId="BULKDS0001",
                                           clientToken=token)["ingestionJob"]
        self.assertEqual(same["ingestionJobId"], job["ingestionJobId"])
        jobs = self.ag.list_ingestion_jobs(knowledgeBaseId="BULKKB0001", dataSourceId="BULKDS0001")
        self.assertEqual(len(jobs["ingestionJobSummaries"]), 1)

    def test_tags_on_knowledge_bases_and_data_sources(self):
        kb = self.create_kb("parity-tags", tags={"team": "search", "env": "test"})["knowledgeBaseId"]
        arn = f"arn:aws:bedrock:us-east-1:123456789012:knowledge-base/{kb}"
        self.assertEqual(self.ag.list_tags_for_resource(resourceArn=arn)["tags"], {"team": "search", "env": "test"})
        self.ag.tag_resource(resourceArn=arn, tags={"owner": "platform", "env": "prod"})
        self.ag.untag_resource(resourceArn=arn, tagKeys=["team"])
        want = {"owner": "platform", "env": "prod"}
        # Both clients have the tag operations.
        self.assertEqual(self.ag.list_tags_for_resource(resourceArn=arn)["tags"], want)
        self.assertEqual(self.rt.list_tags_for_resource(resourceArn=arn)["tags"], want)
        self.rt.tag_resource(resourceArn=arn, tags={"via": "runtime"})
        self.assertEqual(self.ag.list_tags_for_resource(resourceArn=arn)["tags"]["via"], "runtime")

        ds = self.custom_source(kb, "tagged")["dataSourceId"]
        ds_arn = f"{arn}/data-source/{ds}"
        self.ag.tag_resource(resourceArn=ds_arn, tags={"kind": "notes"})
        self.assertEqual(self.ag.list_tags_for_resource(resourceArn=ds_arn)["tags"], {"kind": "notes"})

        # Kept across a restart.
        self.server.restart()
        ag = self.server.agent()
        self.assertEqual(ag.list_tags_for_resource(resourceArn=arn)["tags"], dict(want, via="runtime"))
        self.assertEqual(ag.list_tags_for_resource(resourceArn=ds_arn)["tags"], {"kind": "notes"})
        type(self).ag, type(self).rt = ag, self.server.runtime()

        for bad_tags in ({"aws:reserved": "x"}, {"bad{key}": "x"}, {"k": "v" * 300}):
            with self.assertRaises(ag.exceptions.ValidationException):
                ag.tag_resource(resourceArn=arn, tags=bad_tags)
        with self.assertRaisesRegex(ag.exceptions.ValidationException, "knowledge-bases.toml"):
            ag.tag_resource(resourceArn="arn:aws:bedrock:us-east-1:123456789012:knowledge-base/DEMOKB0001",
                            tags={"a": "b"})
        with self.assertRaises(ag.exceptions.ValidationException):
            ag.list_tags_for_resource(resourceArn="arn:aws:s3:::parity-bucket")
        with self.assertRaises(ag.exceptions.ResourceNotFoundException):
            ag.list_tags_for_resource(resourceArn="arn:aws:bedrock:us-east-1:123456789012:knowledge-base/NOSUCHKB00")

    def test_custom_data_sources_and_deletion_policies(self):
        kb = self.create_kb("parity-deletion")["knowledgeBaseId"]
        kept = self.custom_source(kb, "kept", dataDeletionPolicy="RETAIN")
        gone = self.custom_source(kb, "gone")
        self.assertEqual((kept["dataDeletionPolicy"], gone["dataDeletionPolicy"]), ("RETAIN", "DELETE"))
        self.assertEqual(kept["dataSourceConfiguration"], {"type": "CUSTOM"})
        self.ag.ingest_knowledge_base_documents(knowledgeBaseId=kb, dataSourceId=kept["dataSourceId"], documents=[
            inline_text("lighthouse", "The lighthouse keeper lights the lamp at dusk.")])
        self.ag.ingest_knowledge_base_documents(knowledgeBaseId=kb, dataSourceId=gone["dataSourceId"], documents=[
            inline_text("orchard", "The orchard harvest of apples starts in September.")])
        for ds in (kept, gone):
            self.ag.delete_data_source(knowledgeBaseId=kb, dataSourceId=ds["dataSourceId"])
        self.assertEqual(self.ag.list_data_sources(knowledgeBaseId=kb)["dataSourceSummaries"], [])
        ids = self.top_ids(kb, "apples lighthouse lamp harvest")
        self.assertEqual(ids, ["lighthouse"])

        # The chunking of a data source is fixed when it is made, as Bedrock's is.
        chunking = {"chunkingConfiguration": {"chunkingStrategy": "FIXED_SIZE", "fixedSizeChunkingConfiguration": {
            "maxTokens": 120, "overlapPercentage": 10}}}
        ds = self.custom_source(kb, "chunked", vectorIngestionConfiguration=chunking)["dataSourceId"]
        update = dict(knowledgeBaseId=kb, dataSourceId=ds, name="chunked", dataSourceConfiguration={"type": "CUSTOM"})
        changed = {"chunkingConfiguration": {"chunkingStrategy": "NONE"}}
        with self.assertRaisesRegex(self.ag.exceptions.ValidationException, "chunking"):
            self.ag.update_data_source(vectorIngestionConfiguration=changed, **update)
        got = self.ag.update_data_source(description="renamed only", **update)["dataSource"]
        self.assertEqual(got["vectorIngestionConfiguration"], chunking)
        self.assertEqual(got["description"], "renamed only")
        got = self.ag.update_data_source(vectorIngestionConfiguration=chunking, **update)["dataSource"]
        self.assertEqual(got["vectorIngestionConfiguration"], chunking)
        with self.assertRaisesRegex(self.ag.exceptions.ValidationException, "type"):
            self.ag.update_data_source(**dict(update, dataSourceConfiguration={
                "type": "S3", "s3Configuration": {"bucketArn": "arn:aws:s3:::parity"}}))
        # Sources Quarry cannot read are refused by name.
        with self.assertRaisesRegex(self.ag.exceptions.ValidationException, "webConfiguration"):
            self.ag.create_data_source(knowledgeBaseId=kb, name="web", dataSourceConfiguration={
                "type": "WEB", "webConfiguration": {"sourceConfiguration": {"urlConfiguration": {
                    "seedUrls": [{"url": "https://example.com"}]}}}})


class QueryModel(unittest.TestCase):
    """The generation model working on the query: sub-questions and implicit filters (the
    model is `openai_server.py`, a real HTTP server speaking OpenAI's protocol)."""

    @classmethod
    def setUpClass(cls):
        cls.llm = OpenAiServer()
        models = "".join(f'''
[models.{name}]
kind = "openai"
base_url = "{cls.llm.url}"
model = "{name}"
''' for name in ("cite", "wrongfilter"))
        cls.server = Server(extra_toml=models)
        cls.ag, cls.rt = cls.server.agent(), cls.server.runtime()
        cls.kb = cls.ag.create_knowledge_base(name="query-model", roleArn=ROLE,
                                              knowledgeBaseConfiguration=VECTOR)["knowledgeBase"]["knowledgeBaseId"]
        ds = cls.ag.create_data_source(knowledgeBaseId=cls.kb, name="memos",
                                       dataSourceConfiguration={"type": "CUSTOM"})["dataSource"]["dataSourceId"]
        cls.ag.ingest_knowledge_base_documents(knowledgeBaseId=cls.kb, dataSourceId=ds, documents=[
            inline_text("stock-1", "The warehouse inventory is counted every Friday by the night shift.", team="logistics"),
            inline_text("stock-2", "Warehouse inventory counts are checked against the ledger by the supervisor.",
                        team="logistics"),
            inline_text("stock-3", "The inventory of cash in the safe is counted every Monday.", team="finance"),
            inline_text("ferry", "The ferry to the island leaves the harbour at 07:15.", team="travel"),
        ])

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        cls.llm.close()

    def rag(self, question, k, orchestration=None):
        config = {"knowledgeBaseId": self.kb, "modelArn": ARN.format("cite"), "retrievalConfiguration": {
            "vectorSearchConfiguration": {"numberOfResults": k}}}
        if orchestration:
            config["orchestrationConfiguration"] = orchestration
        self.rt.retrieve_and_generate(input={"text": question}, retrieveAndGenerateConfiguration={
            "type": "KNOWLEDGE_BASE", "knowledgeBaseConfiguration": config})
        return self.llm.requests("cite")[-1]["body"]["messages"][0]["content"]

    def test_query_decomposition_searches_each_sub_question(self):
        question = "Who checks the warehouse inventory counts and when does the ferry leave?"
        plain = self.rag(question, 2)
        self.assertNotIn("ferry", plain, "two inventory passages outrank the ferry for the whole question")
        decomposed = self.rag(question, 2, {"queryTransformationConfiguration": {"type": "QUERY_DECOMPOSITION"}})
        asked = [r["body"]["messages"] for r in self.llm.requests("cite")
                 if r["body"]["messages"][0]["content"].startswith("You prepare searches")]
        self.assertEqual(asked[-1][-1]["content"], question)
        self.assertIn("ferry to the island", decomposed)
        self.assertIn("inventory", decomposed)
        with self.assertRaisesRegex(self.rt.exceptions.ValidationException, "QUERY_DECOMPOSITION"):
            self.rag(question, 2, {"queryTransformationConfiguration": {"type": "OTHER"}})

    def retrieve(self, query, model="cite", explicit=None):
        vector = {"numberOfResults": 5, "implicitFilterConfiguration": {"modelArn": ARN.format(model),
                  "metadataAttributes": [{"key": "team", "type": "STRING", "description": "the team a memo is for"}]}}
        if explicit:
            vector["filter"] = explicit
        out = self.rt.retrieve(knowledgeBaseId=self.kb, retrievalQuery={"text": query},
                               retrievalConfiguration={"vectorSearchConfiguration": vector})
        return sorted(r["location"]["customDocumentLocation"]["id"] for r in out["retrievalResults"])

    def test_implicit_filters_come_from_the_model_and_are_checked(self):
        self.assertEqual(self.retrieve("inventory count for team finance"), ["stock-3"])
        self.assertEqual(self.retrieve("inventory count for team logistics"), ["stock-1", "stock-2"])
        # No value named: no filter.
        self.assertEqual(len(self.retrieve("inventory count")), 4)
        # A proposal on an undeclared attribute is not used.
        self.assertEqual(len(self.retrieve("inventory count for team finance", model="wrongfilter")), 4)
        # With an explicit filter, both apply.
        not_finance = {"notEquals": {"key": "team", "value": "finance"}}
        self.assertEqual(self.retrieve("inventory count for team finance", explicit=not_finance), [])
        self.assertEqual(self.retrieve("inventory count", explicit=not_finance),
                         ["ferry", "stock-1", "stock-2"])


if __name__ == "__main__":
    unittest.main()
