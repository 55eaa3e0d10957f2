"""Remote call control (uaCSTA, issue 10; docs/rcc.md) end to end: real registrar, routing,
media-transcoder and signaling-gateway (harness.Cluster(calls=True)). SIPp plays the UC
client (INVITE + INFO with application/csta+xml, digest-authenticated as the user), alice's
PBX phone on the pbx trunk (it must get an INVITE without SDP and put its offer in the 200)
and the far end on pstn-primary.

MakeCall: the phone rings first, then the far end gets the phone's offer, and the far end's
answer reaches the phone in its ACK (RFC 3725 flow I); the client sees Delivered then
Established; ClearConnection hangs both up (BYE) and the client sees ConnectionCleared.
A MakeCall for someone else's line, or for a line without a PBX phone, is a CSTA error and
no INVITE leaves the gateway.
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import wait_until  # noqa: E402
from test_calls import CallTestCase  # noqa: E402

ALICE_LINE = "tel:+14255550100"
BOB_LINE = "tel:+14255550101"
# A local number (route "local": pstn-primary only), no user's line.
FAR_NUMBER = "tel:+14255550177"


def csta_metric(cluster, request, outcome):
    return harness.metric_value(cluster.metrics("gateway"), "medius_gateway_csta_requests_total",
                                {"request": request, "outcome": outcome}) or 0.0



def rcc_client(test, scenario, device, args, user="alice", duration_ms=1500, timeout=60, **keys):
    """A UC client for `test`'s cluster: a SIPp on the internal side (127.0.0.21) as `user`
    (digest with its password) running `scenario` once with the keys caller, from_host,
    ruri_host, device (and `keys`); stopped at cleanup."""
    all_keys = {"caller": user, "from_host": harness.DOMAIN, "ruri_host": harness.DOMAIN,
                "device": device}
    all_keys.update(keys)
    uac = harness.SippProcess(scenario, test.cluster.dir, *args, "-au", user,
                              "-ap", harness.user_password(user),
                              target="127.0.0.1:%d" % test.cluster.internal_port,
                              local_ip="127.0.0.21", keys=all_keys, calls=1,
                              duration_ms=duration_ms, timeout=timeout, auto_answer=False,
                              name="rcc-%s-%d" % (scenario[:-4], time.monotonic_ns()))
    test.addCleanup(uac.stop)
    return uac

class RemoteCallControlTest(CallTestCase):
    # These PBX phones (SIPp, one dialog each) know nothing of dialog-event SUBSCRIBEs:
    # RemoteCallControlDialogEventsTest covers the subscription MonitorStart makes.
    cluster_options = {"gateway_extra": {"calls": {"rcc_dialog_events": False}}}

    def client(self, scenario, device, number=FAR_NUMBER, user="alice", duration_ms=1500):
        """The UC client: a SIPp on the internal side as `user` (digest with its password).
        Without -aa: every event INFO must be one the scenario expects."""
        return rcc_client(self, scenario, device, ["-s", number], user=user,
                          duration_ms=duration_ms, timeout=60)

    def test_make_call_rings_phone_then_far_end_and_clear_connection_ends_it(self):
        before_make = csta_metric(self.cluster, "make_call", "ok")
        before_clear = csta_metric(self.cluster, "clear_connection", "ok")
        phone = self.far("pbx", "rcc_phone.xml")
        far = self.far("pstn-primary", "uas_answer.xml")
        client = self.client("rcc_client.xml", ALICE_LINE, duration_ms=3000)
        # While connected, medctl calls lists the session and its call.
        def rcc_entries():
            calls = self.cluster.active_calls().get("calls", [])
            session = [c for c in calls if c.get("callee") == "uaCSTA session (monitoring)"]
            call = [c for c in calls if c.get("callee") == FAR_NUMBER
                    and "remote call control by sip:alice@example.com" in c.get("caller", "")]
            return (session, call) if session and call and len(call[0].get("legs", [])) == 2 \
                else None
        session, call = wait_until(rcc_entries, 15, "the RCC session and call in medctl calls")
        self.assertEqual(session[0]["caller"], "sip:alice@example.com")
        result = client.wait()
        self.assertSippOk(result, "rcc client")
        phone_result = self.finish_uas(phone, what="PBX phone")
        far_result = self.finish_uas(far, what="far end")

        # The phone: an INVITE without SDP, to alice's PBX number in the PBX's format (the
        # pbx trunk's outbound translation: extension 100).
        invite = self.first(phone_result, "INVITE", "PBX phone")
        self.assertEqual(invite.body.strip(), "", invite.text)
        self.assertEqual(invite.uri_user, "100", invite.text)
        # The far end: the phone's offer (its media port) ...
        far_invite = self.first(far_result, "INVITE", "far end")
        self.assertIn("m=audio %d " % phone.media_port, far_invite.body)
        # pstn-primary's outbound format: E.164 without "+".
        self.assertEqual(far_invite.uri_user, "14255550177", far_invite.text)
        # ... only after the phone answered; and the phone's ACK carries the far end's answer.
        acks = [m for m in phone_result.received("ACK") if "m=audio" in m.body]
        self.assertTrue(acks, "no ACK with SDP at the phone: %s" % phone_result.received("ACK"))
        self.assertIn("m=audio %d " % far.media_port, acks[0].body)
        # ClearConnection: both got a BYE from the gateway.
        self.assertTrue(phone_result.received("BYE"), "no BYE at the phone")
        self.assertTrue(far_result.received("BYE"), "no BYE at the far end")

        # The client saw the call's events in order.
        events = []
        for m in result.received("INFO"):
            for name in ("ServiceInitiated", "Originated", "Delivered", "Established",
                         "ConnectionCleared"):
                if "<%sEvent" % name in m.body:
                    events.append(name)
        self.assertIn("Delivered", events)
        self.assertLess(events.index("Delivered"), events.index("Established"), events)
        self.assertEqual(events[-1], "ConnectionCleared", events)
        # MonitorStart's cross reference is the one every event carries.
        monitor = [m for m in result.received(200) if "<MonitorStartResponse" in m.body]
        self.assertTrue(monitor, "no MonitorStartResponse")
        cross_ref = monitor[0].body.split("<monitorCrossRefID>")[1].split("<")[0]
        for m in result.received("INFO"):
            self.assertIn("<monitorCrossRefID>%s</monitorCrossRefID>" % cross_ref, m.body)
        response = [m for m in result.received(200) if "<MakeCallResponse" in m.body]
        self.assertTrue(response, "no MakeCallResponse")
        self.assertIn("application/csta+xml", response[0].get("Content-Type") or "")

        wait_until(lambda: csta_metric(self.cluster, "make_call", "ok") >= before_make + 1, 5,
                   "make_call ok counted")
        wait_until(lambda: csta_metric(self.cluster, "clear_connection", "ok") >= before_clear + 1,
                   5, "clear_connection ok counted")
        wait_until(lambda: harness.metric_value(self.cluster.metrics("gateway"),
                                                "medius_gateway_rcc_sessions") == 0.0,
                   5, "no RCC session left")

    def test_far_end_hangup_clears_the_phone_and_reports_connection_cleared(self):
        phone = self.far("pbx", "rcc_phone.xml")
        far = self.far("pstn-primary", "uas_answer_bye.xml", duration_ms=1000)
        client = self.client("rcc_client_far_hangup.xml", ALICE_LINE)
        result = client.wait()
        self.assertSippOk(result, "rcc client")
        phone_result = self.finish_uas(phone, what="PBX phone")
        self.finish_uas(far, what="far end")
        self.assertTrue(phone_result.received("BYE"), "the phone was not hung up")
        cleared = [m.body for m in result.received("INFO") if "<ConnectionClearedEvent" in m.body]
        self.assertIn("<cause>normalClearing</cause>", cleared[0])

    def test_hold_and_retrieve_reinvite_the_phone(self):
        phone = self.far("pbx", "rcc_phone.xml")
        far = self.far("pstn-primary", "uas_answer.xml")
        client = self.client("rcc_client_hold.xml", ALICE_LINE, duration_ms=500)
        result = client.wait()
        self.assertSippOk(result, "rcc client")
        phone_result = self.finish_uas(phone, what="PBX phone")
        self.finish_uas(far, what="far end")
        invites = phone_result.received("INVITE")
        self.assertEqual(len(invites), 3, [m.first_line for m in invites])
        self.assertIn("a=inactive", invites[1].body)
        self.assertIn("m=audio %d " % far.media_port, invites[1].body)
        self.assertIn("a=sendrecv", invites[2].body)
        self.assertNotIn("a=inactive", invites[2].body)
        events = [m.body for m in result.received("INFO")]
        self.assertTrue(any("<HeldEvent" in b for b in events))
        self.assertTrue(any("<RetrievedEvent" in b for b in events))

    def test_single_step_transfer_refused_by_the_pbx_is_a_csta_error(self):
        before = csta_metric(self.cluster, "single_step_transfer", "unsupported")
        phone = self.far("pbx", "rcc_phone.xml")
        far = self.far("pstn-primary", "uas_answer.xml")
        client = self.client("rcc_client_transfer.xml", ALICE_LINE, duration_ms=300)
        result = client.wait()
        self.assertSippOk(result, "rcc client")
        phone_result = self.finish_uas(phone, what="PBX phone")
        self.finish_uas(far, what="far end")
        refer = self.first(phone_result, "REFER", "PBX phone")
        self.assertIn("14255550188@", refer.get("Refer-To") or "", refer.text)
        bodies = [m.body for m in result.received(200) if "<CSTAErrorCode" in m.body]
        self.assertTrue(bodies)
        self.assertIn("<operation>requestIncompatibleWithObject</operation>", bodies[0])
        wait_until(lambda: csta_metric(self.cluster, "single_step_transfer", "unsupported")
                   >= before + 1, 5, "single_step_transfer unsupported counted")
        self.assertIn("answered 501 to REFER", self.cluster.gateway.log_text())

    def test_bad_bodies_get_400_or_a_csta_error_and_the_session_lives_on(self):
        before = csta_metric(self.cluster, "malformed", "refused")
        client = self.client("rcc_client_bad_bodies.xml", ALICE_LINE)
        result = client.wait()
        self.assertSippOk(result, "rcc client")
        wait_until(lambda: csta_metric(self.cluster, "malformed", "refused") >= before + 1, 5,
                   "malformed counted")
        self.assertTrue(self.cluster.gateway.alive())

    def refused(self, user, device, expected_error):
        phone = self.far("pbx", "rcc_phone.xml")
        client = self.client("rcc_client_refused.xml", device, user=user)
        result = client.wait()
        self.assertSippOk(result, "rcc client")
        bodies = [m.body for m in result.received(200) if "<CSTAErrorCode" in m.body]
        self.assertTrue(bodies, "no CSTA error in %s" % result.received(200))
        self.assertIn("<operation>%s</operation>" % expected_error, bodies[0])
        time.sleep(0.5)
        phone_result = phone.finish(calls=0)
        self.assertFalse(phone_result.received("INVITE"), "the PBX phone was called anyway")

    def test_make_call_for_another_users_line_is_refused(self):
        before = csta_metric(self.cluster, "make_call", "refused")
        self.refused("alice", BOB_LINE, "privilegeViolationOnSpecifiedDevice")
        wait_until(lambda: csta_metric(self.cluster, "make_call", "refused") >= before + 1, 5,
                   "make_call refused counted")

    def test_make_call_for_a_line_without_pbx_phone_is_refused(self):
        self.refused("bob", BOB_LINE, "requestIncompatibleWithObject")

    def test_make_call_for_an_unknown_device_is_refused(self):
        self.refused("alice", "tel:+19995550123", "invalidCallingDevice")


class RemoteCallControlNoAnswerTest(CallTestCase):
    """A PBX phone that rings and never answers: the call ends after
    calls.no_answer_timeout_ms (CANCEL), the client gets ConnectionCleared; nothing hangs."""

    cluster_options = {"gateway_extra": {"calls": {"no_answer_timeout_ms": 2000}}}

    def test_a_phone_that_never_answers_is_cancelled(self):
        phone = self.far("pbx", "uas_ringing.xml")
        keys = {"caller": "alice", "from_host": harness.DOMAIN, "ruri_host": harness.DOMAIN,
                "device": ALICE_LINE}
        client = harness.SippProcess("rcc_client_no_answer.xml", self.cluster.dir, "-s",
                                     FAR_NUMBER, "-au", "alice", "-ap",
                                     harness.user_password("alice"),
                                     target="127.0.0.1:%d" % self.cluster.internal_port,
                                     local_ip="127.0.0.21", keys=keys, calls=1, timeout=60,
                                     auto_answer=False, name="rcc-no-answer")
        self.addCleanup(client.stop)
        result = client.wait()
        self.assertSippOk(result, "rcc client")
        phone_result = self.finish_uas(phone, what="PBX phone")
        self.assertTrue(phone_result.received("CANCEL"), "the phone was not CANCELled")
        cleared = [m.body for m in result.received("INFO") if "<ConnectionClearedEvent" in m.body]
        self.assertIn("<cause>callNotAnswered</cause>", cleared[0])
        self.assertIn("the PBX phone did not answer in time", self.cluster.gateway.log_text())



def dialog_metric(cluster, event):
    return harness.metric_value(cluster.metrics("gateway"), "medius_gateway_rcc_dialog_events_total",
                                {"event": event}) or 0.0


class RemoteCallControlDialogEventsTest(CallTestCase):
    """The desk phone's own calls (RFC 4235 dialog events, docs/rcc.md): MonitorStart
    SUBSCRIBEs (Event: dialog) to alice's PBX phone over the pbx trunk; the PBX's NOTIFYs of
    a call the phone receives by itself reach the client as Delivered, Established,
    ConnectionCleared; the session's end unSUBSCRIBEs (Expires: 0). A PBX refusing the
    SUBSCRIBE (489): the monitor still stands, a log line says the phone's own calls are not
    reported, nothing hangs."""

    def client(self, scenario, duration_ms=500, **more):
        return rcc_client(self, scenario, ALICE_LINE, [], duration_ms=duration_ms, timeout=20,
                          **more)

    def test_phone_own_incoming_call_is_reported_from_dialog_events(self):
        before = dialog_metric(self.cluster, "notify")
        pbx = self.far("pbx", "rcc_pbx_dialogs.xml")
        client = self.client("rcc_client_monitor.xml")
        result = client.wait()
        self.assertSippOk(result, "rcc client")
        pbx_result = self.finish_uas(pbx, what="PBX (dialog events)")
        subscribes = pbx_result.received("SUBSCRIBE")
        self.assertEqual(len(subscribes), 2, [m.text for m in subscribes])
        # Alice's PBX phone in the PBX's format (extension 100), over the pbx trunk.
        self.assertEqual(subscribes[0].uri_user, "100", subscribes[0].text)
        self.assertEqual((subscribes[1].get("Expires") or "").strip(), "0", subscribes[1].text)
        events = [name for m in result.received("INFO")
                  for name in ("Delivered", "Established", "ConnectionCleared")
                  if "<%sEvent" % name in m.body]
        self.assertEqual(events, ["Delivered", "Established", "ConnectionCleared"])
        # One call: every event names the same callID.
        call_ids = {m.body.split("<callID>")[1].split("<")[0] for m in result.received("INFO")}
        self.assertEqual(len(call_ids), 1, call_ids)
        delivered = [m.body for m in result.received("INFO") if "<DeliveredEvent" in m.body][0]
        self.assertIn("14155550199", delivered)  # the caller, from the remote identity
        wait_until(lambda: dialog_metric(self.cluster, "notify") >= before + 3, 5,
                   "3 NOTIFYs counted")
        wait_until(lambda: harness.metric_value(self.cluster.metrics("gateway"),
                                                "medius_gateway_rcc_sessions") == 0.0,
                   5, "no RCC session left")

    def pbx_answering(self, scenario):
        """The PBX of rcc_pbx_answer*.xml on the pbx trunk's address: the dialog events of a
        call ringing on alice's phone, and the NOTIFY (Event: talk) answered 200 or 489."""
        trunk = "pbx"
        self.stop_idle(trunk)
        uas = harness.SippProcess(scenario, self.cluster.dir,
                                  local_ip=harness.TRUNK_HOSTS[trunk],
                                  port=self.cluster.trunk_ports[trunk], rtp_echo=False,
                                  timeout=60,
                                  name="pbx-answer-%d" % time.monotonic_ns())
        self.addCleanup(self.start_idle, trunk)
        self.addCleanup(uas.stop)
        time.sleep(0.3)
        return uas

    def test_answer_call_makes_the_ringing_phone_answer(self):
        """AnswerCall on the call Delivered named: the PBX gets an out-of-dialog NOTIFY
        (Event: talk) for alice's phone, answers 200, and the client gets AnswerCallResponse;
        the phone's answer then comes as Established (dialog events)."""
        pbx = self.pbx_answering("rcc_pbx_answer.xml")
        client = self.client("rcc_client_answer.xml", answer_result="AnswerCallResponse")
        result = client.wait()
        self.assertSippOk(result, "rcc client")
        pbx_result = self.finish_uas(pbx, calls=2, what="PBX (dialog events, talk)")
        talks = [m for m in pbx_result.received("NOTIFY") if "talk" in (m.get("Event") or "")]
        self.assertEqual(len(talks), 1, [m.text for m in pbx_result.received("NOTIFY")])
        self.assertEqual(talks[0].uri_user, "100", talks[0].text)  # alice's phone at the PBX
        wait_until(lambda: harness.metric_value(
            self.cluster.metrics("gateway"), "medius_gateway_csta_requests_total",
            {"request": "answer_call", "outcome": "ok"}) >= 1.0, 5, "answer_call ok counted")

    def test_answer_call_on_a_pbx_without_the_talk_event_is_a_clear_csta_error(self):
        """A PBX answering 489 (Bad Event) to the talk NOTIFY: the client gets
        requestIncompatibleWithObject, a line is logged, the session goes on (Established
        and ConnectionCleared still come from the dialog events)."""
        pbx = self.pbx_answering("rcc_pbx_answer_refused.xml")
        client = self.client("rcc_client_answer.xml",
                             answer_result="requestIncompatibleWithObject")
        result = client.wait()
        self.assertSippOk(result, "rcc client")
        self.finish_uas(pbx, calls=2, what="PBX (dialog events, no talk)")
        self.assertIn("it cannot make its phone answer", self.cluster.gateway.log_text())
        wait_until(lambda: harness.metric_value(
            self.cluster.metrics("gateway"), "medius_gateway_csta_requests_total",
            {"request": "answer_call", "outcome": "unsupported"}) >= 1.0, 5,
            "answer_call unsupported counted")

    def test_pbx_refusing_the_subscription_leaves_the_monitor_standing(self):
        before = dialog_metric(self.cluster, "refused")
        pbx = self.far("pbx", "rcc_pbx_subscribe_refused.xml")
        client = self.client("rcc_client_monitor_only.xml", duration_ms=1000)
        result = client.wait()
        self.assertSippOk(result, "rcc client")
        self.assertFalse(result.received("INFO"), "no event expected")
        pbx_result = pbx.finish(calls=1)
        self.assertEqual(len(pbx_result.received("SUBSCRIBE")), 1)
        wait_until(lambda: dialog_metric(self.cluster, "refused") >= before + 1, 5,
                   "the refused subscription counted")
        self.assertIn("the phone's own calls will not be reported",
                      self.cluster.gateway.log_text())
        wait_until(lambda: harness.metric_value(self.cluster.metrics("gateway"),
                                                "medius_gateway_rcc_sessions") == 0.0,
                   5, "no RCC session left")


if __name__ == "__main__":
    unittest.main()
