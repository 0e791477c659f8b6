"""Starts the real `quarry serve` on a scratch folder and hands out real boto3 clients.

Run through `cargo test --test api_boto3` (which sets QUARRY_BIN), or by hand:
QUARRY_BIN=target/debug/quarry python3 -m unittest tests/boto3/test_runtime.py
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

import boto3
from botocore.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "models", "all-MiniLM-L6-v2")
FIXTURES = os.path.join(ROOT, "fixtures", "docs")
KEY_ID, SECRET = "AKIDQUARRYTEST000001", "quarry-test-secret-key"
LIMITED_KEY_ID, LIMITED_SECRET = "AKIDQUARRYLIMITED001", "quarry-limited-secret"
NO_RETRIES = Config(retries={"total_max_attempts": 1}, read_timeout=30, connect_timeout=5)


class Server:
    """A scratch workspace (fixtures copied into docs/, a config with two access keys)
    and the server running on it."""

    def __init__(self, extra_server_toml="", generated_docs=0, auth=True, extra_toml="", env=None,
                 extra_keys=""):
        self.env = env or {}
        self.dir = tempfile.mkdtemp(prefix="quarry-boto3-")
        shutil.copytree(FIXTURES, os.path.join(self.dir, "docs"))
        os.makedirs(os.path.join(self.dir, "bulk"))
        for i in range(generated_docs):
            with open(os.path.join(self.dir, "bulk", f"note-{i:04d}.txt"), "w") as f:
                f.write(f"Maintenance note {i}. " + " ".join(f"Robot unit {i} passed inspection step {j}." for j in range(40)))
        keys = ""
        if auth:
            keys = f"""
[[server.access_keys]]
id = "{KEY_ID}"
secret_env = "QUARRY_TEST_SECRET"
knowledge_bases = ["*"]

[[server.access_keys]]
id = "{LIMITED_KEY_ID}"
secret_env = "QUARRY_TEST_LIMITED_SECRET"
knowledge_bases = ["bulk"]
{extra_keys}
"""
        with open(os.path.join(self.dir, "knowledge-bases.toml"), "w") as f:
            f.write(f"""[server]
data_dir = "data"
{extra_server_toml}
{keys}
[models.minilm]
kind = "bert"
path = "{MODEL}"

[[knowledge_bases]]
id = "DEMOKB0001"
name = "demo"
description = "the fixtures"
embedding_model = "minilm"

[[knowledge_bases.data_sources]]
id = "DEMODS0001"
name = "fixtures"
type = "local"
path = "docs"

[[knowledge_bases]]
id = "BULKKB0001"
name = "bulk"
embedding_model = "minilm"

[[knowledge_bases.data_sources]]
id = "BULKDS0001"
name = "notes"
type = "local"
path = "bulk"
{extra_toml}
""")
        self.process = None
        self.start()

    def start(self):
        env = dict(os.environ, QUARRY_TEST_SECRET=SECRET, QUARRY_TEST_LIMITED_SECRET=LIMITED_SECRET, **self.env)
        self.log = open(os.path.join(self.dir, "server.log"), "ab")
        self.process = subprocess.Popen(
            [os.environ["QUARRY_BIN"], "--config", os.path.join(self.dir, "knowledge-bases.toml"), "serve", "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=self.log, env=env,
        )
        line = self.process.stdout.readline().decode()
        self.process.stdout.close()
        if "://" not in line:
            raise RuntimeError(f"server did not start: {line!r}; see {self.dir}/server.log")
        self.url = line.strip().split(" on ")[-1]

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=timeout)
        self.log.close()
        return self.process.returncode

    def restart(self):
        self.stop()
        self.start()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def client(self, service, key=KEY_ID, secret=SECRET, config=NO_RETRIES):
        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id=key, aws_secret_access_key=secret, config=config)

    def runtime(self, **kw):
        return self.client("bedrock-agent-runtime", **kw)

    def agent(self, **kw):
        return self.client("bedrock-agent", **kw)

    def raw(self, method, path, body=b"", headers=None):
        """An HTTP request as given (unsigned unless the headers sign it); returns (status,
        headers (case-insensitive), body)."""
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def sync(self, kb, ds, timeout=120):
        """Starts an ingestion job and waits for it to finish; returns the job."""
        agent = self.agent()
        job = agent.start_ingestion_job(knowledgeBaseId=kb, dataSourceId=ds)["ingestionJob"]
        return self.wait(kb, ds, job["ingestionJobId"], timeout)

    def wait(self, kb, ds, job_id, timeout=120):
        agent = self.agent()
        deadline = time.time() + timeout
        while time.time() < deadline:
            job = agent.get_ingestion_job(knowledgeBaseId=kb, dataSourceId=ds, ingestionJobId=job_id)["ingestionJob"]
            if job["status"] in ("COMPLETE", "FAILED", "STOPPED"):
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not finish in {timeout}s")


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    """moto's S3 server on a free loopback port."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(self.port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(self.url, timeout=1)
                break
            except urllib.error.HTTPError:
                break
            except Exception:
                if time.time() > deadline or self.process.poll() is not None:
                    raise RuntimeError("moto_server did not start")
                time.sleep(0.2)
        self.client = boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                                   aws_access_key_id="test", aws_secret_access_key="test")

    def close(self):
        self.process.terminate()
        self.process.wait(timeout=10)
