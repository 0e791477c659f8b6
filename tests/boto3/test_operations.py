"""Operating the server: 429 past saturation, /metrics, graceful shutdown that resumes jobs."""
import concurrent.futures
import json
import time
import unittest
import urllib.request

from harness import Server


class Health(unittest.TestCase):
    def test_live_and_ready_need_no_signature(self):
        server = Server()
        try:
            for path, status in (("/health/live", "live"), ("/health/ready", "ready")):
                code, headers, body = server.raw("GET", path)
                self.assertEqual(code, 200, body)
                self.assertEqual(json.loads(body)["status"], status)
            # Everything else still needs one.
            code, _, _ = server.raw("GET", "/knowledgebases/DEMOKB0001")
            self.assertEqual(code, 403)
        finally:
            server.close()


class Throttling(unittest.TestCase):
    def test_a_full_encoder_queue_answers_429_at_once(self):
        server = Server(extra_server_toml="max_queued_queries = 1")
        try:
            rt = server.runtime()
            text = " ".join(f"long query word {i}" for i in range(60))

            def call(_):
                started = time.time()
                try:
                    rt.retrieve(knowledgeBaseId="DEMOKB0001", retrievalQuery={"text": text})
                    return "ok", time.time() - started
                except rt.exceptions.ThrottlingException:
                    return "throttled", time.time() - started

            with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
                outcomes = list(pool.map(call, range(96)))
            kinds = [k for k, _ in outcomes]
            self.assertIn("throttled", kinds)
            self.assertIn("ok", kinds)
            slowest_refusal = max(t for k, t in outcomes if k == "throttled")
            self.assertLess(slowest_refusal, 5.0, "a refusal should not wait in line")
            metrics = urllib.request.urlopen(server.url + "/metrics").read().decode()
            self.assertIn('quarry_requests_total{operation="Retrieve",status="429"}', metrics)
            self.assertIn('quarry_requests_total{operation="Retrieve",status="200"}', metrics)
            self.assertIn("quarry_tokens_embedded_total", metrics)
            self.assertIn("quarry_encoder_queue_depth", metrics)
        finally:
            server.close()


class Shutdown(unittest.TestCase):
    def test_sigterm_stops_jobs_cleanly_and_they_resume_at_next_start(self):
        server = Server(generated_docs=200)
        try:
            ag = server.agent()
            job = ag.start_ingestion_job(knowledgeBaseId="BULKKB0001", dataSourceId="BULKDS0001")["ingestionJob"]
            time.sleep(1.0)
            self.assertEqual(server.stop(), 0, "the server should exit cleanly on SIGTERM")
            server.start()
            ag = server.agent()
            first = ag.get_ingestion_job(knowledgeBaseId="BULKKB0001", dataSourceId="BULKDS0001", ingestionJobId=job["ingestionJobId"])["ingestionJob"]
            self.assertEqual(first["status"], "STOPPED")
            jobs = ag.list_ingestion_jobs(knowledgeBaseId="BULKKB0001", dataSourceId="BULKDS0001",
                                          sortBy={"attribute": "STARTED_AT", "order": "DESCENDING"})["ingestionJobSummaries"]
            self.assertEqual(len(jobs), 2)
            resumed = jobs[0]
            self.assertEqual(resumed["description"], "resumed after restart")
            done = server.wait("BULKKB0001", "BULKDS0001", resumed["ingestionJobId"], timeout=300)
            self.assertEqual(done["status"], "COMPLETE")
            total = first["statistics"]["numberOfNewDocumentsIndexed"] + done["statistics"]["numberOfNewDocumentsIndexed"]
            self.assertEqual(total, 200)
        finally:
            server.close()


if __name__ == "__main__":
    unittest.main()
