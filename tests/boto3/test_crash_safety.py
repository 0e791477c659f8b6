"""kill -9 at any point of a sync loses nothing: after restarting, the next sync leaves the
index exactly as a clean sync of the same bucket does (chunk ids are deterministic, so the
two can be compared id for id): no duplicates, no orphans, nothing missing."""
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from harness import MODEL, S3Server

CONFIG = """[server]
data_dir = "data"

[models.minilm]
kind = "bert"
path = "{model}"

[s3]
endpoint_url = "{endpoint}"
region = "us-east-1"

[[knowledge_bases]]
id = "CRASHKB001"
name = "crash"
embedding_model = "minilm"

[[knowledge_bases.data_sources]]
id = "CRASHDS001"
name = "bucket"
type = "s3"
bucket = "crash"
chunking = {{ strategy = "FIXED_SIZE", max_tokens = 60, overlap_percentage = 20 }}
"""


def document(i, version):
    sentences = [f"Report {i} version {version} paragraph {j} describes valve {i * 7 + j} and pump {j}." for j in range(30)]
    return " ".join(sentences).encode()


class Workspace:
    def __init__(self, endpoint):
        self.dir = tempfile.mkdtemp(prefix="quarry-crash-")
        self.config = os.path.join(self.dir, "knowledge-bases.toml")
        with open(self.config, "w") as f:
            f.write(CONFIG.format(model=MODEL, endpoint=endpoint))
        self.env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")

    def run(self, *args):
        return subprocess.run([os.environ["QUARRY_BIN"], "--config", self.config, *args],
                              capture_output=True, text=True, env=self.env, timeout=600)

    def sync(self):
        out = self.run("sync", "crash", "--json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def sync_killed_after(self, seconds):
        process = subprocess.Popen([os.environ["QUARRY_BIN"], "--config", self.config, "sync", "crash"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self.env)
        time.sleep(seconds)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def inspect(self):
        out = self.run("inspect", "crash")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class CrashSafety(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s3 = S3Server()
        cls.s3.client.create_bucket(Bucket="crash")
        for i in range(40):
            cls.s3.client.put_object(Bucket="crash", Key=f"reports/r{i:02d}.txt", Body=document(i, 1))

    @classmethod
    def tearDownClass(cls):
        cls.s3.close()

    def assert_consistent_and_equal(self, killed, clean):
        got, want = killed.inspect(), clean.inspect()
        self.assertEqual(got["orphanChunks"], [], "chunks in the store that no document owns")
        self.assertEqual(got["missingChunks"], [], "chunks the ledger records but the store lacks")
        self.assertEqual(got["pendingDocuments"], [], "documents left half-written")
        bucket_keys = sorted(o["Key"] for o in self.s3.client.list_objects_v2(Bucket="crash").get("Contents", []))
        self.assertEqual(sorted(got["documents"]), bucket_keys)
        self.assertEqual(got["documents"], want["documents"], "the index differs from a clean sync of the same bucket")
        self.assertEqual(got["chunks"], sum(len(ids) for ids in got["documents"].values()), "duplicate chunks")

    def test_kill_9_at_several_points_then_resync(self):
        killed = Workspace(self.s3.url)
        clean = Workspace(self.s3.url)
        try:
            # A first sync, killed again and again at different points.
            rng = random.Random(7)
            progress = []
            for seconds in [0.6, 1.2, 2.0] + [rng.uniform(0.8, 4.0) for _ in range(3)]:
                killed.sync_killed_after(seconds)
                progress.append(len(killed.inspect()["documents"]))
            # The kills landed mid-sync: some documents were indexed, not all.
            self.assertTrue(any(0 < n < 40 for n in progress), f"documents indexed after each kill: {progress}")
            killed.sync()
            clean.sync()
            self.assert_consistent_and_equal(killed, clean)

            # A change sync (edits, deletions, additions), killed midway.
            for i in range(0, 40, 3):
                self.s3.client.put_object(Bucket="crash", Key=f"reports/r{i:02d}.txt", Body=document(i, 2))
            for i in range(1, 40, 8):
                self.s3.client.delete_object(Bucket="crash", Key=f"reports/r{i:02d}.txt")
            for i in range(40, 46):
                self.s3.client.put_object(Bucket="crash", Key=f"reports/r{i:02d}.txt", Body=document(i, 1))
            for seconds in (0.7, 1.5, 2.5):
                killed.sync_killed_after(seconds)
            killed.sync()
            clean.sync()
            self.assert_consistent_and_equal(killed, clean)
            # And once consistent, a further sync has nothing to do.
            stats = killed.sync()["statistics"]
            self.assertEqual((stats["numberOfNewDocumentsIndexed"], stats["numberOfModifiedDocumentsIndexed"], stats["numberOfDocumentsDeleted"]), (0, 0, 0))
        finally:
            killed.close()
            clean.close()


if __name__ == "__main__":
    unittest.main()
