"""No request member is silently ignored: generated from botocore's own service models.

For every operation Quarry serves (bedrock-agent and bedrock-agent-runtime) and every member
of its input shape, at any depth, the real AWS SDK sends a valid request that sets that
member, and the real server must either honour it or answer ValidationException naming it
(or a member above it) as one Quarry does not support. Which members are honoured is said
here, each with the test that asserts what it does; every other member must be refused.
"""
import datetime
import os
import re
import unittest
import urllib.parse

import botocore.exceptions
import botocore.session

from harness import KEY_ID, SECRET, Server
from openai_server import OpenAiServer
from rerank_server import RerankServer
from sigv4 import sign

HERE = os.path.dirname(os.path.abspath(__file__))
ARN = "arn:aws:bedrock:us-east-1::foundation-model/{}"
RDS_ARN = "arn:aws:rds:us-east-1:123456789012:cluster:quarry-members"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:quarry-members"

# Honoured members, by operation, each with the test (module.Class.test) that asserts what it
# does. Paths use botocore's member names; `[]` is a list's item, `{}` a map's value. Members
# in the URI (ids, ARNs) are how an operation names its resource and are not listed.
FILTER = "test_runtime.Retrieve.test_filters_apply"
RERANK = "test_rerank.Rerank.test_retrieve_reranks_its_candidates_with_the_models_scores"
RERANK_META = "test_rerank.Rerank.test_metadata_selection_decides_what_the_model_sees"
KB_CREATE = "test_parity.ControlPlane.test_create_knowledge_base_keeps_what_it_was_given"
RDS = "test_parity.ControlPlane.test_rds_storage_configuration_is_a_pgvector_table"
TOKENS = "test_parity.ControlPlane.test_client_tokens_make_creates_idempotent"
TAGS = "test_parity.ControlPlane.test_tags_on_knowledge_bases_and_data_sources"
DS = "test_parity.ControlPlane.test_custom_data_sources_and_deletion_policies"
CHUNKING = "test_control_plane.ControlPlane.test_hierarchical_and_semantic_chunking_configurations_round_trip"
DOCS = "test_documents.Documents.test_custom_documents_are_indexed_updated_and_deleted"
JOBS = "test_control_plane.ControlPlane.test_an_ingestion_job_runs_and_is_listed"
PAGES = "test_control_plane.ControlPlane.test_declared_knowledge_bases_and_data_sources_are_listed"
RAG = "test_generate.Generate.test_markers_become_citations_of_the_passages_they_name"
INFERENCE = "test_generate.Generate.test_prompt_template_and_inference_settings_reach_the_backend"
SESSION = "test_generate.Generate.test_a_second_turn_carries_the_first"
RERANK_OP = "test_rerank.Rerank.test_the_rerank_operation_returns_the_servers_order_and_scores"
IMPLICIT = "test_parity.QueryModel.test_implicit_filters_come_from_the_model_and_are_checked"
DECOMPOSITION = "test_parity.QueryModel.test_query_decomposition_searches_each_sub_question"
FILTER_KEYS = ["equals", "notEquals", "greaterThan", "greaterThanOrEquals", "lessThan",
               "lessThanOrEquals", "in", "notIn", "startsWith", "listContains", "stringContains"]


def filter_members(prefix):
    out = {prefix: FILTER}
    for op in FILTER_KEYS:
        out[f"{prefix}.{op}"] = FILTER
        out[f"{prefix}.{op}.key"] = FILTER
        out[f"{prefix}.{op}.value"] = FILTER
    for op in ("andAll", "orAll"):
        out[f"{prefix}.{op}"] = FILTER
        out[f"{prefix}.{op}[]"] = FILTER
    return out


def search_members(prefix):
    v = f"{prefix}.vectorSearchConfiguration"
    out = {prefix: FILTER, v: FILTER, f"{v}.numberOfResults": FILTER,
           f"{v}.overrideSearchType": "test_runtime.Retrieve.test_hybrid_retrieve_finds_the_passage_with_scores_in_0_1"}
    out.update(filter_members(f"{v}.filter"))
    i = f"{v}.implicitFilterConfiguration"
    for p in (i, f"{i}.modelArn", f"{i}.metadataAttributes", f"{i}.metadataAttributes[]",
              f"{i}.metadataAttributes[].key", f"{i}.metadataAttributes[].type",
              f"{i}.metadataAttributes[].description"):
        out[p] = IMPLICIT
    r = f"{v}.rerankingConfiguration"
    b = f"{r}.bedrockRerankingConfiguration"
    for p in (r, f"{r}.type", b, f"{b}.numberOfRerankedResults", f"{b}.modelConfiguration",
              f"{b}.modelConfiguration.modelArn"):
        out[p] = RERANK
    m = f"{b}.metadataConfiguration"
    for p in (m, f"{m}.selectionMode", f"{m}.selectiveModeConfiguration",
              f"{m}.selectiveModeConfiguration.fieldsToInclude",
              f"{m}.selectiveModeConfiguration.fieldsToInclude[]",
              f"{m}.selectiveModeConfiguration.fieldsToInclude[].fieldName",
              f"{m}.selectiveModeConfiguration.fieldsToExclude",
              f"{m}.selectiveModeConfiguration.fieldsToExclude[]",
              f"{m}.selectiveModeConfiguration.fieldsToExclude[].fieldName"):
        out[p] = RERANK_META
    return out


def chunking_members(prefix):
    c = f"{prefix}.chunkingConfiguration"
    out = {prefix: CHUNKING, c: CHUNKING, f"{c}.chunkingStrategy": CHUNKING}
    for p in ("fixedSizeChunkingConfiguration", "fixedSizeChunkingConfiguration.maxTokens",
              "fixedSizeChunkingConfiguration.overlapPercentage",
              "hierarchicalChunkingConfiguration",
              "hierarchicalChunkingConfiguration.levelConfigurations",
              "hierarchicalChunkingConfiguration.levelConfigurations[]",
              "hierarchicalChunkingConfiguration.levelConfigurations[].maxTokens",
              "hierarchicalChunkingConfiguration.overlapTokens",
              "semanticChunkingConfiguration", "semanticChunkingConfiguration.maxTokens",
              "semanticChunkingConfiguration.bufferSize",
              "semanticChunkingConfiguration.breakpointPercentileThreshold"):
        out[f"{c}.{p}"] = CHUNKING
    return out


def kb_members(create):
    out = {"name": KB_CREATE, "description": KB_CREATE, "roleArn": KB_CREATE,
           "knowledgeBaseConfiguration": KB_CREATE, "knowledgeBaseConfiguration.type": KB_CREATE}
    v = "knowledgeBaseConfiguration.vectorKnowledgeBaseConfiguration"
    e = f"{v}.embeddingModelConfiguration.bedrockEmbeddingModelConfiguration"
    for p in (v, f"{v}.embeddingModelArn", f"{v}.embeddingModelConfiguration", e,
              f"{e}.dimensions", f"{e}.embeddingDataType"):
        out[p] = KB_CREATE
    s = "storageConfiguration"
    r = f"{s}.rdsConfiguration"
    for p in (s, f"{s}.type", r, f"{r}.resourceArn", f"{r}.credentialsSecretArn", f"{r}.databaseName",
              f"{r}.tableName", f"{r}.fieldMapping", f"{r}.fieldMapping.primaryKeyField",
              f"{r}.fieldMapping.vectorField", f"{r}.fieldMapping.textField",
              f"{r}.fieldMapping.metadataField"):
        out[p] = RDS
    if create:
        out.update({"clientToken": TOKENS, "tags": TAGS, "tags{}": TAGS})
    return out


def ds_members(create):
    out = {"name": DS, "description": DS, "dataSourceConfiguration": DS,
           "dataSourceConfiguration.type": DS, "dataSourceConfiguration.s3Configuration": DS,
           "dataSourceConfiguration.s3Configuration.bucketArn": DS,
           "dataSourceConfiguration.s3Configuration.inclusionPrefixes": DS,
           "dataSourceConfiguration.s3Configuration.inclusionPrefixes[]": DS,
           "dataDeletionPolicy": DS}
    out.update(chunking_members("vectorIngestionConfiguration"))
    if create:
        out["clientToken"] = TOKENS
    return out


def rag_members():
    k = "retrieveAndGenerateConfiguration.knowledgeBaseConfiguration"
    g = f"{k}.generationConfiguration"
    t = f"{g}.inferenceConfig.textInferenceConfig"
    out = {"input": RAG, "input.text": RAG, "sessionId": SESSION,
           "retrieveAndGenerateConfiguration": RAG, "retrieveAndGenerateConfiguration.type": RAG,
           k: RAG, f"{k}.knowledgeBaseId": RAG, f"{k}.modelArn": RAG, g: RAG,
           f"{g}.promptTemplate": RAG, f"{g}.promptTemplate.textPromptTemplate": RAG,
           f"{k}.orchestrationConfiguration": RAG,
           f"{k}.orchestrationConfiguration.queryTransformationConfiguration": DECOMPOSITION,
           f"{k}.orchestrationConfiguration.queryTransformationConfiguration.type": DECOMPOSITION, f"{g}.inferenceConfig": INFERENCE, t: INFERENCE, f"{t}.temperature": INFERENCE,
           f"{t}.topP": INFERENCE, f"{t}.maxTokens": INFERENCE, f"{t}.stopSequences": INFERENCE,
           f"{t}.stopSequences[]": INFERENCE}
    out.update(search_members(f"{k}.retrievalConfiguration"))
    return out


def document_members():
    d = "documents[]"
    c = f"{d}.content.custom"
    i = f"{c}.inlineContent"
    a = f"{d}.metadata.inlineAttributes[]"
    out = {"clientToken": TOKENS, "documents": DOCS, d: DOCS, f"{d}.content": DOCS,
           f"{d}.content.dataSourceType": DOCS, c: DOCS, f"{c}.customDocumentIdentifier": DOCS,
           f"{c}.customDocumentIdentifier.id": DOCS, f"{c}.sourceType": DOCS, i: DOCS,
           f"{i}.type": DOCS, f"{i}.textContent": DOCS, f"{i}.textContent.data": DOCS,
           f"{i}.byteContent": DOCS, f"{i}.byteContent.mimeType": DOCS, f"{i}.byteContent.data": DOCS,
           f"{d}.content.s3": DOCS, f"{d}.content.s3.s3Location": DOCS,
           f"{d}.content.s3.s3Location.uri": DOCS, f"{d}.metadata": DOCS, f"{d}.metadata.type": DOCS,
           f"{d}.metadata.inlineAttributes": DOCS, a: DOCS, f"{a}.key": DOCS, f"{a}.value": DOCS}
    for p in ("type", "stringValue", "numberValue", "booleanValue", "stringListValue", "stringListValue[]"):
        out[f"{a}.value.{p}"] = DOCS
    return out


def identifier_members(with_token):
    d = "documentIdentifiers"
    out = {d: DOCS, f"{d}[]": DOCS, f"{d}[].dataSourceType": DOCS, f"{d}[].s3": DOCS,
           f"{d}[].s3.uri": DOCS, f"{d}[].custom": DOCS, f"{d}[].custom.id": DOCS}
    if with_token:
        out["clientToken"] = TOKENS
    return out


PAGING = {"maxResults": PAGES, "nextToken": PAGES}
TAGGING = {"TagResource": {"tags": TAGS, "tags{}": TAGS},
           "UntagResource": {"tagKeys": TAGS, "tagKeys[]": TAGS},
           "ListTagsForResource": {}}

HONOURED = {
    "bedrock-agent": {
        "CreateKnowledgeBase": kb_members(create=True),
        "UpdateKnowledgeBase": kb_members(create=False),
        "ListKnowledgeBases": PAGING,
        "GetKnowledgeBase": {},
        "DeleteKnowledgeBase": {},
        "CreateDataSource": ds_members(create=True),
        "UpdateDataSource": ds_members(create=False),
        "ListDataSources": PAGING,
        "GetDataSource": {},
        "DeleteDataSource": {},
        "StartIngestionJob": {"clientToken": TOKENS, "description": JOBS},
        "ListIngestionJobs": dict(PAGING, **{p: JOBS for p in (
            "filters", "filters[]", "filters[].attribute", "filters[].operator", "filters[].values",
            "filters[].values[]", "sortBy", "sortBy.attribute", "sortBy.order")}),
        "GetIngestionJob": {},
        "StopIngestionJob": {},
        "IngestKnowledgeBaseDocuments": document_members(),
        "ListKnowledgeBaseDocuments": PAGING,
        "DeleteKnowledgeBaseDocuments": identifier_members(with_token=True),
        "GetKnowledgeBaseDocuments": identifier_members(with_token=False),
        **TAGGING,
    },
    "bedrock-agent-runtime": {
        "Retrieve": dict(search_members("retrievalConfiguration"), **{
            "retrievalQuery": FILTER, "retrievalQuery.text": FILTER,
            "retrievalQuery.type": FILTER, "nextToken": PAGES}),
        "RetrieveAndGenerate": rag_members(),
        "RetrieveAndGenerateStream": rag_members(),
        "Rerank": {p: RERANK_OP for p in (
            "queries", "queries[]", "queries[].type", "queries[].textQuery", "queries[].textQuery.text",
            "sources", "sources[]", "sources[].type", "sources[].inlineDocumentSource",
            "sources[].inlineDocumentSource.type", "sources[].inlineDocumentSource.textDocument",
            "sources[].inlineDocumentSource.textDocument.text",
            "sources[].inlineDocumentSource.jsonDocument",
            "rerankingConfiguration", "rerankingConfiguration.type",
            "rerankingConfiguration.bedrockRerankingConfiguration",
            "rerankingConfiguration.bedrockRerankingConfiguration.numberOfResults",
            "rerankingConfiguration.bedrockRerankingConfiguration.modelConfiguration",
            "rerankingConfiguration.bedrockRerankingConfiguration.modelConfiguration.modelArn",
            "nextToken")},
        **TAGGING,
    },
}


def value_for(shape, depth=0):
    """A small valid value of a botocore shape (client-side validation passes it)."""
    t = shape.type_name
    if t == "structure":
        if shape.metadata.get("document"):
            return {}
        if shape.is_tagged_union:
            # The first member that is not a list or map (a filter's `equals`, not its `andAll`).
            name, member = min(shape.members.items(), key=lambda m: m[1].type_name in ("list", "map"))
            return {name: value_for(member, depth + 1)}
        return {name: value_for(shape.members[name], depth + 1) for name in shape.required_members}
    if t == "list":
        return [value_for(shape.member, depth + 1) for _ in range(max(shape.metadata.get("min", 1), 1))]
    if t == "map":
        return {"k": value_for(shape.value, depth + 1)}
    if t == "string":
        if shape.enum:
            return shape.enum[0]
        return "x" * max(shape.metadata.get("min", 1), 1)
    if t in ("integer", "long"):
        return max(int(shape.metadata.get("min", 1)), 1)
    if t in ("float", "double"):
        return float(shape.metadata.get("min", 0.5))
    if t == "boolean":
        return True
    if t == "blob":
        return b"x"
    if t == "timestamp":
        return datetime.datetime(2026, 1, 1)
    raise AssertionError(f"no value for {t}")


def member_paths(shape, prefix="", seen=()):
    """(path, member shape, parent shape) for every member, recursive shapes walked once."""
    out = []
    if shape.type_name == "structure" and not shape.metadata.get("document"):
        for name, member in shape.members.items():
            path = f"{prefix}.{name}" if prefix else name
            out.append((path, member, shape))
            if member.name not in seen:
                out.extend(member_paths(member, path, seen + (member.name,)))
    elif shape.type_name == "list":
        out.extend(member_paths(shape.member, prefix + "[]", seen))
    elif shape.type_name == "map":
        out.extend(member_paths(shape.value, prefix + "{}", seen))
    return out


def set_path(params, path, value, root_shape):
    """Sets `path` in `params`, making what lies between (a union keeps only the member set)."""
    steps = re.findall(r"[^.\[\]{}]+|\[\]|\{\}", path)
    node, shape = params, root_shape
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        if step == "[]":
            if not node:
                node.append(value_for(shape.member))
            shape = shape.member
            if last:
                node[0] = value
                return
            node = node[0]
        elif step == "{}":
            if not node:
                node["k"] = value_for(shape.value)
            key = next(iter(node))
            shape = shape.value
            if last:
                node[key] = value
                return
            node = node[key]
        else:
            if shape.type_name == "structure" and shape.is_tagged_union:
                for other in list(node):
                    if other != step:
                        del node[other]
            member = shape.members[step]
            # Going into `rdsConfiguration` of a structure typed by `type`: make it type RDS.
            kind = shape.members.get("type")
            if kind is not None and kind.enum and step.endswith("Configuration"):
                stem = step[: -len("Configuration")].lower()
                for v in kind.enum:
                    if v.replace("_", "").lower() == stem:
                        node["type"] = v
            if last:
                node[step] = value
                return
            if step not in node or not isinstance(node[step], (dict, list)):
                node[step] = value_for(member)
            node, shape = node[step], member


def normalized(path):
    return re.sub(r"\[\d+\]", "[]", path)


def honoured_name(path):
    """A filter nested in andAll/orAll is a filter: `filter.andAll[].equals.key` is honoured
    as `filter.equals.key` is."""
    return re.sub(r"\.filter(\.(andAll|orAll)\[\])+\.", ".filter.", path)


class Members(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.llm = OpenAiServer()
        cls.reranker = RerankServer()
        pg = urllib.parse.urlsplit(os.environ["QUARRY_TEST_PG_URL"])
        cls.pg_database = pg.path.lstrip("/")
        server = f"{pg.scheme}://{pg.netloc}"
        cls.server = Server(env={"MEMBERS_PG_PASSWORD": pg.password or ""}, extra_toml=f'''
[models.cite]
kind = "openai"
base_url = "{cls.llm.url}"
model = "cite"

[models.overlap]
kind = "rerank-api"
base_url = "{cls.reranker.url}"
model = "overlap"

[rds]
clusters = {{ "{RDS_ARN}" = "{server}" }}
secrets = {{ "{SECRET_ARN}" = "MEMBERS_PG_PASSWORD" }}
''')
        job = cls.server.sync("DEMOKB0001", "DEMODS0001")
        assert job["status"] == "COMPLETE", job
        agent = cls.server.agent()
        cls.kb = agent.create_knowledge_base(
            name="members-api", roleArn="arn:aws:iam::123456789012:role/kb",
            knowledgeBaseConfiguration={"type": "VECTOR", "vectorKnowledgeBaseConfiguration": {
                "embeddingModelArn": ARN.format("minilm")}})["knowledgeBase"]["knowledgeBaseId"]
        cls.ds = agent.create_data_source(
            knowledgeBaseId=cls.kb, name="members-custom",
            dataSourceConfiguration={"type": "CUSTOM"})["dataSource"]["dataSourceId"]
        cls.counter = 0

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        cls.llm.close()
        cls.reranker.close()

    def unique(self, stem):
        Members.counter += 1
        return f"{stem}-{Members.counter}"

    def base(self, op):
        """A valid request of `op` that Quarry honours whole."""
        kb_arn = f"arn:aws:bedrock:us-east-1:000000000000:knowledge-base/{self.kb}"
        vector = {"type": "VECTOR", "vectorKnowledgeBaseConfiguration": {"embeddingModelArn": ARN.format("minilm")}}
        text_doc = {"content": {"dataSourceType": "CUSTOM", "custom": {
            "customDocumentIdentifier": {"id": "members-doc"}, "sourceType": "IN_LINE",
            "inlineContent": {"type": "TEXT", "textContent": {"data": "Vacation days for new employees."}}}}}
        rag = {"input": {"text": "How many vacation days?"}, "retrieveAndGenerateConfiguration": {
            "type": "KNOWLEDGE_BASE", "knowledgeBaseConfiguration": {
                "knowledgeBaseId": "DEMOKB0001", "modelArn": ARN.format("cite")}}}
        ds = {"knowledgeBaseId": self.kb, "dataSourceId": self.ds}
        return {
            "CreateKnowledgeBase": lambda: {"name": self.unique("members"), "roleArn": "arn:aws:iam::1:role/r",
                                            "knowledgeBaseConfiguration": vector},
            "UpdateKnowledgeBase": lambda: {"knowledgeBaseId": self.kb, "name": "members-api",
                                            "roleArn": "arn:aws:iam::123456789012:role/kb",
                                            "knowledgeBaseConfiguration": vector},
            "ListKnowledgeBases": lambda: {},
            "GetKnowledgeBase": lambda: {"knowledgeBaseId": self.kb},
            "CreateDataSource": lambda: {"knowledgeBaseId": self.kb, "name": self.unique("members-ds"),
                                         "dataSourceConfiguration": {"type": "CUSTOM"}},
            "UpdateDataSource": lambda: dict(ds, name="members-custom", dataSourceConfiguration={"type": "CUSTOM"}),
            "ListDataSources": lambda: {"knowledgeBaseId": self.kb},
            "GetDataSource": lambda: dict(ds),
            "StartIngestionJob": lambda: {"knowledgeBaseId": "BULKKB0001", "dataSourceId": "BULKDS0001"},
            "ListIngestionJobs": lambda: {"knowledgeBaseId": "DEMOKB0001", "dataSourceId": "DEMODS0001"},
            "IngestKnowledgeBaseDocuments": lambda: dict(ds, documents=[text_doc]),
            "ListKnowledgeBaseDocuments": lambda: dict(ds),
            "DeleteKnowledgeBaseDocuments": lambda: dict(ds, documentIdentifiers=[
                {"dataSourceType": "CUSTOM", "custom": {"id": "members-gone"}}]),
            "GetKnowledgeBaseDocuments": lambda: dict(ds, documentIdentifiers=[
                {"dataSourceType": "CUSTOM", "custom": {"id": "members-doc"}}]),
            "TagResource": lambda: {"resourceArn": kb_arn, "tags": {"team": "search"}},
            "UntagResource": lambda: {"resourceArn": kb_arn, "tagKeys": ["team"]},
            "ListTagsForResource": lambda: {"resourceArn": kb_arn},
            "Retrieve": lambda: {"knowledgeBaseId": "DEMOKB0001", "retrievalQuery": {"text": "vacation days"}},
            "RetrieveAndGenerate": lambda: rag,
            "RetrieveAndGenerateStream": lambda: rag,
            "Rerank": lambda: {
                "queries": [{"type": "TEXT", "textQuery": {"text": "vacation"}}],
                "sources": [{"type": "INLINE", "inlineDocumentSource": {
                    "type": "TEXT", "textDocument": {"text": "vacation days"}}}],
                "rerankingConfiguration": {"type": "BEDROCK_RERANKING_MODEL", "bedrockRerankingConfiguration": {
                    "modelConfiguration": {"modelArn": ARN.format("overlap")}}}},
        }[op]()

    def call(self, client, op, params):
        method = getattr(client, botocore.xform_name(op))
        try:
            out = method(**params)
            if op == "RetrieveAndGenerateStream":
                for _ in out["stream"]:
                    pass
            return None
        except botocore.exceptions.ClientError as e:
            return e.response["Error"]
        except botocore.exceptions.EventStreamError as e:
            return e.response["Error"]

    def test_every_member_is_honoured_or_refused_by_name(self):
        session = botocore.session.get_session()
        failures, checked = [], 0
        for service, ops in HONOURED.items():
            client = self.server.client(service)
            model = session.get_service_model(service)
            for op, honoured in ops.items():
                shape = model.operation_model(op).input_shape
                # The request every case starts from is honoured whole.
                takes_body = any(m.serialization.get("location") != "uri" for m in shape.members.values())
                error = self.call(client, op, self.base(op)) if takes_body else None
                if error and not (op == "StartIngestionJob" and error["Code"] == "ConflictException"):
                    failures.append(f"{service} {op}: the base request failed: {error}")
                for path, member, parent in member_paths(shape):
                    if "." not in path and member.serialization.get("location") == "uri":
                        continue
                    params = self.base(op)
                    value = value_for(member)
                    if path.endswith("clientToken"):
                        value = "members-" + "0" * 40 + str(checked)
                    set_path(params, path, value, shape)
                    error = self.call(client, op, params)
                    checked += 1
                    message = (error or {}).get("Message", "")
                    refused = error is not None and "does not support" in message
                    named = refused and path.startswith(normalized(message.split(":")[0]))
                    if honoured_name(path) in honoured:
                        if refused and named:
                            failures.append(f"{service} {op} {path}: honoured, but refused: {message}")
                    elif not (error and error.get("Code") == "ValidationException" and named):
                        failures.append(f"{service} {op} {path}: neither honoured nor refused by name: "
                                        f"{error or 'accepted'}")
        self.assertGreater(checked, 900)
        self.assertEqual(failures, [], "\n".join(failures))

    def test_every_honoured_member_names_a_test_that_exists(self):
        """The table above is a promise: each test it names must exist."""
        sources = {}
        for name in os.listdir(HERE):
            if name.startswith("test_") and name.endswith(".py"):
                with open(os.path.join(HERE, name)) as f:
                    sources[name[:-3]] = f.read()
        missing = set()
        for ops in HONOURED.values():
            for test in {t for members in ops.values() for t in members.values()}:
                module, cls, fn = test.split(".")
                src = sources.get(module, "")
                if f"class {cls}(" not in src or f"def {fn}(" not in src:
                    missing.add(test)
        self.assertEqual(missing, set())

    def test_operations_quarry_does_not_serve_are_unknown_operations(self):
        for method, path in (("GET", "/agents/"), ("POST", "/flows/"), ("PATCH", "/knowledgebases/DEMOKB0001")):
            status, headers, body = self.server.raw(method, path, headers=self.sign(method, path))
            self.assertEqual(status, 404, body)
            self.assertEqual(headers["x-amzn-ErrorType"], "UnknownOperationException")
            self.assertIn(f"{method} {path}", body.decode())

    def sign(self, method, path):
        return sign(self.server.url + path, b"", KEY_ID, SECRET, method=method)


if __name__ == "__main__":
    unittest.main()
