"""A published client of Bedrock knowledge bases, unchanged but for its endpoint: LangChain's
`AmazonKnowledgeBasesRetriever` (langchain-aws, from PyPI) against the real `quarry serve`,
with and without a reranking configuration."""
import pylib

pylib.use("langchain-aws", "langchain-aws==1.9.1", "langchain_aws")

import unittest  # noqa: E402

from langchain_aws import AmazonKnowledgeBasesRetriever  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from harness import KEY_ID, SECRET  # noqa: E402
from rerank_server import server_with_reranker  # noqa: E402

QUERY = "How many vacation days do new employees get?"


class LangChain(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server, cls.reranker = server_with_reranker()

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        cls.reranker.close()

    def retriever(self, **vector):
        return AmazonKnowledgeBasesRetriever(
            knowledge_base_id="DEMOKB0001", region_name="us-east-1", endpoint_url=self.server.url,
            aws_access_key_id=SecretStr(KEY_ID), aws_secret_access_key=SecretStr(SECRET),
            retrieval_config={"vectorSearchConfiguration": {"numberOfResults": 4, **vector}})

    def test_retrieves_passages(self):
        docs = self.retriever().invoke(QUERY)
        self.assertEqual(len(docs), 4)
        self.assertIn("25 days", docs[0].page_content)

    def test_reranks_when_configured(self):
        plain = self.retriever().invoke(QUERY)
        reranked = self.retriever(rerankingConfiguration={
            "type": "BEDROCK_RERANKING_MODEL", "bedrockRerankingConfiguration": {
                "modelConfiguration": {"modelArn": "arn:aws:bedrock:us-east-1::foundation-model/overlap"},
                "numberOfRerankedResults": 2}}).invoke(QUERY)
        self.assertEqual(len(reranked), 2)
        sent = self.reranker.requests()[-1]["body"]
        self.assertEqual(sent["documents"], [d.page_content for d in plain])
        self.assertEqual([d.metadata["score"] for d in reranked],
                         sorted((d.metadata["score"] for d in reranked), reverse=True))


if __name__ == "__main__":
    unittest.main()
