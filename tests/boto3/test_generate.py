"""RetrieveAndGenerate through the real AWS SDK for Python: the embedded SmolLM2 model
(non-streamed and streamed, same greedy answer), citations whose spans slice the answer,
sessions, prompt templates and inference settings reaching an OpenAI-compatible backend,
and its failures as DependencyFailedException."""
import os
import unittest

import botocore.exceptions

from harness import ROOT, Server
from openai_server import OpenAiServer

SMOLLM2 = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
ARN = "arn:aws:bedrock:us-east-1::foundation-model/{}"
QUESTION = "How many vacation days do new employees get?"


def config(model, n=3, **generation):
    kb = {"knowledgeBaseId": "DEMOKB0001", "modelArn": model,
          "retrievalConfiguration": {"vectorSearchConfiguration": {"numberOfResults": n}}}
    if generation:
        kb["generationConfiguration"] = generation
    return {"type": "KNOWLEDGE_BASE", "knowledgeBaseConfiguration": kb}


def greedy(max_tokens):
    return {"inferenceConfig": {"textInferenceConfig": {"maxTokens": max_tokens, "temperature": 0}}}


class Generate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.llm = OpenAiServer()
        models = f'''
[models.smollm2]
kind = "gguf-llama"
path = "{SMOLLM2}"
'''
        for name in ["cite", "flaky", "fail", "denied", "midway"]:
            models += f'''
[models."{name}"]
kind = "openai"
base_url = "{cls.llm.url}"
model = "{name}"
api_key_env = "TEST_LLM_KEY"
max_retries = 2
'''
        cls.server = Server(extra_toml=models, env={"TEST_LLM_KEY": "sk-test-123"})
        job = cls.server.sync("DEMOKB0001", "DEMODS0001")
        assert job["status"] == "COMPLETE", job
        cls.rt = cls.server.runtime()

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        cls.llm.close()

    def assert_citations_slice(self, text, citations):
        self.assertTrue(citations)
        for c in citations:
            part = c["generatedResponsePart"]["textResponsePart"]
            span = part["span"]
            self.assertLessEqual(0, span["start"])
            self.assertLessEqual(span["start"], span["end"])
            self.assertLessEqual(span["end"], len(text))
            self.assertEqual(text[span["start"]:span["end"]], part["text"])
            for ref in c["retrievedReferences"]:
                self.assertTrue(ref["content"]["text"])
                self.assertIn(ref["location"]["type"], ("S3", "CUSTOM"))
                self.assertIn("x-amz-bedrock-kb-source-uri", ref["metadata"])

    # -- the embedded model ------------------------------------------------------------

    def test_smollm2_answers_and_the_stream_says_the_same(self):
        request = dict(input={"text": QUESTION},
                       retrieveAndGenerateConfiguration=config(ARN.format("smollm2"), n=2, **greedy(40)))
        whole = self.rt.retrieve_and_generate(**request)
        text = whole["output"]["text"]
        self.assertTrue(text.strip())
        self.assertRegex(whole["sessionId"], r"^[0-9a-zA-Z._:-]{2,100}$")
        self.assert_citations_slice(text, whole["citations"])

        streamed = self.rt.retrieve_and_generate_stream(**request)
        self.assertRegex(streamed["sessionId"], r"^[0-9a-zA-Z._:-]{2,100}$")
        self.assertNotEqual(streamed["sessionId"], whole["sessionId"])
        outputs, citations = [], []
        for event in streamed["stream"]:
            if "output" in event:
                self.assertFalse(citations, "citations come after the text")
                outputs.append(event["output"]["text"])
            elif "citation" in event:
                # CitationEvent: the citation's parts at the top, and (deprecated) under "citation".
                cited = event["citation"]
                self.assertEqual(cited["citation"]["generatedResponsePart"], cited["generatedResponsePart"])
                citations.append(cited)
        self.assertGreater(len(outputs), 1, "the answer streams in pieces")
        self.assertEqual("".join(outputs), text)
        self.assert_citations_slice(text, citations)

    # -- an OpenAI-compatible backend --------------------------------------------------

    def test_markers_become_citations_of_the_passages_they_name(self):
        r = self.rt.retrieve_and_generate(input={"text": QUESTION},
                                          retrieveAndGenerateConfiguration=config(ARN.format("cite")))
        text = r["output"]["text"]
        self.assertNotIn("[1]", text)
        self.assertEqual(len(r["citations"]), 2)
        self.assert_citations_slice(text, r["citations"])
        prompt = self.llm.requests("cite")[-1]["body"]["messages"][0]["content"]
        for number, c in enumerate(r["citations"], start=1):
            (ref,) = c["retrievedReferences"]
            # The cited sentence was made from that numbered result's first words.
            first_words = c["generatedResponsePart"]["textResponsePart"]["text"].split()[:3]
            self.assertIn(f"[{number}] ", prompt)
            self.assertTrue(" ".join(first_words)[:10] in " ".join(ref["content"]["text"].split()).replace(",", "").replace(".", ""),
                            (first_words, ref["content"]["text"][:80]))
        self.assertEqual(self.llm.requests("cite")[-1]["headers"].get("Authorization")
                         or self.llm.requests("cite")[-1]["headers"].get("authorization"), "Bearer sk-test-123")

    def test_a_second_turn_carries_the_first(self):
        first = self.rt.retrieve_and_generate(input={"text": QUESTION},
                                              retrieveAndGenerateConfiguration=config(ARN.format("cite")))
        session = first["sessionId"]
        second = self.rt.retrieve_and_generate(input={"text": "And after five years?"}, sessionId=session,
                                               retrieveAndGenerateConfiguration=config(ARN.format("cite")))
        self.assertEqual(second["sessionId"], session)
        messages = self.llm.requests("cite")[-1]["body"]["messages"]
        self.assertEqual([m["role"] for m in messages], ["system", "user", "assistant", "user"])
        self.assertEqual(messages[1]["content"], QUESTION)
        self.assertEqual(messages[2]["content"], first["output"]["text"])
        self.assertEqual(messages[3]["content"], "And after five years?")
        with self.assertRaises(self.rt.exceptions.ValidationException) as e:
            self.rt.retrieve_and_generate(input={"text": "?"}, sessionId="no-such-session",
                                          retrieveAndGenerateConfiguration=config(ARN.format("cite")))
        self.assertIn("no-such-session", str(e.exception))

    def test_prompt_template_and_inference_settings_reach_the_backend(self):
        template = "Sources:\n$search_results$\nQuestion: $query$\n$output_format_instructions$"
        self.rt.retrieve_and_generate(input={"text": QUESTION}, retrieveAndGenerateConfiguration=config(
            "cite", n=2, promptTemplate={"textPromptTemplate": template},
            inferenceConfig={"textInferenceConfig": {"maxTokens": 77, "temperature": 0.5, "topP": 0.8,
                                                     "stopSequences": ["\n\nUser:"]}}))
        body = self.llm.requests("cite")[-1]["body"]
        self.assertEqual((body["max_tokens"], body["temperature"], body["top_p"], body["stop"], body["stream"]),
                         (77, 0.5, 0.8, ["\n\nUser:"], True))
        (message,) = body["messages"]
        self.assertEqual(message["role"], "user")
        self.assertTrue(message["content"].startswith("Sources:\n[1] "))
        self.assertIn("\n[2] ", message["content"])
        self.assertNotIn("[3] ", message["content"])
        self.assertIn(f"\nQuestion: {QUESTION}\n", message["content"])
        self.assertIn("square brackets", message["content"])

    def test_generated_tokens_are_counted_in_metrics(self):
        def count(kind):
            status, _, body = self.server.raw("GET", "/metrics")
            self.assertEqual(status, 200)
            line = f'quarry_generation_tokens_total{{model="cite",kind="{kind}"}} '
            values = [int(l[len(line):]) for l in body.decode().splitlines() if l.startswith(line)]
            return values[0] if values else 0
        before = (count("prompt"), count("completion"))
        self.rt.retrieve_and_generate(input={"text": QUESTION},
                                      retrieveAndGenerateConfiguration=config(ARN.format("cite")))
        after = (count("prompt"), count("completion"))
        self.assertGreater(after[0], before[0])
        self.assertGreater(after[1], before[1])

    def test_transient_failures_are_retried(self):
        before = len(self.llm.requests("flaky"))
        r = self.rt.retrieve_and_generate(input={"text": QUESTION},
                                          retrieveAndGenerateConfiguration=config(ARN.format("flaky")))
        self.assertTrue(r["output"]["text"])
        self.assertEqual(len(self.llm.requests("flaky")) - before, 2)

    def test_a_failing_backend_is_a_dependency_failure(self):
        for model, attempts, reason in [("fail", 3, "overloaded"), ("denied", 1, "Incorrect API key")]:
            before = len(self.llm.requests(model))
            with self.assertRaises(self.rt.exceptions.DependencyFailedException) as e:
                self.rt.retrieve_and_generate(input={"text": QUESTION},
                                              retrieveAndGenerateConfiguration=config(ARN.format(model)))
            self.assertIn(reason, str(e.exception))
            self.assertEqual(len(self.llm.requests(model)) - before, attempts)
        with self.assertRaises(self.rt.exceptions.DependencyFailedException):
            self.rt.retrieve_and_generate_stream(input={"text": QUESTION},
                                                 retrieveAndGenerateConfiguration=config(ARN.format("denied")))

    def test_a_backend_failing_mid_answer_ends_the_stream_with_an_exception(self):
        streamed = self.rt.retrieve_and_generate_stream(
            input={"text": QUESTION}, retrieveAndGenerateConfiguration=config(ARN.format("midway")))
        outputs = []
        with self.assertRaises(botocore.exceptions.EventStreamError) as e:
            for event in streamed["stream"]:
                outputs.append(event["output"]["text"])
        self.assertTrue(outputs, "the text before the failure arrived")
        self.assertEqual(e.exception.response["Error"]["Code"], "dependencyFailedException")
        self.assertIn("crashed mid-answer", str(e.exception))

    def test_bad_requests_are_validation_errors(self):
        cases = [
            (config(ARN.format("no-such-model")), "no-such-model"),
            (config("cite", promptTemplate={"textPromptTemplate": "Answer $query$"}), "$search_results$"),
            (config("cite", inferenceConfig={"textInferenceConfig": {"temperature": 3}}), "temperature"),
            ({"type": "EXTERNAL_SOURCES"}, "EXTERNAL_SOURCES"),
        ]
        for configuration, words in cases:
            with self.subTest(words=words):
                try:
                    self.rt.retrieve_and_generate(input={"text": QUESTION},
                                                  retrieveAndGenerateConfiguration=configuration)
                    self.fail("accepted")
                except self.rt.exceptions.ValidationException as e:
                    self.assertIn(words, str(e))
                except botocore.exceptions.ParamValidationError as e:
                    self.assertIn(words.split("$")[0] or "temperature", str(e))
        missing = config("cite")
        missing["knowledgeBaseConfiguration"]["knowledgeBaseId"] = "NOSUCHKB01"
        with self.assertRaises(self.rt.exceptions.ResourceNotFoundException):
            self.rt.retrieve_and_generate(input={"text": QUESTION}, retrieveAndGenerateConfiguration=missing)


if __name__ == "__main__":
    unittest.main()
