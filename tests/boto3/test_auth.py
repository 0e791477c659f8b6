"""SigV4 authentication and per-key grants, through boto3 and raw HTTP."""
import datetime
import json
import unittest
from unittest import mock

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from harness import KEY_ID, LIMITED_KEY_ID, LIMITED_SECRET, SECRET, Server


class Auth(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def query(self, client, kb="DEMOKB0001"):
        return client.retrieve(knowledgeBaseId=kb, retrievalQuery={"text": "battery"})

    def test_a_signed_request_is_served(self):
        self.assertIn("retrievalResults", self.query(self.server.runtime()))

    def test_a_wrong_secret_is_denied(self):
        rt = self.server.runtime(secret="not-the-secret")
        with self.assertRaises(rt.exceptions.AccessDeniedException) as e:
            self.query(rt)
        self.assertIn("signature", str(e.exception))
        ag = self.server.agent(secret="not-the-secret")
        with self.assertRaises(ag.exceptions.AccessDeniedException):
            ag.list_knowledge_bases()

    def test_an_unknown_key_is_denied(self):
        rt = self.server.runtime(key="AKIDUNKNOWN000000000")
        with self.assertRaises(rt.exceptions.AccessDeniedException):
            self.query(rt)

    def test_an_unsigned_request_is_denied_in_bedrocks_form(self):
        status, headers, body = self.server.raw("POST", "/knowledgebases/DEMOKB0001/retrieve",
                                                b'{"retrievalQuery": {"text": "x"}}', {"Content-Type": "application/json"})
        self.assertEqual(status, 403)
        self.assertEqual(headers.get("x-amzn-ErrorType"), "AccessDeniedException")
        self.assertIn("x-amzn-RequestId", headers)
        self.assertIn("Signature Version 4", json.loads(body)["message"])

    def test_a_stale_signature_is_denied(self):
        body = b'{"retrievalQuery": {"text": "x"}}'
        req = AWSRequest(method="POST", url=self.server.url + "/knowledgebases/DEMOKB0001/retrieve", data=body,
                         headers={"Content-Type": "application/json"})
        stale = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)
        with mock.patch("botocore.auth.get_current_datetime", return_value=stale.replace(tzinfo=None)):
            SigV4Auth(Credentials(KEY_ID, SECRET), "bedrock", "us-east-1").add_auth(req)
        self.assertEqual(req.headers["X-Amz-Date"], stale.strftime("%Y%m%dT%H%M%SZ"))
        status, headers, payload = self.server.raw("POST", "/knowledgebases/DEMOKB0001/retrieve", body, dict(req.headers))
        self.assertEqual(status, 403)
        self.assertEqual(headers.get("x-amzn-ErrorType"), "AccessDeniedException")
        self.assertIn("expired", json.loads(payload)["message"])

    def test_a_key_is_limited_to_its_knowledge_bases(self):
        rt = self.server.runtime(key=LIMITED_KEY_ID, secret=LIMITED_SECRET)
        self.assertIn("retrievalResults", self.query(rt, kb="BULKKB0001"))
        with self.assertRaises(rt.exceptions.AccessDeniedException) as e:
            self.query(rt, kb="DEMOKB0001")
        self.assertIn("DEMOKB0001", str(e.exception))
        ag = self.server.agent(key=LIMITED_KEY_ID, secret=LIMITED_SECRET)
        names = [kb["name"] for kb in ag.list_knowledge_bases()["knowledgeBaseSummaries"]]
        self.assertEqual(names, ["bulk"])


if __name__ == "__main__":
    unittest.main()
