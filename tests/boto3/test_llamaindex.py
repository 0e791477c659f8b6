"""A published client of Bedrock knowledge bases, unchanged but for its endpoint: LlamaIndex's
`AmazonKnowledgeBasesRetriever` (llama-index-retrievers-bedrock, from PyPI), which takes no
endpoint argument, pointed at the real `quarry serve` through the AWS SDK's own setting,
AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME."""
import pylib

pylib.use("llama-index", "llama-index-retrievers-bedrock==0.7.0", "llama_index.retrievers.bedrock")

import os  # noqa: E402
import unittest  # noqa: E402

from llama_index.retrievers.bedrock import AmazonKnowledgeBasesRetriever  # noqa: E402

from harness import KEY_ID, SECRET  # noqa: E402
from rerank_server import server_with_reranker  # noqa: E402

QUERY = "How many vacation days do new employees get?"


class LlamaIndex(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server, cls.reranker = server_with_reranker()
        os.environ["AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME"] = cls.server.url

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        cls.reranker.close()

    def retriever(self, **vector):
        return AmazonKnowledgeBasesRetriever(
            knowledge_base_id="DEMOKB0001", region_name="us-east-1",
            aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
            retrieval_config={"vectorSearchConfiguration": {"numberOfResults": 4, **vector}})

    def test_retrieves_and_reranks(self):
        plain = self.retriever().retrieve(QUERY)
        self.assertEqual(len(plain), 4)
        self.assertIn("25 days", plain[0].node.get_content())
        reranked = self.retriever(rerankingConfiguration={
            "type": "BEDROCK_RERANKING_MODEL", "bedrockRerankingConfiguration": {
                "modelConfiguration": {"modelArn": "arn:aws:bedrock:us-east-1::foundation-model/overlap"},
                "numberOfRerankedResults": 2}}).retrieve(QUERY)
        self.assertEqual(len(reranked), 2)
        sent = self.reranker.requests()[-1]["body"]
        self.assertEqual(sent["documents"], [n.node.get_content() for n in plain])
        self.assertGreaterEqual(reranked[0].score, reranked[1].score)


if __name__ == "__main__":
    unittest.main()
