"""Flood and scan protection (issue 7, item 4) end to end: the whole cluster
(harness.Cluster(calls=True)) with security.flood limits small enough to reach with SIPp,
which plays the flood sources, the callers and the PBX trunk, each on its own 127.0.0.x
address (SIPp -i).

- A SIPp flood of OPTIONS (and one of INVITEs) from one source gets that source banned:
  its later requests get no answer and are counted in medius_gateway_flood_dropped_total,
  while a normal call from another address completes during the flood.
- A request whose User-Agent is a known scanner's gets no answer.
- Over security.flood.max_requests_per_second, requests get 503 with Retry-After; a ban
  expires after ban_s; 200 source addresses leave max_sources of them in the table.
- With calls.max_calls = 1 (the global dialog limit), a second INVITE gets 503 with
  Retry-After while the BYE of the call in progress still works.
"""

import os
import secrets
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_calls import CallTestCase, wait_until  # noqa: E402

DOMAIN = harness.DOMAIN
WINDOW_MS = 1000
MAX_REQUESTS = 30
BAN_S = 30


def options(client, user_agent="medius-e2e-python", timeout=2.0):
    """One OPTIONS from client (a harness.SipClient) with this User-Agent; its final
    response or None."""
    client.cseq += 1
    lines = ["OPTIONS sip:%s SIP/2.0" % DOMAIN,
             "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK%s;rport" % (client.host, client.port,
                                                              secrets.token_hex(8)),
             "Max-Forwards: 70",
             "From: <sip:probe@%s>;tag=%s" % (DOMAIN, secrets.token_hex(4)),
             "To: <sip:%s>" % DOMAIN,
             "Call-ID: %s@%s" % (secrets.token_hex(8), client.host),
             "CSeq: %d OPTIONS" % client.cseq,
             "User-Agent: %s" % user_agent,
             "Content-Length: 0", "", ""]
    return client.send_raw("\r\n".join(lines), timeout=timeout)


class FloodTestCase(CallTestCase):
    def metric(self, name, labels=None):
        return harness.metric_value(self.cluster.metrics("gateway"), name, labels) or 0.0

    def client(self, host):
        c = harness.SipClient(self.cluster.internal_port, local=(host, 0))
        self.addCleanup(c.close)
        return c


class Flood(FloodTestCase):
    cluster_options = {"gateway_extra": {"security": {"flood": {
        "window_ms": WINDOW_MS, "max_requests": MAX_REQUESTS, "ban_s": BAN_S}}}}

    def flood(self, scenario, host, calls, rate, *args):
        target = "127.0.0.1:%d" % self.cluster.internal_port
        sipp = harness.SippProcess(scenario, self.cluster.dir, *args, target=target,
                                   local_ip=host, calls=calls, rate=rate, timeout=60,
                                   auto_answer=False,
                                   name="flood-%s-%d" % (host, time.monotonic_ns()))
        self.addCleanup(sipp.stop)
        return sipp

    def test_an_options_flood_gets_its_source_banned_while_another_source_calls(self):
        source = "127.0.0.50"
        before_dropped = self.metric("medius_gateway_flood_dropped_total", {"reason": "banned"})
        before_bans = self.metric("medius_gateway_flood_bans_total")
        # Before: the source is answered like anyone.
        self.assertEqual(options(self.client(source)).status, 200)

        # 10x the limit (30 per second) for 8 s, from one address.
        flood = self.flood("flood_options.xml", source, 2400, 300)
        wait_until(lambda: self.metric("medius_gateway_flood_bans_total") > before_bans, 10,
                   "the flood source banned")
        # A call from another address during the flood completes.
        pbx = self.far("pbx", "uas_answer.xml")
        uac = self.caller("uac_call.xml", "2200", host="127.0.0.21", duration_ms=2000)
        self.assertTrue(flood.alive(), "the flood ended before the call was placed")
        self.assertSippOk(uac.wait(), "the caller during the flood")
        self.finish_uas(pbx, what="the PBX")
        self.assertTrue(flood.alive(), "the flood ended before the call did")
        flood_result = flood.wait()

        # The flood source: no answer while banned, counted; another source is answered.
        dropped = self.metric("medius_gateway_flood_dropped_total", {"reason": "banned"})
        self.assertGreater(dropped - before_dropped, 2000)
        self.assertIsNone(options(self.client(source), timeout=1.0))
        self.assertEqual(self.metric("medius_gateway_flood_dropped_total", {"reason": "banned"}),
                         dropped + 1)
        self.assertEqual(options(self.client("127.0.0.51")).status, 200)
        # (the INVITE flood test's ban may still be running)
        self.assertGreaterEqual(self.metric("medius_gateway_flood_banned_sources"), 1)
        self.assertEqual(self.metric("medius_gateway_flood_bans_total"), before_bans + 1)
        # What SIPp saw: the first window's requests answered, none of the 2400 after.
        answered = len(flood_result.received(200))
        self.assertGreaterEqual(answered, MAX_REQUESTS // 2, flood_result.describe())
        self.assertLessEqual(answered, MAX_REQUESTS, flood_result.describe())

    def test_an_invite_flood_gets_its_source_banned(self):
        source = "127.0.0.52"
        before_bans = self.metric("medius_gateway_flood_bans_total")
        before_invites = self.metric("medius_gateway_sip_responses_total",
                                     {"method": "INVITE", "code_class": "4xx",
                                      "side": "internal"})
        started = time.monotonic()
        flood = self.flood("flood_invite.xml", source, 600, 200, "-s", "2200")
        flood.wait()
        self.assertLess(time.monotonic() - started, BAN_S - 5, "the flood took too long")
        self.assertEqual(self.metric("medius_gateway_flood_bans_total"), before_bans + 1)
        answered = self.metric("medius_gateway_sip_responses_total",
                               {"method": "INVITE", "code_class": "4xx",
                                "side": "internal"}) - before_invites
        # The INVITEs of the first window got their 488; none after the ban.
        self.assertGreaterEqual(answered, MAX_REQUESTS - 1)
        self.assertLessEqual(answered, 2 * MAX_REQUESTS)
        self.assertIsNone(options(self.client(source), timeout=1.0))

    def test_a_scanner_user_agent_gets_no_answer(self):
        before = self.metric("medius_gateway_flood_dropped_total", {"reason": "scanner"})
        client = self.client("127.0.0.53")
        self.assertIsNone(options(client, "friendly-scanner", timeout=1.0))
        self.assertIsNone(options(client, "sipvicious 0.3.4", timeout=1.0))
        self.assertEqual(self.metric("medius_gateway_flood_dropped_total", {"reason": "scanner"}),
                         before + 2)
        # The same address with an honest User-Agent is answered (scanners are not banned
        # by address: a spoofed User-Agent must not lock a real phone out).
        self.assertEqual(options(client).status, 200)


class Limits(FloodTestCase):
    cluster_options = {"gateway_extra": {"security": {"flood": {
        "max_requests_per_second": 20, "retry_after_s": 3, "exempt": ["127.0.0.60"],
        "window_ms": 1000, "max_requests": 5, "ban_s": 2, "max_sources": 16}}}}

    def test_a_ban_expires(self):
        client = self.client("127.0.0.70")
        for _ in range(5):
            self.assertEqual(options(client).status, 200)
        self.assertIsNone(options(client, timeout=0.5))
        self.assertEqual(self.metric("medius_gateway_flood_banned_sources"), 1)
        time.sleep(2.5)
        self.assertEqual(options(client).status, 200)
        self.assertEqual(self.metric("medius_gateway_flood_banned_sources"), 0)

    def test_many_sources_stay_within_the_table_bound(self):
        # 200 source addresses, one request each (as a spoofed-source flood looks): the
        # table keeps max_sources (16) of them.
        target = ("127.0.0.1", self.cluster.internal_port)
        before = self.metric("medius_gateway_sip_requests_total",
                             {"method": "OPTIONS", "side": "internal"})
        bans = self.metric("medius_gateway_flood_bans_total")
        sockets = []
        for i in range(200):
            c = self.client("127.0.3.%d" % (i + 1))
            c.sock.sendto(("OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bK%d\r\n"
                           "Max-Forwards: 70\r\nFrom: <sip:p@%s>;tag=%d\r\nTo: <sip:%s>\r\n"
                           "Call-ID: many-%d\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
                           % (DOMAIN, c.host, c.port, i, DOMAIN, i, DOMAIN, i)).encode(), target)
            sockets.append(c)
            # Paced: a burst of 200 datagrams can overflow the gateway's UDP receive buffer
            # on a busy machine, and a datagram the kernel dropped is never counted.
            time.sleep(0.002)
        wait_until(lambda: self.metric("medius_gateway_sip_requests_total",
                                       {"method": "OPTIONS", "side": "internal"}) >= before + 200
                   or None, 15, "the 200 OPTIONS received (%d before)" % before)
        self.assertEqual(self.metric("medius_gateway_flood_sources"), 16)
        self.assertEqual(self.metric("medius_gateway_flood_bans_total"), bans)

    def test_over_the_global_rate_requests_get_503_with_retry_after(self):
        before = self.metric("medius_gateway_flood_rejected_total", {"reason": "rate"})
        target = "127.0.0.1:%d" % self.cluster.internal_port
        # 100 per second for 3 s from an exempt address (no per-source ban): the gateway
        # admits about 20 per second and answers the rest 503 at once.
        sipp = harness.SippProcess("flood_options.xml", self.cluster.dir, target=target,
                                   local_ip="127.0.0.60", calls=300, rate=100, timeout=60,
                                   auto_answer=False, name="rate-%d" % time.monotonic_ns())
        self.addCleanup(sipp.stop)
        result = sipp.wait()
        ok, busy = result.received(200), result.received(503)
        self.assertEqual(len(ok) + len(busy), 300, result.describe())
        self.assertGreaterEqual(len(ok), 40, result.describe())
        self.assertLessEqual(len(ok), 100, result.describe())
        self.assertTrue(all(m.get("Retry-After") == "3" for m in busy), busy[0].text)
        self.assertEqual(self.metric("medius_gateway_flood_rejected_total", {"reason": "rate"}),
                         before + len(busy))
        self.assertEqual(self.metric("medius_gateway_flood_rejected_total", {"reason": "dialogs"}),
                         0)
        # A second later the gateway admits requests again.
        time.sleep(1.5)
        self.assertEqual(options(self.client("127.0.0.61")).status, 200)


class DialogLimit(FloodTestCase):
    cluster_options = {"gateway_extra": {"calls": {"max_calls": 1},
                                         "security": {"flood": {"retry_after_s": 7}}}}

    def test_over_the_dialog_limit_a_new_invite_gets_503_and_the_call_in_progress_ends(self):
        before = self.metric("medius_gateway_flood_rejected_total", {"reason": "dialogs"})
        pbx = self.far("pbx", "uas_answer.xml")
        first = self.caller("uac_call.xml", "2200", host="127.0.0.21", duration_ms=3000)
        self.answered_call()
        second = self.caller("uac_expect_503.xml", "2200", host="127.0.0.22")
        result = second.wait()
        self.assertSippOk(result, "the second caller (503 with Retry-After expected)")
        response = self.first(result, 503, "the second caller")
        self.assertEqual(response.get("Retry-After"), "7", response.text)
        self.assertEqual(self.metric("medius_gateway_flood_rejected_total",
                                     {"reason": "dialogs"}), before + 1)
        # The call in progress is untouched: its BYE (after 3 s) is answered.
        first_result = first.wait()
        self.assertSippOk(first_result, "the first caller")
        self.first(first_result, 200, "the first caller")
        wait_until(lambda: not self.cluster.active_calls().get("calls"), 5, "the call ended")
        # With the call gone, the next INVITE is served again.
        third = self.caller("uac_call.xml", "2200", host="127.0.0.22", duration_ms=1000)
        self.assertSippOk(third.wait(), "a caller after the call ended")
        self.finish_uas(pbx, calls=2, what="the PBX")
        self.assertNoLeftovers()

if __name__ == "__main__":
    unittest.main()
