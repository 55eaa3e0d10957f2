"""ICE-lite on the media worker (issue 10; docs/media.md "ICE-lite") end to end, through the
whole cluster, with an independent ICE agent: baresip 1.0.0's `ice` module (Debian
baresip-core), a full ICE agent (libre's icem) that is controlling against our lite worker.

- alice (baresip on 127.0.0.21, `;medianat=ice`) registers through the gateway's internal
  side and dials 2200 (the pbx trunk, a baresip UAS without ICE) with PCMU, and again with
  SRTP (SDES) and Opus, transcoded to the trunk's PCMU (the Teams-like client);
- baresip's ice module wants a STUN server to gather its server-reflexive candidate: the
  test runs a tiny one (StunServer below, RFC 5389 Binding without authentication) on
  127.0.0.1. baresip's host candidates are its non-loopback addresses; it sends its checks
  from its RTP socket, bound to the wildcard address, so they reach the worker from
  127.0.0.1 (the address the worker must then latch to);
- verdicts: the 200 alice received carries a=ice-lite, our a=ice-ufrag/a=ice-pwd and a host
  candidate on the worker's leg A port, and no candidate of the trunk's; baresip reports its
  connectivity check complete; the worker counted answered checks
  (medius_media_ice_checks_total{result="ok"}) and a nomination, logged it with the address,
  and leg A's remote (`medctl sessions`) is that address; the tone test passes both ways;
- during the call a STUN Binding request with a wrong MESSAGE-INTEGRITY (right USERNAME) is
  sent to leg A's port: no answer, medius_media_ice_checks_total{result="bad_integrity"}
  moves, the call's audio is unaffected (the tone test still passes and the remote stays);
- the trunk (no ICE) gets no ICE lines and keeps plain latching;
- inbound: the PBX calls alice's extension; the offer alice gets carries our ICE-lite lines
  (offers toward the internal side do), she answers with ICE and checks leg B's port.

Runs with /usr/bin/python3 (numpy), like test_media_calls.py.
"""

import hashlib
import hmac
import os
import re
import socket
import struct
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import baresip  # noqa: E402
import harness  # noqa: E402
from test_media_calls import (CLIENT_HOST, CLIENT_HZ, OPUS, PCMU, TRUNK_HZ,  # noqa: E402
                              MediaCallTestCase)

MAGIC = 0x2112A442


def stun_message(msg_type, txid, attributes, key=None, fingerprint=True):
    """A STUN message: attributes [(type, bytes)], then MESSAGE-INTEGRITY with `key` (if
    given) and FINGERPRINT (RFC 5389 15.4, 15.5)."""
    body = b""
    for kind, value in attributes:
        body += struct.pack("!HH", kind, len(value)) + value + b"\0" * (-len(value) % 4)

    def header(length):
        return struct.pack("!HHI", msg_type, length, MAGIC) + txid

    if key is not None:
        mac = hmac.new(key.encode(), header(len(body) + 24) + body, hashlib.sha1).digest()
        body += struct.pack("!HH", 0x0008, 20) + mac
    if fingerprint:
        crc = zlib.crc32(header(len(body) + 8) + body) ^ 0x5354554E
        body += struct.pack("!HHI", 0x8028, 4, crc)
    return header(len(body)) + body


def xor_mapped(address, port, txid):
    ip = struct.unpack("!I", socket.inet_aton(address))[0] ^ MAGIC
    return struct.pack("!BBHI", 0, 1, port ^ (MAGIC >> 16), ip)


class StunServer:
    """A STUN server for baresip's srflx gathering: answers Binding requests with
    XOR-MAPPED-ADDRESS (no authentication) on host:port (a free port); counts them."""

    def __init__(self, host="127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.2)
        self.requests = 0
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                data, source = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(data) < 20 or struct.unpack("!H", data[:2])[0] != 0x0001:
                continue
            txid = data[8:20]
            self.requests += 1
            reply = stun_message(0x0101, txid, [(0x0020, xor_mapped(source[0], source[1], txid))])
            self.sock.sendto(reply, source)

    def stop(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


def ice_lines(body):
    return {"lite": bool(re.search(r"^a=ice-lite\s*$", body, re.M)),
            "ufrag": (re.findall(r"^a=ice-ufrag:(\S+)", body, re.M) or [None])[0],
            "pwd": (re.findall(r"^a=ice-pwd:(\S+)", body, re.M) or [None])[0],
            "candidates": re.findall(r"^a=candidate:(.*?)\s*$", body, re.M)}


class IceLiteCalls(MediaCallTestCase):
    """alice does ICE (baresip's ice module) through the cluster to a plain trunk."""

    cluster_options = {"trunk_overrides": {"pbx": {"srtp": "off", "codecs": ["PCMU"]}}}

    def ice_client(self, stun, answer=False, codec=PCMU, mediaenc=None):
        account = baresip.client_account(
            "alice", self.cluster.internal_port, codecs=[codec], mediaenc=mediaenc,
            extra=";medianat=ice;stunserver=stun:127.0.0.1:%d%s"
            % (stun.port, ";answermode=auto" if answer else ""))
        ua = baresip.Baresip(self.cluster.dir, "client-alice-ice", CLIENT_HOST, account, CLIENT_HZ,
                             extra_modules=("ice.so",))
        self.agents.append(ua)
        self.addCleanup(ua.stop)
        ua.start()
        ua.is_caller = True
        ua.wait_registered()
        return ua

    def ice_metric(self, result=None):
        text = self.cluster.metrics("media")
        if result is None:
            return harness.metric_value(text, "medius_media_ice_nominations_total") or 0.0
        return harness.metric_value(text, "medius_media_ice_checks_total",
                                    {"result": result}) or 0.0

    def test_ice_client_checks_nomination_and_audio_both_ways(self):
        self.outbound(PCMU, None)

    def test_ice_with_srtp_and_opus_transcoded_to_the_pcmu_trunk(self):
        """The Teams-like client: ICE with SRTP (SDES) and Opus, transcoded to PCMU."""
        session = self.outbound(OPUS, "srtp-mand")
        self.assertTrue(session.get("transcoding"), session)
        self.assertTrue(session["leg_a"].get("srtp"), session)

    def outbound(self, codec, mediaenc):
        """alice (ICE) calls the PBX; a bad check during the call; returns the session."""
        stun = StunServer()
        self.addCleanup(stun.stop)
        pbx = self.trunk("pbx", "2200", [PCMU])
        alice = self.ice_client(stun, codec=codec, mediaenc=mediaenc)
        ok_before, nominations_before = self.ice_metric("ok"), self.ice_metric()
        bad_before = self.ice_metric("bad_integrity")
        probe = {}

        def during():
            # A check with alice's USERNAME toward us but signed with a wrong password, to
            # leg A's port: ignored (no answer), counted.
            answer = [m for m in alice.received_responses(200, "INVITE")][0]
            body = baresip.sdp_body(answer)
            ice = ice_lines(body)
            audio = baresip.sdp_audio(body)
            sent = baresip.sdp_body([t for _, src, _, t in alice.sip_messages()
                                     if t.startswith("INVITE ")][0])
            their_ufrag = ice_lines(sent)["ufrag"]
            if not ice["ufrag"] or not ice["pwd"] or not their_ufrag:
                return   # no ICE on this leg: the assertions below say so
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(0.5)
            txid = os.urandom(12)
            request = stun_message(
                0x0001, txid,
                [(0x0006, ("%s:%s" % (ice["ufrag"], their_ufrag)).encode()),
                 (0x0024, struct.pack("!I", 1853824767)),
                 (0x802A, os.urandom(8)), (0x0025, b"")],
                key="not-" + ice["pwd"])
            sock.sendto(request, (audio["address"], audio["port"]))
            try:
                probe["answer"] = sock.recvfrom(2048)
            except socket.timeout:
                probe["answer"] = None
            sock.close()
            probe["bad_after"] = harness_wait_value(lambda: self.ice_metric("bad_integrity")
                                                    if self.ice_metric("bad_integrity") > bad_before
                                                    else None, 3)
            probe["session_after"] = self.cluster.sessions().get("sessions", [])

        sessions = self.call(alice, "2200", peers=(pbx,), during=during)
        session = self.one_session(sessions)

        # The answer alice got: our ICE-lite lines, one host candidate per component on leg
        # A's port, nothing of the trunk's.
        body = baresip.sdp_body(alice.received_responses(200, "INVITE")[0])
        ice = ice_lines(body)
        audio = baresip.sdp_audio(body)
        print("ICE toward alice: %s" % ice)
        self.assertTrue(ice["lite"], body)
        self.assertGreaterEqual(len(ice["ufrag"] or ""), 4, body)
        self.assertGreaterEqual(len(ice["pwd"] or ""), 22, body)
        self.assertTrue(ice["candidates"], body)
        self.assertRegex(ice["candidates"][0],
                         r"^1 1 UDP \d+ %s %d typ host$" % (re.escape(audio["address"]), audio["port"]))
        # alice's offer did ICE; the trunk was offered none.
        offer = baresip.sdp_body([t for _, src, _, t in alice.sip_messages()
                                  if t.startswith("INVITE ")][0])
        self.assertTrue(ice_lines(offer)["ufrag"], "alice offered no ICE: %s" % offer)
        to_pbx = ice_lines(baresip.sdp_body(pbx.received_requests("INVITE")[0]))
        self.assertFalse(to_pbx["lite"] or to_pbx["ufrag"] or to_pbx["candidates"], to_pbx)

        # Checks answered, a nomination, baresip saw its checks complete.
        log = alice.log()
        print("baresip ICE: %s" % [l.strip() for l in log.splitlines() if l.startswith("ice:")][:12])
        self.assertRegex(log, r"ice: \S+: connectivity check is complete", "baresip's ICE did not complete")
        print("checks ok %+d, nominations %+d, bad_integrity %+d" % (
            self.ice_metric("ok") - ok_before, self.ice_metric() - nominations_before,
            self.ice_metric("bad_integrity") - bad_before))
        self.assertGreater(self.ice_metric("ok"), ok_before)
        self.assertGreater(self.ice_metric(), nominations_before)
        self.assertGreater(stun.requests, 0, "baresip never asked the STUN server")
        nominated = re.findall(r"leg A ICE nominated (127\.0\.0\.1):(\d+) for RTP",
                               self.cluster.media.log_text())
        self.assertTrue(nominated, "no nomination in the media worker's log")
        print("nominated (media worker log): %s; leg A remote: %s" % (nominated, session["leg_a"]["remote"]))
        # The nominated address is leg A's remote (it received alice's checks and media).
        self.assertEqual(session["leg_a"]["remote"]["host"], nominated[-1][0], session)
        self.assertEqual(int(session["leg_a"]["remote"]["port"]), int(nominated[-1][1]), session)

        # The bad check: no answer, counted, the remote did not move.
        self.assertIsNone(probe.get("answer"), "a check with a bad MESSAGE-INTEGRITY was answered")
        self.assertIsNotNone(probe.get("bad_after"), "bad_integrity did not move")
        moved = probe.get("session_after", [{}])
        self.assertEqual(moved[0].get("leg_a", {}).get("remote"), session["leg_a"]["remote"],
                         "the bad check moved leg A's remote")

        # Audio both ways, through the nominated pair.
        self.assertHears(alice, TRUNK_HZ, "alice (ICE) hears the PBX")
        self.assertHears(pbx, CLIENT_HZ, "the PBX hears alice (ICE)")
        self.assertNoLeftovers()
        return session


    def test_inbound_call_to_an_ice_client_the_offer_carries_ice_lite(self):
        """The PBX (a baresip UAS on the pbx trunk, no ICE) calls extension 100, alice's
        line (examples/local/routing.json: coexistence): the offer alice gets is ours, with
        ICE-lite (the internal side is offered ICE, docs/media.md); alice answers with ICE,
        checks leg B's port and nominates; audio both ways."""
        stun = StunServer()
        self.addCleanup(stun.stop)
        pbx = self.trunk("pbx", "2200", [PCMU])
        alice = self.ice_client(stun, answer=True)
        alice.is_caller = False
        ok_before, nominations_before = self.ice_metric("ok"), self.ice_metric()
        started = time.time()
        pbx.dial("sip:100@127.0.0.1:%d" % self.cluster.trunk_port)
        for ua in (pbx, alice):
            ua.wait_event("CALL_ESTABLISHED", 10, after=started)
        time.sleep(1.0)
        sessions = self.cluster.sessions().get("sessions", [])
        time.sleep(max(0.0, started + 4.0 - time.time()))
        pbx.hangup()
        for ua in (pbx, alice):
            ua.wait_event("CALL_CLOSED", 10, after=started)
        session = self.one_session(sessions)

        offer = baresip.sdp_body(alice.received_requests("INVITE")[0])
        ice = ice_lines(offer)
        audio = baresip.sdp_audio(offer)
        print("ICE offered to alice: %s" % ice)
        self.assertTrue(ice["lite"] and ice["ufrag"] and ice["pwd"], offer)
        self.assertRegex(ice["candidates"][0],
                         r"^1 1 UDP \d+ %s %d typ host$" % (re.escape(audio["address"]), audio["port"]))
        answer = [t for _, src, _, t in alice.sip_messages()
                  if src == "%s:%d" % (alice.host, alice.port) and t.startswith("SIP/2.0 200 ")
                  and re.search(r"^CSeq:\s*\d+ INVITE\s*$", t, re.M)]
        self.assertTrue(answer and ice_lines(baresip.sdp_body(answer[0]))["ufrag"],
                        "alice answered without ICE")
        to_pbx = ice_lines(baresip.sdp_body(pbx.received_responses(200, "INVITE")[0]))
        self.assertFalse(to_pbx["lite"] or to_pbx["ufrag"] or to_pbx["candidates"], to_pbx)
        log = alice.log()
        print("baresip ICE: %s" % [l.strip() for l in log.splitlines() if l.startswith("ice:")][:12])
        self.assertRegex(log, r"ice: \S+: connectivity check is complete", "baresip's ICE did not complete")
        self.assertGreater(self.ice_metric("ok"), ok_before)
        self.assertGreater(self.ice_metric(), nominations_before)
        nominated = re.findall(r"leg B ICE nominated (127\.0\.0\.1):(\d+) for RTP",
                               self.cluster.media.log_text())
        self.assertTrue(nominated, "no nomination of leg B in the media worker's log")
        self.assertEqual(int(session["leg_b"]["remote"]["port"]), int(nominated[-1][1]), session)
        self.assertHears(alice, TRUNK_HZ, "alice (ICE, called) hears the PBX")
        self.assertHears(pbx, CLIENT_HZ, "the PBX hears alice (ICE, called)")
        self.assertNoLeftovers()


def harness_wait_value(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return None


if __name__ == "__main__":
    harness.main()
