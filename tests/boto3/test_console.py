"""The console (`/console/`) in real headless Chromium and Firefox against the real `quarry serve` with the
real model, S3 from moto and an OpenAI-protocol double for the answers: signing in (a wrong
secret refused with a clear message), creating a knowledge base and an S3 data source, a sync
watched to its end with Bedrock's statistics and a corrupt file's reason, a document's chunks
and parsed text, a filtered query, a streamed answer whose citation links to its passage and a
second turn in the same session; a key granted one knowledge base sees no other. The pages'
requests are SigV4-signed in the browser: the server accepts nothing else. Screenshots of
each step: tests/boto3/screenshots/ (not committed)."""
import os
import shutil
import time
import unittest

from browser import Chromium, Firefox
from harness import FIXTURES, KEY_ID, LIMITED_KEY_ID, LIMITED_SECRET, SECRET, S3Server, Server
from openai_server import OpenAiServer
from rerank_server import RerankServer

SHOTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "screenshots")
BUCKET = "console-docs"
QUESTION = "How many vacation days do new employees get?"
BULK_DOCS = 400  # enough that a sync of them is still running when the test looks


class ConsoleSteps:
    """The steps, run in each browser (BROWSER)."""

    @classmethod
    def setUpClass(cls):
        cls.shots = os.path.join(SHOTS, cls.BROWSER.name)
        shutil.rmtree(cls.shots, ignore_errors=True)
        cls.s3 = S3Server()
        cls.s3.client.create_bucket(Bucket=BUCKET)
        for folder, _, files in os.walk(FIXTURES):
            for name in files:
                path = os.path.join(folder, name)
                cls.s3.client.upload_file(path, BUCKET, os.path.relpath(path, FIXTURES))
        cls.s3.client.put_object(Bucket=BUCKET, Key="scans/broken.pdf", Body=b"%PDF-1.7\n this is no PDF body")
        cls.llm = OpenAiServer()
        cls.reranker = RerankServer()
        cls.server = Server(extra_toml=f'''
[s3]
endpoint_url = "{cls.s3.url}"
region = "us-east-1"
allowed_buckets = ["{BUCKET}"]

[models.cite]
kind = "openai"
base_url = "{cls.llm.url}"
model = "cite"

[models.reverse]
kind = "rerank-api"
base_url = "{cls.reranker.url}"
model = "reverse"
''', generated_docs=BULK_DOCS, env={"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"})
        cls.browser = cls.BROWSER()
        cls.console = cls.server.url + "/console/"

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        cls.server.close()
        cls.llm.close()
        cls.reranker.close()
        cls.s3.close()

    def shot(self, name):
        self.browser.screenshot(os.path.join(self.shots, f"{name}.png"))

    def heading(self):
        return self.browser.text(self.browser.find("main h1"))

    def wait_heading(self, text, timeout=60):
        return self.browser.wait(lambda: self.heading() == text, timeout, f"the page titled {text!r}")

    def sign_in(self, key, secret):
        b = self.browser
        b.get(self.console + "#/")
        b.wait(lambda: self.heading() not in ("", "Loading…"), 30, "the first page")
        if b.script("return !document.getElementById('sign-out').hidden;"):
            b.click(b.button("Sign out"))
        self.wait_heading("Sign in")
        b.type(b.field("Access key id"), key)
        b.type(b.field("Secret access key"), secret)
        b.click(b.button("Sign in"))

    def test_a_wrong_secret_is_refused_with_a_clear_message(self):
        b = self.browser
        self.sign_in(KEY_ID, "not-the-secret")
        alert = b.find("[role=alert]")
        self.assertIn("Sign-in failed", b.text(alert))
        self.assertIn("signature we calculated does not match", b.text(alert))
        self.assertEqual(self.heading(), "Sign in")
        self.shot("00-wrong-secret")
        self.sign_in("AKIDNOSUCHKEY0000000", SECRET)
        self.assertIn("unknown access key AKIDNOSUCHKEY0000000", b.text(b.find("[role=alert]")))

    def test_b_create_sync_browse_query_and_ask(self):
        b = self.browser
        agent = self.server.agent()
        self.sign_in(KEY_ID, SECRET)
        self.wait_heading("Knowledge bases")
        listed = b.body_text()
        self.assertIn("demo", listed)
        self.assertIn("bulk", listed)
        self.shot("01-knowledge-bases")

        # Create a knowledge base.
        b.type(b.field("Name"), "console-kb")
        b.type(b.field("Description"), "made in the console")
        b.click(b.button("Create knowledge base"))
        self.wait_heading("console-kb")
        kb = next(s for s in agent.list_knowledge_bases()["knowledgeBaseSummaries"] if s["name"] == "console-kb")
        kb_id = kb["knowledgeBaseId"]
        self.assertEqual(agent.get_knowledge_base(knowledgeBaseId=kb_id)["knowledgeBase"]["description"], "made in the console")
        self.assertIn(kb_id, b.body_text())
        self.shot("02-knowledge-base-created")

        # Add an S3 data source with fixed-size chunking.
        b.type(b.field("Name"), "handbook-bucket")
        b.type(b.field("Bucket"), BUCKET)
        b.choose(b.field("Chunking"), "FIXED_SIZE")
        b.type(b.field("Max tokens (fixed size)"), "120")
        b.click(b.button("Add data source"))
        self.wait_heading("handbook-bucket")
        ds = agent.list_data_sources(knowledgeBaseId=kb_id)["dataSourceSummaries"][0]
        ds_id = ds["dataSourceId"]
        made = agent.get_data_source(knowledgeBaseId=kb_id, dataSourceId=ds_id)["dataSource"]
        self.assertEqual(made["dataSourceConfiguration"]["s3Configuration"]["bucketArn"], f"arn:aws:s3:::{BUCKET}")
        chunking = made["vectorIngestionConfiguration"]["chunkingConfiguration"]
        self.assertEqual(chunking["fixedSizeChunkingConfiguration"]["maxTokens"], 120)
        self.assertIn("FIXED_SIZE (120 tokens, 20% overlap)", b.body_text())

        # Sync, and watch the job to its end.
        b.click(b.button("Start sync"))
        b.wait(lambda: b.text(b.find("#job-status")) in ("COMPLETE", "FAILED", "STOPPED"), 300, "the job to finish")
        status = b.wait(lambda: b.find_all("#job[data-status=COMPLETE]") and b.text(b.find("#job-status")), 30)
        self.assertEqual(status, "COMPLETE")
        job = agent.list_ingestion_jobs(knowledgeBaseId=kb_id, dataSourceId=ds_id)["ingestionJobSummaries"][0]
        s = job["statistics"]
        self.assertEqual(s["numberOfNewDocumentsIndexed"], 5)
        self.assertEqual(s["numberOfDocumentsFailed"], 1)
        progress = b.text(b.find("#job-progress"))
        self.assertIn(f"6 of {s['numberOfDocumentsScanned']} scanned documents", progress)
        self.assertIn("5 new, 0 modified, 0 metadata changed, 0 deleted, 1 failed", progress)
        reasons = b.find_all("#failure-reasons li")
        self.assertEqual(len(reasons), 1)
        self.assertIn(f"s3://{BUCKET}/scans/broken.pdf", b.text(reasons[0]))
        b.type(b.field("Filter failures"), "no-such-document")
        self.assertEqual(b.find_all("#failure-reasons li"), [])
        b.type(b.field("Filter failures"), "broken")
        self.assertEqual(len(b.find_all("#failure-reasons li")), 1)
        history = b.wait(lambda: [r for r in b.find_all("table tbody tr") if job["ingestionJobId"] in b.text(r)], 30, "the job in the history")
        self.assertIn("COMPLETE", b.text(history[0]))
        self.assertIn("Documents (5)", b.body_text())
        self.shot("03-sync-complete")

        # One document's chunks, in order, and what its parser extracted.
        key = "handbook/vacation-policy.md"
        b.click(b.find(f"a[href$='/doc/{key.replace('/', '%2F')}']"))
        self.wait_heading(key)
        sections = b.find_all("section.chunk")
        self.assertGreaterEqual(len(sections), 2, "120-token chunks split the policy")
        first = b.text(sections[0])
        self.assertIn("Chunk 1", first)
        self.assertRegex(first, r"\d+ tokens")
        summary = b.find("#parsed-text summary")
        b.click(summary)
        parsed = b.text(b.find("#parsed-text pre"))
        with open(os.path.join(FIXTURES, key)) as f:
            self.assertIn("vacation", parsed.lower())
            first_words = f.read().split()[1:4]
        self.assertIn(" ".join(first_words), parsed)
        chunk_texts = [b.text(b.find_all("section.chunk .text")[i]) for i in range(len(sections))]
        for text in chunk_texts:
            self.assertIn(text.split()[0], parsed)
        self.shot("04-document-chunks")

        # A filtered query in the test pane, as Retrieve answers it.
        b.get(self.console + f"#/kb/{kb_id}/test")
        self.wait_heading("Test console-kb")
        b.type(b.field("Query"), QUESTION)
        b.click(b.button("Add condition"))
        b.type(b.field("Attribute 1"), "department")
        b.type(b.field("Value 1"), "hr")
        b.click(b.button("Retrieve"))
        b.find("#results-title")
        results = b.find_all("section.result")
        rt = self.server.runtime()
        expected = rt.retrieve(knowledgeBaseId=kb_id, retrievalQuery={"text": QUESTION},
                               retrievalConfiguration={"vectorSearchConfiguration": {
                                   "numberOfResults": 5, "filter": {"equals": {"key": "department", "value": "hr"}}}})
        expected = expected["retrievalResults"]
        self.assertEqual(len(results), len(expected))
        self.assertTrue(expected)
        for shown, want in zip(results, expected):
            text = b.text(shown)
            self.assertIn(want["metadata"]["x-amz-bedrock-kb-source-uri"], text)
            self.assertIn(f"score {want['score']:.4f}", text)
            self.assertEqual(want["metadata"]["department"], "hr")
        code = b.text(b.find("#boto3-code"))
        self.assertIn("client.retrieve(", code)
        self.assertIn('"equals": {', code)
        self.shot("05-filtered-query")

        # The same query reranked by a model that reverses what it is given.
        b.choose(b.field("Reranking"), "reverse")
        b.click(b.button("Retrieve"))
        b.wait(lambda: "rerankingConfiguration" in b.text(b.find("#boto3-code")), 30, "the reranked request")
        b.find("#results-title")
        reranked = [" ".join(b.text(e).split()) for e in b.find_all("section.result .text")]
        self.assertEqual(self.reranker.requests()[-1]["body"]["model"], "reverse")
        self.assertEqual(reranked, [" ".join(w["content"]["text"].split()) for w in expected][::-1])
        b.choose(b.field("Reranking"), "")

        # A streamed answer whose citation links to its passage; a second turn in its session.
        b.click(b.button("Retrieve and generate"))
        mark = b.find("#answer mark.citation a", 120)
        answer = b.script("return document.getElementById('answer').dataset.text;")
        self.assertIn(b.text(mark), answer)
        b.click(mark)
        target = b.wait(lambda: b.find_all(".result.linked"), 10, "the cited passage to be marked")[0]
        focused = b.script("return document.activeElement.id;")
        self.assertEqual(focused, b.script("return arguments[0].id;", b.ref(target)))
        prompt = " ".join(m["content"] for m in self.llm.requests("cite")[-1]["body"]["messages"])
        cited = b.text(b.find(f"#{focused} .text"))
        self.assertIn(" ".join(cited.split()), " ".join(prompt.split()), "the linked passage is one the model was given")
        session = b.text(b.find("#session"))
        self.assertTrue(session.startswith("session "), session)
        self.assertIn("retrieve_and_generate_stream(", b.text(b.find("#boto3-code")))
        self.shot("06-answer-with-citation")
        b.type(b.field("Query"), "And after five years?")
        b.click(b.button("Retrieve and generate"))
        b.find("#answer[aria-busy=false]", 120)
        self.assertEqual(b.text(b.find("#session")), session)
        messages = self.llm.requests("cite")[-1]["body"]["messages"]
        self.assertEqual([m["role"] for m in messages], ["system", "user", "assistant", "user"])
        self.assertEqual(messages[1]["content"], QUESTION)
        self.assertEqual(messages[2]["content"], answer)
        self.shot("07-second-turn")

    def test_b2_a_running_sync_is_watched_live_and_stopped(self):
        b = self.browser
        self.sign_in(KEY_ID, SECRET)
        self.wait_heading("Knowledge bases")
        b.get(self.console + "#/kb/BULKKB0001/ds/BULKDS0001")
        self.wait_heading("notes")
        b.click(b.button("Start sync"))

        def partway():  # progress while it runs: some of the documents done, not all
            if b.text(b.find("#job-status")) != "IN_PROGRESS":
                return None
            done = int(b.text(b.find("#job-progress")).split(" of ")[0])
            return done if 0 < done < BULK_DOCS else None
        done = b.wait(partway, 120, "the job to be partway")
        progress = b.text(b.find("#job-progress"))
        self.assertIn(f"of {BULK_DOCS} scanned documents", progress)
        self.assertRegex(progress, r"[0-9.]+ documents/s")
        self.shot("03b-sync-in-progress")
        # A keyboard user on the Stop button keeps it while the progress is polled (it is updated
        # in place, not drawn anew each second).
        stop = b.button("Stop sync")
        b.script("arguments[0].focus();", b.ref(stop))
        time.sleep(2.5)
        self.assertEqual(b.script("return document.activeElement.textContent;"), "Stop sync")
        b.click(stop)
        b.wait(lambda: b.text(b.find("#job-status")) == "STOPPED", 120, "the job to stop")
        agent = self.server.agent()
        job = agent.list_ingestion_jobs(knowledgeBaseId="BULKKB0001", dataSourceId="BULKDS0001")["ingestionJobSummaries"][0]
        self.assertEqual(job["status"], "STOPPED")
        indexed = job["statistics"]["numberOfNewDocumentsIndexed"]
        self.assertTrue(done <= indexed < BULK_DOCS, (done, indexed))
        self.assertIn(f"{indexed} new", b.text(b.find("#job-progress")))
        self.shot("03c-sync-stopped")

    def test_c_a_key_sees_only_the_knowledge_bases_it_is_granted(self):
        b = self.browser
        self.sign_in(LIMITED_KEY_ID, LIMITED_SECRET)
        self.wait_heading("Knowledge bases")
        rows = [b.text(r) for r in b.find_all("table tbody tr")]
        self.assertEqual(len(rows), 1, rows)
        self.assertIn("BULKKB0001", rows[0])
        self.assertNotIn("demo", b.body_text())
        for page in ["#/kb/DEMOKB0001", "#/kb/DEMOKB0001/ds/DEMODS0001/doc/handbook%2Fvacation-policy.md"]:
            # From the list (no alert on it), so the alert seen is the new page's.
            b.get(self.console + "#/")
            self.wait_heading("Knowledge bases")
            b.get(self.console + page)
            b.wait(lambda: "AccessDeniedException" in b.text(b.find("[role=alert]")), 30, f"the refusal of {page}")
            self.assertNotIn("the fixtures", b.body_text(), "nothing of the other knowledge base is shown")
        self.shot("08-limited-key")
        # The console's own operations are the signed API's: nothing unsigned.
        status, _, body = self.server.raw("GET", "/quarry/models")
        self.assertEqual(status, 403, body)


class ConsoleInChromium(ConsoleSteps, unittest.TestCase):
    BROWSER = Chromium


class ConsoleInFirefox(ConsoleSteps, unittest.TestCase):
    BROWSER = Firefox


class OpenMode(unittest.TestCase):
    """Without access keys (loopback only) the console signs nothing and asks for no key."""

    def test_the_console_works_unsigned_in_open_mode(self):
        server = Server(auth=False)
        browser = Chromium()
        try:
            browser.get(server.url + "/console/")
            browser.wait(lambda: browser.text(browser.find("main h1")) == "Knowledge bases", 30)
            self.assertIn("Open mode", browser.text(browser.find("#who")))
            self.assertIn("DEMOKB0001", browser.body_text())
            browser.screenshot(os.path.join(SHOTS, "open-mode.png"))
        finally:
            browser.close()
            server.close()


if __name__ == "__main__":
    unittest.main()
