"""Authenticated calls and trusted identities (issue 7 item 2, docs/security.md), end to end
with SIPp as the independent client: the whole call path of harness.Cluster(calls=True), the
trunks of examples/local/routing.json (pstn-primary and pstn-backup trusted, the PBX not).

- an INVITE from the internal side without credentials gets 407 and reaches no trunk;
- wrong credentials are refused (a second 407: SIPp gives up), nothing is routed;
- the right credentials: the call is routed and answered, the CDR names the user;
- a From claiming another user than the credentials: 403, nothing routed;
- P-Asserted-Identity / P-Preferred-Identity from a client never reach a trunk; a trusted
  trunk gets our P-Asserted-Identity with the authenticated caller's number, an untrusted
  one none;
- a caller's Privacy: id (RFC 3323/3325): an untrusted trunk sees an anonymous From and no
  P-Asserted-Identity, a trusted one an anonymous From, our P-Asserted-Identity and
  Privacy: id;
- a request on the trunk side from an address that is no trunk: 403, counted, no routing.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_calls import CallTestCase, wait_until  # noqa: E402

DOMAIN = harness.DOMAIN
NOT_A_TRUNK = "127.0.0.31"


class AuthenticatedCalls(CallTestCase):

    def gateway_metric(self, name, labels=None):
        return harness.metric_value(self.cluster.metrics("gateway"), name, labels) or 0.0

    def auth_failures(self, reason):
        return self.gateway_metric("medius_gateway_auth_failures_total", {"reason": reason})

    def routing_decisions(self):
        return harness.metric_value(self.cluster.metrics("routing"),
                                    "medius_routing_decisions_total") or 0.0

    def assertNothingRouted(self, decisions_before, *far_ends):
        self.assertEqual(self.routing_decisions(), decisions_before, "routing was asked")
        for far in far_ends:
            self.assertFalse(far.finish(calls=0).received("INVITE"), "%s saw an INVITE" % far.name)
        self.assertNoLeftovers()

    def test_no_credentials_gets_407_and_reaches_no_trunk(self):
        pbx = self.far("pbx", "uas_answer.xml", duration_ms=0)
        missing = self.auth_failures("missing")
        decisions = self.routing_decisions()
        cdrs = len(self.cluster.cdr_records())
        uac = self.caller("uac_expect_407.xml", "2200")
        result = uac.wait()
        self.assertSippOk(result, "a caller without credentials expecting 407")
        challenge = self.first(result, 407, "the caller")
        self.assertIn('realm="%s"' % DOMAIN, challenge.get("Proxy-Authenticate"))
        self.assertFalse(challenge.all("WWW-Authenticate"), challenge.text)
        self.assertEqual(self.auth_failures("missing"), missing + 1)
        self.assertNothingRouted(decisions, pbx)
        self.assertEqual(len(self.cluster.cdr_records()), cdrs, "a refused INVITE is no call")

    def test_wrong_password_is_refused(self):
        pbx = self.far("pbx", "uas_answer.xml", duration_ms=0)
        invalid = self.auth_failures("invalid")
        decisions = self.routing_decisions()
        uac = self.caller("uac_call.xml", "2200", auth_password="not-secret-alice",
                          duration_ms=1000)
        result = uac.wait()
        self.assertNotEqual(result.returncode, 0, "the call went through with a wrong password")
        self.assertEqual(len(result.received(407)), 2, result.messages("received"))
        self.assertFalse(result.received(200), result.messages("received"))
        self.assertEqual(self.auth_failures("invalid"), invalid + 1)
        self.assertNothingRouted(decisions, pbx)

    def test_right_credentials_call_is_routed_answered_and_recorded_as_the_user(self):
        pbx = self.far("pbx", "uas_answer.xml", duration_ms=0)
        cdrs = len(self.cluster.cdr_records())
        uac = self.caller("uac_no_media.xml", "2200", duration_ms=1000)
        result = uac.wait()
        self.assertSippOk(result, "alice with her credentials")
        self.assertEqual(len(result.received(407)), 1, result.messages("received"))
        invite = self.first(self.finish_uas(pbx, what="the PBX"), "INVITE", "the PBX")
        # The PBX's format of alice's line +14255550100 (ext-3), from routing.
        self.assertIn("<sip:100@", invite.get("From"))
        record = self.new_cdr(cdrs)
        self.assertEqual(record["caller"].get("authenticated"), "sip:alice@%s" % DOMAIN, record)
        self.assertEqual(record["caller"]["normalized"], "+14255550100", record)

    def test_from_spoofing_another_user_is_403_and_not_routed(self):
        pbx = self.far("pbx", "uas_answer.xml", duration_ms=0)
        mismatch = self.auth_failures("from_mismatch")
        decisions = self.routing_decisions()
        # alice's credentials, bob in the From.
        uac = self.caller("uac_expect_403.xml", "2200", caller="bob", auth_user="alice")
        result = uac.wait()
        self.assertSippOk(result, "bob's From with alice's credentials expecting 403")
        self.assertEqual(len(result.received(407)), 1, result.messages("received"))
        self.assertEqual(self.auth_failures("from_mismatch"), mismatch + 1)
        self.assertNothingRouted(decisions, pbx)

    def test_client_identity_headers_never_reach_an_untrusted_trunk(self):
        pbx = self.far("pbx", "uas_answer.xml", duration_ms=0)
        uac = self.caller("uac_call_pai.xml", "2200", duration_ms=1000,
                          extra_keys={"pai_user": "2999"})
        self.assertSippOk(uac.wait(), "alice claiming to be 2999")
        invite = self.first(self.finish_uas(pbx, what="the PBX"), "INVITE", "the PBX")
        self.assertEqual(invite.all("P-Asserted-Identity"), [], invite.text)
        self.assertEqual(invite.all("P-Preferred-Identity"), [], invite.text)
        self.assertNotIn("2999", invite.text)
        self.assertIn("<sip:100@", invite.get("From"))

    def test_trusted_trunk_gets_the_authenticated_caller_as_p_asserted_identity(self):
        primary = self.far("pstn-primary", "uas_answer.xml", duration_ms=0)
        uac = self.caller("uac_call_pai.xml", "4255550123", duration_ms=1000,
                          extra_keys={"pai_user": "+14255550199"})
        self.assertSippOk(uac.wait(), "alice claiming to be +14255550199 via pstn-primary")
        invite = self.first(self.finish_uas(primary, what="pstn-primary"), "INVITE", "pstn-primary")
        asserted = invite.all("P-Asserted-Identity")
        self.assertEqual(len(asserted), 1, invite.text)
        # alice's line in pstn-primary's format (strip-plus), never what the client claimed.
        self.assertIn("<sip:14255550100@", asserted[0])
        self.assertNotIn("4255550199", invite.text)
        self.assertEqual(invite.all("P-Preferred-Identity"), [], invite.text)

    def test_privacy_id_hides_the_caller_from_an_untrusted_trunk(self):
        pbx = self.far("pbx", "uas_answer.xml", duration_ms=0)
        cdrs = len(self.cluster.cdr_records())
        uac = self.caller("uac_call_privacy.xml", "2200", duration_ms=1000)
        self.assertSippOk(uac.wait(), "alice with Privacy: id via the PBX")
        invite = self.first(self.finish_uas(pbx, what="the PBX"), "INVITE", "the PBX")
        self.assertIn("<sip:anonymous@anonymous.invalid>", invite.get("From"), invite.text)
        self.assertEqual(invite.all("P-Asserted-Identity"), [], invite.text)
        self.assertNotIn("alice", invite.text)
        self.assertNotIn("<sip:100@", invite.text)
        # The operator still knows who called.
        record = self.new_cdr(cdrs)
        self.assertEqual(record["caller"].get("authenticated"), "sip:alice@%s" % DOMAIN, record)

    def test_privacy_id_toward_a_trusted_trunk_asserts_the_caller_with_privacy(self):
        primary = self.far("pstn-primary", "uas_answer.xml", duration_ms=0)
        uac = self.caller("uac_call_privacy.xml", "4255550123", duration_ms=1000)
        self.assertSippOk(uac.wait(), "alice with Privacy: id via pstn-primary")
        invite = self.first(self.finish_uas(primary, what="pstn-primary"), "INVITE", "pstn-primary")
        self.assertIn("<sip:anonymous@anonymous.invalid>", invite.get("From"), invite.text)
        asserted = invite.all("P-Asserted-Identity")
        self.assertEqual(len(asserted), 1, invite.text)
        self.assertIn("<sip:14255550100@", asserted[0])
        self.assertEqual(invite.all("Privacy"), ["id"], invite.text)

    def test_trunk_side_requests_from_an_unknown_address_are_403_and_counted(self):
        refused = self.gateway_metric("medius_gateway_requests_refused_total",
                                      {"reason": "unknown_trunk"})
        decisions = self.routing_decisions()
        target = "127.0.0.1:%d" % self.cluster.trunk_port
        uac = harness.SippProcess("uac_expect_403.xml", self.cluster.dir, "-s", "4255550100",
                                  target=target, local_ip=NOT_A_TRUNK,
                                  keys={"caller": "2065550199", "from_host": NOT_A_TRUNK,
                                        "ruri_host": target},
                                  calls=1, timeout=30, name="not-a-trunk-%d" % time.monotonic_ns())
        self.addCleanup(uac.stop)
        self.assertSippOk(uac.wait(), "an INVITE from %s on the trunk side" % NOT_A_TRUNK)
        self.assertEqual(self.first(uac.result(), 403).first_line,
                         "SIP/2.0 403 Not A Configured Trunk")
        # Not only INVITE: an OPTIONS scan of the trunk port learns nothing either.
        client = harness.SipClient(self.cluster.trunk_port, local=(NOT_A_TRUNK, 0))
        self.addCleanup(client.close)
        response = client.request("OPTIONS", user="scanner", contact=False, expires=None)
        self.assertIsNotNone(response)
        self.assertEqual(response.status, 403, response.raw)
        self.assertEqual(self.gateway_metric("medius_gateway_requests_refused_total",
                                             {"reason": "unknown_trunk"}), refused + 2)
        self.assertEqual(self.routing_decisions(), decisions, "routing was asked")
        self.assertNoLeftovers()


class RegistrarDownCalls(CallTestCase):
    """Without the registrar nobody can be authenticated: 503, never a call."""

    def test_internal_call_while_the_registrar_is_down_gets_503(self):
        pbx = self.far("pbx", "uas_answer.xml", duration_ms=0)
        self.cluster.stop_registrar()
        self.addCleanup(self.cluster.start_registrar)
        uac = self.caller("uac_expect_503.xml", "2200")
        result = uac.wait()
        self.assertSippOk(result, "alice while the registrar is down")
        self.assertFalse(result.received(407), result.messages("received"))
        self.assertFalse(pbx.finish(calls=0).received("INVITE"), "the PBX saw the call")
        wait_until(lambda: not self.cluster.active_calls().get("calls"), 5, "no call left")


if __name__ == "__main__":
    harness.main()
