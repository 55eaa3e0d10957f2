"""Kamailio as the SIP load balancer in front of two signaling gateways (issue 8, item 4).

The real Kamailio from Debian runs deploy/kamailio/kamailio.cfg (the same file the
deployments use; only its -A defines differ: address, port, dispatcher list, control
socket) on 127.0.0.5 at a free port; behind it two gateways of one calls cluster
(harness.Cluster(calls=True): registrar, routing, media worker, gateway "gw-e2e", plus
harness.GatewayReplica "gw-b"); the PBX trunk (127.0.0.13) is a SIPp UAS that answers every
call; callers are SIPp UACs on 127.0.0.21 that send everything to Kamailio.

Call-IDs are fixed strings (SIPp -cid_str "lbS-%u@..."), so with a fixed dispatcher list the
Call-ID hash sends each call to a known gateway: the spread over both gateways, the same
spread after a gateway rejoins, and the INVITE that meets a silent gateway are all
deterministic, not a matter of luck.

What is checked:
- every request of a dialog reaches the gateway that took its INVITE: per gateway the INVITE,
  ACK and BYE counts on its internal side are equal to its answered calls, every CDR ends
  with the caller's BYE (a BYE at the other gateway would get 481 and fail the SIPp run),
  and the 200 the caller got carries Kamailio's Record-Route;
- calls spread over both gateways;
- a gateway killed with SIGKILL leaves the set (OPTIONS probing) within DETECT_S; calls
  placed right after the kill all succeed (those that meet the dead gateway fail over); once
  it is out, every new call goes to the survivor with no failover wait;
- restarted, it rejoins within DETECT_S and takes back exactly its former share;
- an INVITE that a gateway never answers (a fake gateway that answers the probes but not
  INVITEs) is failed over by the failure_route to the next gateway, and the call succeeds.
"""

import json
import os
import re
import secrets
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import wait_until  # noqa: E402

LB_HOST = "127.0.0.5"
CALLER_HOST = "127.0.0.21"
PBX = "pbx"
# Probing: OPTIONS every 1 s, 2 failures (each after fr_timer 2 s) mark a gateway inactive,
# 1 answer brings it back: about 3-4 s. Asserted with a wide margin for a loaded machine.
DETECT_S = 20
SETTLE_S = 10
CALLS = 10


class SilentGateway:
    """A fake gateway on 127.0.0.1 (UDP): answers OPTIONS 200, so the probes keep it in
    the set, and never answers an INVITE (a hung gateway). Records the INVITEs' Call-IDs."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", harness.free_port()))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.invites = []
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def sip_uri(self):
        return "sip:127.0.0.1:%d" % self.port

    def _run(self):
        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            text = data.decode(errors="replace")
            head = text.split("\r\n\r\n", 1)[0].split("\r\n")
            method = head[0].split(" ", 1)[0]
            headers = [line for line in head[1:] if ":" in line]

            def named(*names):
                return [h for h in headers if h.split(":", 1)[0].strip().lower() in names]
            if method == "INVITE":
                call_id = named("call-id", "i")
                self.invites.append(call_id[0].split(":", 1)[1].strip() if call_id else "")
            elif method == "OPTIONS":
                lines = ["SIP/2.0 200 OK"] + named("via", "v") + named("from", "f")
                lines += [t + ";tag=" + secrets.token_hex(4) for t in named("to", "t")[:1]]
                lines += named("call-id", "i") + named("cseq")
                lines += ["Content-Length: 0", "", ""]
                self.sock.sendto("\r\n".join(lines).encode(), peer)

    def stop(self):
        self._stop = True
        self.thread.join(2)
        self.sock.close()


class LoadBalancerTest(harness.LoadBalancedTestCase):

    def setUp(self):
        self.lb = None
        # No call of an earlier test left on either gateway: its CDR would land in this
        # test's counts.
        wait_until(lambda: not self.gateway_calls(), 60, "no call left on the gateways")

    @classmethod
    def tearDownClass(cls):
        code = cls.tear_down_extras()
        super().tearDownClass()
        if code != 0:
            raise AssertionError("gateway b exited %s on SIGTERM" % code)

    # ---- helpers

    def start_lb(self, gateways):
        self.lb = harness.Kamailio(self.cluster.dir, gateways, host=LB_HOST)
        wait_until(lambda: all(f.startswith("A") for f in self.lb.destinations().values())
                   and len(self.lb.destinations()) == len(gateways), DETECT_S,
                   "every gateway active in the dispatcher")
        return self.lb

    def calls(self, prefix, count=CALLS, rate=5, duration_ms=1000, timeout=120,
              transport="u1", scenario="uac_call.xml"):
        """count SIPp calls (bob dials 2200, the PBX) through the LB with Call-IDs
        prefix-1@..., prefix-2@..., started in the background. bob answers the gateway's 407
        with his digest credentials (docs/security.md)."""
        return harness.SippProcess(
            scenario, self.cluster.dir, "-s", "2200",
            "-au", "bob", "-ap", harness.user_password("bob"),
            "-cid_str", "%s-%%u@medius-e2e" % prefix, target=self.lb.address, transport=transport,
            local_ip=CALLER_HOST, keys={"caller": "bob", "from_host": harness.DOMAIN,
                                         "ruri_host": harness.DOMAIN},
            calls=count, rate=rate, duration_ms=duration_ms, timeout=timeout,
            name="%s-%d" % (prefix, time.monotonic_ns()))

    def assert_all_ok(self, uac, count, what):
        result = uac.wait()
        self.assertEqual(result.returncode, 0, "%s:\n%s" % (what, result.describe()))
        stats = uac.stats()
        self.assertEqual(int(stats.get("SuccessfulCall(C)", "0")), count, "%s: %s" % (what, stats))
        self.assertEqual(int(stats.get("FailedCall(C)", "0")), 0, "%s: %s" % (what, stats))
        return result

    def snapshot(self):
        """Per gateway: CDRs so far and its internal-side INVITE/BYE counters (a
        gateway that is down counts as None)."""
        out = {}
        for name, cdrs, metrics in (
                ("a", self.cluster.cdr_records, lambda: self.cluster.metrics("gateway")),
                ("b", self.gw_b.cdr_records, self.gw_b.metrics)):
            try:
                text = metrics()
                counts = {m: int(harness.metric_value(
                    text, "medius_gateway_sip_requests_total",
                    {"method": m, "side": "internal"}) or 0) for m in ("INVITE", "BYE")}
            except OSError:
                counts = None
            out[name] = {"cdrs": len(cdrs()), "requests": counts}
        return out

    def delta(self, before, after, gateway):
        b, a = before[gateway], after[gateway]
        requests = None
        if a["requests"] is not None:
            base = b["requests"] or {"INVITE": 0, "BYE": 0}
            requests = {m: a["requests"][m] - base[m] for m in a["requests"]}
        return a["cdrs"] - b["cdrs"], requests

    def settled(self, before, total):
        """Waits until `total` new CDRs are written over both gateways; returns the
        per-gateway (cdrs, {INVITE, BYE}) deltas."""
        wait_until(lambda: sum(self.delta(before, self.snapshot(), g)[0] for g in "ab") >= total,
                   SETTLE_S, "%d new CDRs" % total)
        time.sleep(0.5)  # a late retransmission would still be counted
        after = self.snapshot()
        return {g: self.delta(before, after, g) for g in "ab"}

    def assert_sticky(self, deltas, what):
        """Every dialog's requests reached one gateway: per gateway, BYE = answered calls
        and INVITE = twice that (each call's first INVITE is challenged with 407 and sent
        again with credentials, same Call-ID: both must reach the gateway that issued the
        challenge; on a gateway that restarted, counted since the restart). The gateway does
        not count the ACK of a 2xx (nta takes it): assert_dialogs_stay covers the ACKs."""
        for gateway, (cdrs, requests) in deltas.items():
            if requests is None:
                continue
            self.assertEqual(requests, {"INVITE": 2 * cdrs, "BYE": cdrs},
                             "%s: gateway %s got %s for %d calls" % (what, gateway, requests,
                                                                     cdrs))

    def assert_answered(self, records, what):
        for r in records:
            self.assertEqual(r.get("final_status"), 200, "%s: %s" % (what, r))
            self.assertEqual(r.get("end_cause"), "caller-bye", "%s: %s" % (what, r))

    def assert_dialogs_stay(self, since, prefix, count, what):
        """Every dialog's ACK and BYE went where its INVITE was dispatched (both INVITEs: the
        one challenged with 407 and the one with credentials; the ACK of the 407 stays in
        the LB's transaction layer, hop by hop)."""
        hops = self.lb_hops(since)
        ids = ["%s-%d@medius-e2e" % (prefix, i) for i in range(1, count + 1)]
        for call_id in ids:
            seen = hops.get(call_id, [])
            self.assertEqual(sorted(m for m, _ in seen), ["ACK", "BYE", "INVITE", "INVITE"],
                             "%s: %s: %s" % (what, call_id, seen))
            self.assertEqual(len({h for _, h in seen}), 1, "%s: %s: %s" % (what, call_id, seen))
        return {call_id: hops[call_id][0][1] for call_id in ids}

    def lb_failovers(self):
        return re.findall(r"did not answer the INVITE, Call-ID (\S+):", self.lb.log_text())

    # ---- tests

    def test_calls_stick_spread_and_survive_a_gateway_kill(self):
        lb = self.start_lb([self.gw_a_uri, self.gw_b.sip_uri])

        # 1. Both gateways up: the calls spread, each dialog stays on one gateway.
        before = self.snapshot()
        a_cdrs, b_cdrs = len(self.cluster.cdr_records()), len(self.gw_b.cdr_records())
        since = len(lb.log_text())
        uac = self.calls("lbS")
        result = self.assert_all_ok(uac, CALLS, "calls through the LB")
        spread = self.settled(before, CALLS)
        self.assert_sticky(spread, "both gateways up")
        where = self.assert_dialogs_stay(since, "lbS", CALLS, "both gateways up")
        self.assertEqual(set(where.values()), {"127.0.0.1:%d" % self.cluster.internal_port,
                                               "127.0.0.1:%d" % self.gw_b.internal_port}, where)
        self.assertGreater(spread["a"][0], 0, "no call reached gateway a: %s" % spread)
        self.assertGreater(spread["b"][0], 0, "no call reached gateway b: %s" % spread)
        self.assert_answered(self.cluster.cdr_records()[a_cdrs:] + self.gw_b.cdr_records()[b_cdrs:],
                             "both up")
        ok = [m for m in result.received(200) if "INVITE" in (m.get("CSeq") or "")]
        self.assertTrue(ok, "the caller saw no 200 to its INVITE")
        for message in ok:
            self.assertTrue(any("%s:%d" % (LB_HOST, lb.port) in rr
                                for rr in message.all("Record-Route")),
                            "no Record-Route of the LB in:\n%s" % message.text)

        # 2. Kill gateway b: calls placed at once all complete (one meeting the dead
        # gateway before the probes notice fails over after fr_timer), and b leaves the set.
        self.gw_b.kill()
        killed_at = time.monotonic()
        before = self.snapshot()
        uac = self.calls("lbK", count=6, rate=2, duration_ms=500)
        wait_until(lambda: lb.destinations().get(self.gw_b.sip_uri, "").startswith("I"),
                   DETECT_S, "gateway b inactive in the dispatcher")
        detected_s = time.monotonic() - killed_at
        self.assert_all_ok(uac, 6, "calls right after the kill")
        window = self.settled(before, 6)
        self.assertEqual(window["a"][0], 6, "the survivor did not take them all: %s" % window)
        print("\ngateway b out of the set %.1fs after SIGKILL; %d call(s) failed over"
              % (detected_s, len(self.lb_failovers())), file=sys.stderr)

        # 3. b is out: every new call goes straight to a (no failover wait), all succeed.
        failovers = len(self.lb_failovers())
        before = self.snapshot()
        since = len(lb.log_text())
        uac = self.calls("lbS")
        self.assert_all_ok(uac, CALLS, "calls with gateway b dead")
        alone_where = self.assert_dialogs_stay(since, "lbS", CALLS, "gateway b dead")
        self.assertEqual(set(alone_where.values()),
                         {"127.0.0.1:%d" % self.cluster.internal_port}, alone_where)
        alone = self.settled(before, CALLS)
        self.assertEqual(alone["a"], (CALLS, {"INVITE": 2 * CALLS, "BYE": CALLS}),
                         alone)
        self.assertEqual(len(self.lb_failovers()), failovers,
                         "a call still went to the dead gateway first")

        # 4. Restart b (same address): it rejoins and takes back exactly its former share
        # (same Call-IDs, same hash).
        self.gw_b.start()
        started_at = time.monotonic()
        wait_until(lambda: lb.destinations().get(self.gw_b.sip_uri, "").startswith("A"),
                   DETECT_S, "gateway b active again")
        print("gateway b back in the set %.1fs after it was healthy again"
              % (time.monotonic() - started_at), file=sys.stderr)
        before = self.snapshot()
        since = len(lb.log_text())
        uac = self.calls("lbS")
        self.assert_all_ok(uac, CALLS, "calls after b rejoined")
        self.assertEqual(self.assert_dialogs_stay(since, "lbS", CALLS, "after the rejoin"), where,
                         "each Call-ID back on the gateway it reached before the kill")
        back = self.settled(before, CALLS)
        self.assert_sticky(back, "after the rejoin")
        self.assertEqual((back["a"][0], back["b"][0]), (spread["a"][0], spread["b"][0]),
                         "not the same spread as before the kill: %s vs %s" % (back, spread))

    def test_an_unanswered_invite_fails_over_to_the_next_gateway(self):
        silent = SilentGateway()
        self.addCleanup(silent.stop)
        # The silent gateway first: Call-IDs lbF-1.. are hashed over [silent, a].
        lb = self.start_lb([silent.sip_uri, self.gw_a_uri])
        before = self.snapshot()
        uac = self.calls("lbF", count=6, rate=1, duration_ms=500)
        self.assert_all_ok(uac, 6, "calls with a silent gateway in the set")
        settled = self.settled(before, 6)
        self.assertEqual(settled["a"], (6, {"INVITE": 12, "BYE": 6}), settled)
        self.assertTrue(silent.invites, "no INVITE was hashed to the silent gateway")
        # Each INVITE the silent gateway swallowed was failed over by the failure_route and
        # answered by gateway a.
        failed_over = self.lb_failovers()
        a_log = self.cluster.gateway.log_text()
        a_host = "127.0.0.1:%d" % self.cluster.internal_port
        hops = self.lb_hops()
        for call_id in silent.invites:
            self.assertIn(call_id, failed_over, lb.log_text()[-4000:])
            self.assertIn("Call-ID %s" % call_id, a_log)
            # The dialog then lives on a: its ACK and BYE go there, not to the silent one.
            # Its two INVITEs (the one a challenged with 407, then the one with credentials,
            # same Call-ID) were each dispatched by the hash, the first to the silent one; the
            # second goes there too while the probes still find it alive (and fails over
            # again), or to a.
            seen = hops.get(call_id, [])
            invites = [h for m, h in seen if m == "INVITE"]
            silent_host = "127.0.0.1:%d" % silent.port
            self.assertEqual(len(invites), 2, seen)
            self.assertEqual(invites[0], silent_host, seen)
            self.assertTrue(set(invites) <= {silent_host, a_host}, seen)
            self.assertEqual(sorted((m, h) for m, h in seen if m != "INVITE"),
                             [("ACK", a_host), ("BYE", a_host)], seen)


    def test_tcp_callers(self):
        """Clients on TCP: the LB relays to the gateways over UDP (the dispatcher URIs) and
        Record-Routes both transports, so ACK and BYE come back over the caller's TCP
        connection and reach the dialog's gateway."""
        lb = self.start_lb([self.gw_a_uri, self.gw_b.sip_uri])
        before = self.snapshot()
        since = len(lb.log_text())
        uac = self.calls("lbT", count=4, rate=2, transport="t1")
        self.assert_all_ok(uac, 4, "calls over TCP through the LB")
        self.assert_sticky(self.settled(before, 4), "TCP callers")
        self.assert_dialogs_stay(since, "lbT", 4, "TCP callers")

    def swap_pbx(self, scenario, duration_ms=None):
        """The PBX trunk's SIPp runs `scenario` for this test (the answering one comes back
        at cleanup)."""
        cls = type(self)
        cls.pbx.stop()
        cls.pbx = None
        pbx = harness.SippProcess(
            scenario, self.cluster.dir, local_ip=harness.TRUNK_HOSTS[PBX],
            port=self.cluster.trunk_ports[PBX], rtp_echo=True, duration_ms=duration_ms,
            timeout=60, name="pbx-%s-%d" % (scenario[:-4], time.monotonic_ns()))
        self.addCleanup(self.restore_pbx)
        self.addCleanup(pbx.stop)
        time.sleep(0.3)
        return pbx

    def test_a_cancel_follows_its_invite(self):
        """The caller's CANCEL reaches the gateway that has the INVITE (tm matches it to the
        INVITE's transaction), which CANCELs the ringing PBX: 200 to the CANCEL, 487."""
        self.start_lb([self.gw_a_uri, self.gw_b.sip_uri])
        pbx = self.swap_pbx("uas_ringing.xml")
        before = self.snapshot()
        uac = self.calls("lbC", count=4, rate=2, scenario="uac_cancel_any_order.xml")
        self.assert_all_ok(uac, 4, "callers CANCELling a ringing PBX")
        wait_until(lambda: sum(self.delta(before, self.snapshot(), g)[0] for g in "ab") >= 4,
                   SETTLE_S, "4 CDRs")
        records = self.cluster.cdr_records()[before["a"]["cdrs"]:] + \
            self.gw_b.cdr_records()[before["b"]["cdrs"]:]
        self.assertEqual(sorted((r["final_status"], r["end_cause"]) for r in records),
                         [(487, "caller-cancel")] * 4, records)
        self.assertEqual(len(pbx.finish(calls=4).received("CANCEL")), 4)

    def test_no_gateway_left_gives_503_with_retry_after(self):
        dead = "sip:127.0.0.1:%d" % harness.free_port()
        lb = self.start_lb([dead])
        wait_until(lambda: lb.destinations().get(dead, "").startswith("I"), DETECT_S,
                   "the dead gateway inactive")
        client = harness.SipClient(lb.port, host=LB_HOST, local=(CALLER_HOST, 0))
        self.addCleanup(client.close)
        response = client.request("OPTIONS", user="bob", contact=False, expires=None)
        self.assertIsNotNone(response, "no answer from the LB")
        self.assertEqual((response.status, response.get("Retry-After")), (503, "5"),
                         response.raw)

    def test_the_callee_hangs_up_through_the_lb(self):
        """The gateway's BYE toward the caller follows the dialog's route set (the LB's
        Record-Route), not the caller's Contact."""
        lb = self.start_lb([self.gw_a_uri, self.gw_b.sip_uri])
        self.swap_pbx("uas_answer_bye.xml", duration_ms=1000)
        before = self.snapshot()
        uac = self.calls("lbB", count=4, rate=2, scenario="uac_call_wait_bye.xml",
                         duration_ms=0)
        result = self.assert_all_ok(uac, 4, "callers waiting for the far end's BYE")
        byes = result.received("BYE")
        self.assertEqual(len(byes), 4, result.describe())
        lb_hop = "%s:%d" % (LB_HOST, lb.port)
        for bye in byes:
            self.assertIn(lb_hop, bye.all("Via")[0], "the BYE bypassed the LB:\n" + bye.text)
        self.settled(before, 4)

    @classmethod
    def restore_pbx(cls):
        cls.pbx = harness.SippProcess(
            "uas_answer.xml", cls.cluster.dir, local_ip=harness.TRUNK_HOSTS[PBX],
            port=cls.cluster.trunk_ports[PBX], rtp_echo=True, timeout=3600,
            name="pbx-%d" % time.monotonic_ns())

    def test_a_device_registered_through_the_lb_is_called_through_it(self):
        """REGISTER through the LB gets a Path; an inbound call to that user leaves the
        gateway for the LB (the Path as Route) and reaches the device from the LB, which
        Record-Routes it, so the BYE takes the same way."""
        lb = self.start_lb([self.gw_a_uri, self.gw_b.sip_uri])
        host = "127.0.0.22"
        port = harness.free_port(host)
        response = harness.register_device(lb.port, "bob", host, port, gateway_host=LB_HOST)
        self.assertIsNotNone(response, "no answer to the REGISTER through the LB")
        self.assertEqual(response.status, 200, response.raw)
        self.addCleanup(harness.register_device, lb.port, "bob", host, port, 0,
                        gateway_host=LB_HOST)
        text = json.dumps(self.cluster.registrations("sip:bob@%s" % harness.DOMAIN))
        self.assertIn("%s:%d" % (LB_HOST, lb.port), text, "no Path of the LB in: %s" % text)

        device = harness.SippProcess("uas_answer_rr.xml", self.cluster.dir, local_ip=host,
                                     port=port, rtp_echo=True, timeout=60, name="dev-bob")
        self.addCleanup(device.stop)
        time.sleep(0.3)
        trunk = "pstn-primary"
        target = "127.0.0.1:%d" % self.cluster.trunk_port
        uac = harness.SippProcess(
            "uac_call.xml", self.cluster.dir, "-s", "4255550101", target=target,
            local_ip=harness.TRUNK_HOSTS[trunk], port=self.cluster.trunk_ports[trunk],
            keys={"caller": "2065550199", "from_host": harness.TRUNK_HOSTS[trunk],
                  "ruri_host": target},
            calls=1, duration_ms=1000, timeout=60, name="inbound-%d" % time.monotonic_ns())
        self.addCleanup(uac.stop)
        self.assert_all_ok(uac, 1, "inbound call to bob's device through the LB")
        seen = device.finish(calls=1)
        invites = seen.received("INVITE")
        self.assertEqual(len(invites), 1, seen.describe())
        lb_hop = "%s:%d" % (LB_HOST, lb.port)
        self.assertIn(lb_hop, invites[0].all("Via")[0], invites[0].text)
        self.assertTrue(any(lb_hop in rr for rr in invites[0].all("Record-Route")),
                        invites[0].text)
        byes = seen.received("BYE")
        self.assertEqual(len(byes), 1, seen.describe())
        self.assertIn(lb_hop, byes[0].all("Via")[0], "the BYE bypassed the LB:\n" + byes[0].text)

if __name__ == "__main__":
    harness.main()
