"""Bad input and a missing registrar: the gateway answers (4xx / 503 + Retry-After) and
keeps serving (OPTIONS 200 afterwards, process alive)."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def register_with_auth(test, client, user, **kwargs):
    """REGISTER; when challenged, once more with valid credentials. Final response."""
    first = client.request("REGISTER", user=user, **kwargs)
    test.assertIsNotNone(first, "no answer")
    if first.status != 401:
        return first
    challenge = harness.md5_challenge(first)
    auth = client.authorization(user, harness.user_password(user), challenge)
    second = client.request("REGISTER", user=user, authorization=auth, **kwargs)
    test.assertIsNotNone(second, "no answer to the authenticated REGISTER")
    return second


class MalformedRegister(harness.E2ETestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = harness.Cluster(algorithms=("MD5",), name="malformed").start()

    def setUp(self):
        self.client = harness.SipClient(self.cluster.internal_port)
        self.addCleanup(self.client.close)

    def assert_still_serving(self):
        probe = harness.SipClient(self.cluster.internal_port)
        try:
            response = probe.request("OPTIONS", user="probe", contact=False, expires=None)
        finally:
            probe.close()
        self.assertIsNotNone(response, "gateway stopped answering")
        self.assertEqual(response.status, 200, response.raw)
        self.assertTrue(self.cluster.gateway.alive())
        self.assertTrue(self.cluster.registrar.alive())

    def assert_refused(self, response):
        self.assertGreaterEqual(response.status, 400, response.raw)
        self.assertLess(response.status, 500, response.raw)
        self.assertNotEqual(response.status, 401, "credentials were valid:\n" + response.raw)

    def test_contact_without_host(self):
        response = register_with_auth(self, self.client, "user020",
                                      contact_value="<sip:user020@>")
        self.assert_refused(response)
        self.assertEqual(self.cluster.registrations("sip:user020@example.com")["total"], 0)
        self.assert_still_serving()

    def test_expires_not_a_number(self):
        response = register_with_auth(self, self.client, "user021", expires="soon")
        self.assert_refused(response)
        self.assertEqual(self.cluster.registrations("sip:user021@example.com")["total"], 0)
        self.assert_still_serving()

    def test_huge_expires(self):
        response = register_with_auth(self, self.client, "user022",
                                      expires="99999999999999999999")
        self.assert_refused(response)
        self.assert_still_serving()

    def test_huge_contact_expires_parameter(self):
        response = register_with_auth(
            self, self.client, "user023", expires=None,
            contact_value="<sip:user023@127.0.0.1:%d>;expires=99999999999999999999"
            % self.client.port)
        # A contact expires parameter that does not fit is refused, or capped to max.
        if response.status == 200:
            (binding,) = self.cluster.registrations("sip:user023@example.com")["bindings"]
            self.assertLessEqual(binding["expires_in"], 7200)
        else:
            self.assert_refused(response)
        self.assert_still_serving()

    def test_garbage_datagrams(self):
        for junk in (b"\x00\xff" * 50, b"REGISTER\r\n\r\n", b"SIP/2.0 200 OK\r\n\r\n",
                     b"REGISTER sip:example.com SIP/2.0\r\nContent-Length: 99999\r\n\r\n"):
            self.client.sock.sendto(junk, self.client.target)
        time.sleep(0.2)
        self.assert_still_serving()

    def test_options_has_allow(self):
        response = self.client.request("OPTIONS", user="probe", contact=False, expires=None)
        self.assertEqual(response.status, 200, response.raw)
        allow = response.get("Allow") or ""
        for method in ("REGISTER", "OPTIONS"):
            self.assertIn(method, allow)
        self.assertIsNotNone(response.get("Accept"), response.raw)
        self.assertIsNotNone(response.get("Supported"), response.raw)

    def test_unimplemented_method_gets_501(self):
        # Out of dialog from the internal side: credentials first (auth.calls), then 501.
        response = self.client.request("SUBSCRIBE", user="alice", expires="60",
                                       extra=("Event: presence",))
        self.assertIsNotNone(response)
        self.assertEqual(response.status, 407, response.raw)
        self.assertTrue(response.all("Proxy-Authenticate"), response.raw)
        auth = harness.proxy_authorization("alice", harness.user_password("alice"), response,
                                           "SUBSCRIBE", "sip:%s" % harness.DOMAIN)
        response = self.client.request("SUBSCRIBE", user="alice", expires="60",
                                       extra=("Event: presence", "Proxy-Authorization: " + auth))
        self.assertIsNotNone(response)
        self.assertEqual(response.status, 501, response.raw)
        self.assert_still_serving()


class RegistrarDown(harness.E2ETestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = harness.Cluster(algorithms=("MD5",), name="regdown").start()

    def test_503_with_retry_after_then_recovery(self):
        client = harness.SipClient(self.cluster.internal_port)
        self.addCleanup(client.close)
        self.cluster.stop_registrar()
        response = client.request("REGISTER", user="alice")
        self.assertIsNotNone(response, "no answer while the registrar is down")
        self.assertEqual(response.status, 503, response.raw)
        self.assertIsNotNone(response.get("Retry-After"), response.raw)
        self.assertEqual(response.get("Retry-After").split(";")[0].strip(), "5")
        self.assertTrue(self.cluster.gateway.alive())

        # The registrar comes back on the same port; the gateway reconnects.
        self.cluster.start_registrar()
        deadline = time.monotonic() + 20
        while True:
            response = register_with_auth(self, client, "alice")
            if response.status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.assertEqual(response.status, 200, response.raw)
        self.assertEqual(self.cluster.registrations("sip:alice@example.com")["total"], 1)


if __name__ == "__main__":
    harness.main()
