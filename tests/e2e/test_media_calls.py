"""Media end to end (issue 6): SRTP, transcoding and DTMF through the whole cluster
(harness.Cluster(calls=True): registrar, routing, media-transcoder, signaling gateway) with
an independent SIP user agent, baresip 1.0.0 (tests/e2e/baresip.py), on both sides:

- the internal client is a baresip "alice" on 127.0.0.21 that REGISTERs through the
  gateway's internal side (digest) and dials 2200 (-> the pbx trunk) or 4255551234
  (-> pstn-primary) with SRTP (mediaenc=srtp-mand: RTP/SAVP, SDES) and Opus or G.722;
- the trunk is a baresip UAS on the trunk's own address (127.0.0.13 or 127.0.0.11) that
  answers at once with PCMU and plain RTP, or with SRTP;
- each side plays a sine of its own frequency (client 440 Hz, trunk 1000 Hz) and records
  what it receives; each recording must hold the other side's frequency (within 5 Hz) at a
  level close to what was sent, with most of its energy in that tone;
- the SDP each side received (baresip's -s trace) shows what the gateway offered and
  answered on that leg, `medctl sessions` shows whether the worker transcodes, and an RTP
  capture on lo (harness.LoopbackCapture, root) shows the payload types on each leg;
- DTMF: `sndcode` on one side, CALL_DTMF_START events (RFC 4733 only; baresip detects no
  in-band tones) on the other, both ways; toward a SIPp PBX without telephone-event the
  digits arrive in-band (decoded from a capture), and the in-band digits such a PBX plays
  (sox-made tones) reach the client as RFC 4733 events (the worker detects them);
- the gateway runs with its own default internal_srtp "required" (a plain client: 488).

G.729: baresip has none, so the trunk is SIPp answering only PT 18 and echoing the RTP it
gets (-rtp_echo); see G729Calls for what that proves and what it does not. A SIPp PBX that
streams PCMU before it answers checks that no plain RTP reaches the SRTP client.
DirectBaresip calls baresip to baresip without Medius: the peers' own check.

Nothing is skipped: a missing baresip, module, sox, numpy or capture permission fails with
a message that names it. Trunks are kept up by idle SIPps between tests
(test_calls.CallTestCase); a test swaps in its own far end and the idle SIPp comes back at
cleanup. The file runs in about a minute.
"""

import os
import re
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import baresip  # noqa: E402
import harness  # noqa: E402
from test_calls import CallTestCase  # noqa: E402

DOMAIN = harness.DOMAIN
HOSTS = harness.TRUNK_HOSTS
CLIENT_HOST = "127.0.0.21"
CLIENT_HZ = 440
TRUNK_HZ = 1000
TALK_S = baresip.TALK_S
OPUS = "opus/48000/2"
G722 = "g722/16000/1"
PCMU = "pcmu"

# pbx: PCMU only, plain RTP (the "PSTN" side of the issue). pstn-primary: SRTP required,
# Opus, for the SRTP<->SRTP call (4255551234 -> local route -> pstn-primary, "14255551234").
MEDIA_TRUNKS = {"pbx": {"srtp": "off", "codecs": ["PCMU"]},
                "pstn-primary": {"srtp": "required", "codecs": ["opus"]}}
# The gateway's own default for the internal side (the harness lowers it to "optional" for
# SIPp callers; every internal client here is a baresip with SRTP).
INTERNAL_SRTP_REQUIRED = {"media": {"internal_srtp": "required"}}



def harness_wait(predicate, what, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("not within %.1fs: %s" % (timeout, what))

class PayloadCapture(harness.LoopbackCapture):
    """LoopbackCapture that also keeps the RTP payload of the packets (RTCP included) to or
    from the hosts that are sent to one UDP port: payloads = [(time, seq, payload type,
    payload)]."""

    def __init__(self, port, hosts=None):
        self.port = port
        self.payloads = []
        super().__init__(hosts=hosts)

    def on_rtp(self, when, src, sport, dst, dport, rtp):
        if dport != self.port:
            return
        header = 12 + 4 * (rtp[0] & 0x0F)
        if rtp[0] & 0x10 and len(rtp) >= header + 4:   # header extension
            header += 4 + 4 * struct.unpack("!H", rtp[header + 2:header + 4])[0]
        seq = struct.unpack("!H", rtp[2:4])[0]
        self.payloads.append((when, seq, rtp[1] & 0x7F, bytes(rtp[header:])))


class MediaCallTestCase(baresip.DumpsAgentsOnFailure, baresip.HearsTones, CallTestCase):
    """CallTestCase plus baresip peers: dumps their logs when a test fails."""

    @classmethod
    def setUpClass(cls):
        baresip.check_prerequisites()
        super().setUpClass()

    # ---- peers

    def client(self, codecs, mediaenc="srtp-mand", user="alice", tone_hz=CLIENT_HZ):
        """A baresip registered as user through the gateway (REGISTER_OK awaited)."""
        account = baresip.client_account(user, self.cluster.internal_port, mediaenc=mediaenc,
                                         codecs=codecs)
        ua = baresip.Baresip(self.cluster.dir, "client-" + user, CLIENT_HOST, account, tone_hz)
        self.agents.append(ua)
        self.addCleanup(ua.stop)
        ua.start()
        ua.is_caller = True
        ua.wait_registered()
        return ua

    def trunk(self, trunk, user, codecs, mediaenc=None, tone_hz=TRUNK_HZ):
        """A baresip UAS answering calls to `user` on the trunk's address (the idle SIPp
        comes back at cleanup)."""
        self.stop_idle(trunk)
        self.addCleanup(self.start_idle, trunk)
        host, port = HOSTS[trunk], self.cluster.trunk_ports[trunk]
        account = baresip.trunk_account(user, host, port, mediaenc=mediaenc, codecs=codecs)
        ua = baresip.Baresip(self.cluster.dir, "trunk-" + trunk, host, account, tone_hz,
                             port=port)
        ua.is_caller = False
        self.agents.append(ua)
        self.addCleanup(ua.stop)
        ua.start()
        return ua

    def call(self, client, number, peers=(), talk_s=TALK_S, during=None):
        """client dials number; once every party (client and peers) reports
        CALL_ESTABLISHED, during() runs (if given) and the worker's sessions are read
        (after 1 s of media); the client hangs up after talk_s and everyone must report
        CALL_CLOSED. Returns the sessions seen during the call."""
        started = time.time()
        client.dial("sip:%s@%s" % (number, DOMAIN))
        for ua in (client,) + tuple(peers):
            ua.wait_event("CALL_ESTABLISHED", 10, after=started)
        time.sleep(1.0)
        sessions = self.cluster.sessions().get("sessions", [])
        if during is not None:
            during()
        remaining = started + talk_s - time.time()
        if remaining > 0:
            time.sleep(remaining)
        client.hangup()
        for ua in (client,) + tuple(peers):
            ua.wait_event("CALL_CLOSED", 10, after=started)
        return sessions

    # ---- verdicts

    def received_sdp(self, ua, message):
        """The SDP of the first message `message` ("INVITE", or 200) ua received."""
        if message == "INVITE":
            found = ua.received_requests("INVITE")
        else:
            found = ua.received_responses(message, "INVITE")
        self.assertTrue(found, "%s received no %s; its trace: %s" % (
            ua.name, message, [t.split("\n", 1)[0] for _, _, _, t in ua.sip_messages()]))
        return baresip.sdp_audio(baresip.sdp_body(found[0]))

    def sent_sdp(self, ua, message):
        me = "%s:%d" % (ua.host, ua.port)
        for _, src, _, text in ua.sip_messages():
            if src != me:
                continue
            if message == "INVITE" and text.startswith("INVITE "):
                return baresip.sdp_audio(baresip.sdp_body(text))
            if message == 200 and text.startswith("SIP/2.0 200 ") and \
                    re.search(r"^CSeq:\s*\d+ INVITE\s*$", text, re.M):
                return baresip.sdp_audio(baresip.sdp_body(text))
        raise AssertionError("%s sent no %s with SDP" % (ua.name, message))

    def assertLegSdp(self, audio, proto, codecs, crypto, what):
        """An m=audio line with this transport, exactly these codecs (plus
        telephone-event) and a=crypto present or not."""
        names = baresip.codec_names(audio)
        self.assertEqual(audio["proto"], proto, "%s: %s" % (what, audio))
        self.assertEqual([n for n in names if n != "TELEPHONE-EVENT"], codecs,
                         "%s: %s" % (what, audio))
        self.assertIn("TELEPHONE-EVENT", names, "%s: no telephone-event: %s" % (what, audio))
        if crypto:
            self.assertTrue(audio["crypto"], "%s: no a=crypto: %s" % (what, audio))
        else:
            self.assertFalse(audio["crypto"], "%s: a=crypto on a plain leg: %s" % (what, audio))

    def one_session(self, sessions):
        self.assertEqual(len(sessions), 1, "medctl sessions during the call: %s" % sessions)
        session = sessions[0]
        print("media session: transcoding=%s leg_a=%s leg_b=%s" % (
            session.get("transcoding"), session.get("leg_a"), session.get("leg_b")))
        for leg in ("leg_a", "leg_b"):
            stats = session.get(leg, {})
            self.assertGreater(int(stats.get("packets_in", 0)), 0, "%s: %s" % (leg, session))
            self.assertGreater(int(stats.get("packets_out", 0)), 0, "%s: %s" % (leg, session))
            self.assertEqual(int(stats.get("srtp_auth_failures", 0)), 0,
                             "%s: %s" % (leg, session))
        return session

    def stopped_uas(self, uas, what):
        """Stops a SIPp far end that took one call and checks it got the INVITE, the ACK
        and the BYE. (Not finish_uas: after its soft quit SIPp stops answering the
        gateway's OPTIONS, and the OPTIONS it answered with -aa count as calls that keep
        it running ~15 s longer.)"""
        result = uas.stop()
        for method in ("INVITE", "ACK", "BYE"):
            self.assertTrue(result.received(method), "%s got no %s: %s\n%s" % (
                what, method, result.messages("received"), result.describe()))
        return result

    def wire(self):
        """An RTP capture on lo (LoopbackCapture; root only: fails without it)."""
        capture = self.capture(*HOSTS.values(), CLIENT_HOST)
        self.assertIsNotNone(capture, "no AF_PACKET capture on lo (needs root): payload "
                             "types on the wire cannot be checked")
        return capture

    def sent_to(self, capture, ua):
        """The captured RTP packets the worker (127.0.0.1, its RTP port window) sent to
        ua's RTP port, in order. baresip binds RTP to the wildcard address and sends from
        127.0.0.1, so after latching the worker sends to 127.0.0.1 rather than to the SDP's
        address: both count."""
        port = self.sent_sdp(ua, "INVITE" if ua.is_caller else 200)["port"]
        low, high = self.cluster.media_port_min, self.cluster.media_port_max
        return [p for p in capture.packets
                if p[1] == "127.0.0.1" and low <= p[2] <= high
                and p[3] in (ua.host, "127.0.0.1") and p[4] == port]

    @staticmethod
    def pt_counts(packets):
        counts = {}
        for p in packets:
            counts[p[5]] = counts.get(p[5], 0) + 1
        return counts

    def assertCodecs(self, session, leg_a, leg_b):
        for leg, want in (("leg_a", leg_a), ("leg_b", leg_b)):
            self.assertEqual(session.get(leg, {}).get("codec", "").upper(), want.upper(),
                             "%s codec: %s" % (leg, session))


class TranscodedCalls(MediaCallTestCase):
    """Opus or G.722 with SRTP inside, PCMU with plain RTP on the pbx trunk; DTMF across;
    SRTP on both legs with their own keys."""

    cluster_options = {"trunk_overrides": MEDIA_TRUNKS, "gateway_extra": INTERNAL_SRTP_REQUIRED}

    def transcoded_call(self, client_codec, codec_name):
        capture = self.wire()
        pbx = self.trunk("pbx", "2200", [PCMU])
        alice = self.client([client_codec])
        sessions = self.call(alice, "2200", peers=(pbx,))
        capture.stop()
        session = self.one_session(sessions)
        self.assertTrue(session.get("transcoding"), "not transcoding: %s" % session)
        self.assertCodecs(session, codec_name, "PCMU")
        # What each side was offered and answered.
        self.assertLegSdp(self.received_sdp(pbx, "INVITE"), "RTP/AVP", ["PCMU"], False,
                          "the offer the PBX received")
        self.assertLegSdp(self.received_sdp(alice, 200), "RTP/SAVP", [codec_name.upper()], True,
                          "the answer alice received")
        self.assertHears(alice, TRUNK_HZ, "alice (%s, SRTP) hears the PBX" % codec_name)
        self.assertHears(pbx, CLIENT_HZ, "the PBX (PCMU, RTP) hears alice")
        # On the wire: PCMU (PT 0) only to the PBX; alice's codec reached alice (the SRTP
        # header is in clear).
        to_pbx, to_alice = self.sent_to(capture, pbx), self.sent_to(capture, alice)
        print("payload types from the worker: to the PBX %s, to alice %s"
              % (self.pt_counts(to_pbx), self.pt_counts(to_alice)))
        self.assertEqual(set(self.pt_counts(to_pbx)), {0}, "payload types sent to the PBX")
        codec_pt = [int(pt) for pt, name in self.received_sdp(alice, 200)["formats"].items()
                    if name.split("/")[0].upper() == codec_name.upper()]
        self.assertGreater(sum(self.pt_counts(to_alice).get(pt, 0) for pt in codec_pt), 100,
                           "%s packets to alice: %s" % (codec_name, self.pt_counts(to_alice)))
        self.assertNoLeftovers()
        # The CDR line carries the worker's final media figures.
        media = harness_wait(lambda: (self.cluster.cdr_records() or [{}])[-1].get("media"),
                             "a CDR line with media")
        print("CDR media: %s" % media)
        self.assertTrue(media["transcoding"])
        self.assertEqual(media["leg_a"]["codec"].upper(), codec_name.upper())
        self.assertTrue(media["leg_a"]["srtp"])
        self.assertEqual(media["leg_b"]["codec"], "PCMU")
        self.assertFalse(media["leg_b"]["srtp"])
        for leg in ("leg_a", "leg_b"):
            self.assertGreater(media[leg]["packets_in"], 100, media)
            self.assertGreater(media[leg]["mos"], 3.5, media)
        self.assertGreater(media["mos"], 3.5, media)

    def test_opus_srtp_client_to_pcmu_trunk(self):
        self.transcoded_call(OPUS, "opus")

    def test_g722_srtp_client_to_pcmu_trunk(self):
        self.transcoded_call(G722, "G722")

    def test_plain_rtp_from_the_trunk_never_reaches_the_srtp_client(self):
        """The PBX (SIPp) sends PCMU from the moment it rings, 1.5 s before it answers
        (a trunk that starts its media early). alice (RTP/SAVP, Opus) must get nothing but
        packets of the payload types of her answer, i.e. never the trunk's plain PCMU
        relayed in clear while the worker has no plan yet; after the answer she hears the
        PBX's tone, sent as PCMU by SIPp (sox-encoded, not Medius's encoder) and transcoded
        to Opus. The same happens by chance with a baresip PBX, which starts its RTP with
        its 200 OK: its first packet can arrive before the worker has the plan (seen as
        one PT 0 packet to alice in some transcoded_call runs); this test makes it certain."""
        capture = self.wire()
        self.stop_idle("pbx")
        self.addCleanup(self.start_idle, "pbx")
        pbx = harness.SippProcess(self.early_rtp_scenario(), self.cluster.dir,
                                  local_ip=HOSTS["pbx"], port=self.cluster.trunk_ports["pbx"],
                                  timeout=60, name="pbx-early-rtp-%d" % time.monotonic_ns())
        self.addCleanup(pbx.stop)
        time.sleep(0.3)  # bound before the INVITE comes
        alice = self.client([OPUS])
        self.call(alice, "2200", talk_s=TALK_S + 1.5)
        capture.stop()
        self.stopped_uas(pbx, "the PBX sending RTP before its answer")
        allowed = {int(pt) for pt in self.received_sdp(alice, 200)["formats"]}
        packets = self.sent_to(capture, alice)
        from_pbx = [p for p in capture.packets if (p[1], p[2]) == (HOSTS["pbx"], pbx.media_port)]
        self.assertGreater(len(from_pbx), 150, "RTP from the PBX: %s" % capture.flows())
        self.assertGreater(len(packets), 100, "RTP to alice: %s" % capture.flows())
        answered = min(p[0] for p in packets if p[5] in allowed)
        wrong = ["%+.3fs after alice's first %s packet: %s:%d -> %s:%d PT %d"
                 % (p[0] - answered, OPUS, p[1], p[2], p[3], p[4], p[5])
                 for p in packets if p[5] not in allowed]
        print("from the worker to alice: payload types %s (negotiated %s); from the PBX: "
              "%d packets, %d of them before alice's first negotiated packet"
              % (self.pt_counts(packets), sorted(allowed), len(from_pbx),
                 sum(1 for p in from_pbx if p[0] < answered)))
        self.assertHears(alice, TRUNK_HZ, "alice (Opus, SRTP) hears the SIPp PBX (PCMU)")
        self.assertNoLeftovers()
        if wrong:
            self.fail("%d packet(s) to alice with a payload type she never negotiated (%s), "
                      "the first: %s" % (len(wrong), sorted(allowed), "; ".join(wrong[:3])))

    def early_rtp_scenario(self):
        """uas_early_rtp_pcmu.xml with its tone file: rtp_stream takes a literal path."""
        tone = os.path.join(self.cluster.dir, "tone-%d.ul" % TRUNK_HZ)
        if not os.path.exists(tone):
            baresip.raw_ulaw_tone(tone, TRUNK_HZ, seconds=2)
        with open(os.path.join(harness.SCENARIOS, "uas_early_rtp_pcmu.xml")) as f:
            text = f.read().replace("@TONE_FILE@", tone)
        path = os.path.join(self.cluster.dir, "uas_early_rtp_pcmu.xml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_dtmf_to_a_trunk_without_telephone_event_arrives_in_band(self):
        """The PBX (SIPp) answers PCMU without telephone-event: alice's RFC 4733 digits
        must reach it as in-band tones. The PCMU the worker sends to the PBX is captured,
        decoded and searched for DTMF (Goertzel, baresip.dtmf_digits)."""
        pbx = self.far("pbx", "uas_answer_pcmu_only.xml", echo=False)
        capture = PayloadCapture(pbx.media_port, hosts={HOSTS["pbx"], "127.0.0.1"})
        self.addCleanup(capture.stop)
        alice = self.client([OPUS])

        def digits():
            alice.send_digits("159#")
            time.sleep(2.0)

        self.call(alice, "2200", talk_s=TALK_S + 1, during=digits)
        capture.stop()
        self.stopped_uas(pbx, "the PBX without telephone-event")
        packets = sorted(capture.payloads, key=lambda p: p[0])
        types = {p[2] for p in packets}
        self.assertGreater(len(packets), 100, "RTP to the PBX")
        self.assertEqual(types, {0}, "payload types sent to the PBX without telephone-event")
        samples = baresip.ulaw_to_float(b"".join(p[3] for p in packets))
        found = baresip.dtmf_digits(samples)
        print("in-band DTMF in the PCMU sent to the PBX: %r (%d packets)"
              % (found, len(packets)))
        self.assertEqual(found, "159#", "digits decoded from the PCMU sent to the PBX (%d "
                         "packets, payload types %s)" % (len(packets), sorted(types)))
        self.assertNoLeftovers()

    def test_in_band_dtmf_from_a_trunk_without_telephone_event_reaches_the_client_as_events(self):
        """The PBX (SIPp) answers PCMU without telephone-event and plays the digits 1, 5, 9, #
        in-band (sox-made dual tones in its RTP). alice (Opus, SRTP, telephone-event) must
        get them as RFC 4733 events: the worker detects them in the decoded PCMU (spandsp)
        and sends telephone-events; baresip reports each as CALL_DTMF_START."""
        tones = self.dtmf_ulaw_file("159#")
        with open(os.path.join(harness.SCENARIOS, "uas_inband_dtmf_pcmu.xml")) as f:
            text = f.read().replace("@TONE_FILE@", tones)
        scenario = os.path.join(self.cluster.dir, "uas_inband_dtmf_pcmu.xml")
        with open(scenario, "w") as f:
            f.write(text)
        self.stop_idle("pbx")
        self.addCleanup(self.start_idle, "pbx")
        pbx = harness.SippProcess(scenario, self.cluster.dir, local_ip=HOSTS["pbx"],
                                  port=self.cluster.trunk_ports["pbx"], timeout=60,
                                  name="pbx-inband-dtmf-%d" % time.monotonic_ns())
        self.addCleanup(pbx.stop)
        time.sleep(0.3)  # bound before the INVITE comes
        alice = self.client([OPUS])

        def digits():
            alice.wait_event("CALL_DTMF_START", 8, count=4)

        self.call(alice, "2200", talk_s=TALK_S + 2, during=digits)
        self.stopped_uas(pbx, "the PBX dialling in-band")
        self.assertEqual(alice.received_digits(), "159#", alice.event_summary())
        self.assertNoLeftovers()

    def dtmf_ulaw_file(self, digits):
        """A raw u-law file (SIPp's rtp_stream input) with `digits` as DTMF dual tones, 150
        ms each with 150 ms gaps after 0.5 s of silence, made with sox."""
        low = {"1": 697, "2": 697, "3": 697, "4": 770, "5": 770, "6": 770, "7": 852,
               "8": 852, "9": 852, "*": 941, "0": 941, "#": 941}
        high = {"1": 1209, "2": 1336, "3": 1477, "4": 1209, "5": 1336, "6": 1477,
                "7": 1209, "8": 1336, "9": 1477, "*": 1209, "0": 1336, "#": 1477}
        path = os.path.join(self.cluster.dir, "dtmf-%s.ul" % digits.replace("#", "H").replace("*", "S"))
        parts = []
        silence = os.path.join(self.cluster.dir, "silence.ul")
        subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-t", "ul", silence, "trim", "0",
                        "0.15"], check=True, capture_output=True, timeout=30)
        lead = os.path.join(self.cluster.dir, "lead.ul")
        subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-t", "ul", lead, "trim", "0",
                        "0.5"], check=True, capture_output=True, timeout=30)
        parts.append(lead)
        for i, digit in enumerate(digits):
            tone = os.path.join(self.cluster.dir, "digit-%d.ul" % i)
            subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-t", "ul", tone, "synth",
                            "0.15", "sine", str(low[digit]), "sine", "mix", str(high[digit]),
                            "vol", "0.4"], check=True, capture_output=True, timeout=30)
            parts += [tone, silence]
        parts.append(lead)
        with open(path, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    out.write(f.read())
        return path

    def test_dtmf_both_ways_across_transcoding(self):
        """RFC 4733 events from alice (Opus, SRTP) reach the PCMU trunk as telephone-events,
        and the other way round."""
        pbx = self.trunk("pbx", "2200", [PCMU])
        alice = self.client([OPUS])

        def digits():
            sent = time.time()
            alice.send_digits("159#")
            pbx.wait_event("CALL_DTMF_START", 5, after=sent, count=4)
            sent = time.time()
            pbx.send_digits("*73")
            alice.wait_event("CALL_DTMF_START", 5, after=sent, count=3)

        self.call(alice, "2200", peers=(pbx,), talk_s=TALK_S + 2, during=digits)
        self.assertEqual(pbx.received_digits(), "159#", pbx.event_summary())
        self.assertEqual(alice.received_digits(), "*73", alice.event_summary())
        self.assertNoLeftovers()

    def test_plain_rtp_client_refused_when_srtp_is_required(self):
        """internal_srtp "required": an offer without SRTP (RTP/AVP, no a=crypto) from a
        client gets 488 and reaches no trunk."""
        pbx = self.trunk("pbx", "2200", [PCMU])
        bob = self.client([PCMU], mediaenc=None, user="bob")
        started = time.time()
        bob.dial("sip:2200@%s" % DOMAIN)
        closed = bob.wait_event("CALL_CLOSED", 10, after=started)[0]
        self.assertIn("488", closed.get("param", ""), bob.event_summary())
        self.assertTrue(bob.received_responses(488, "INVITE"), "no 488 in bob's trace")
        self.assertFalse(pbx.received_requests("INVITE"), "the PBX got the call")
        self.assertNoLeftovers()

    def test_srtp_to_srtp_with_a_key_per_leg(self):
        """pstn-primary requires SRTP: both legs RTP/SAVP, the same codec (relayed, not
        transcoded), and each leg has its own SDES keys: the worker decrypts and encrypts
        again, it does not pass alice's key to the trunk or the trunk's to alice."""
        self.assertEqual(self.route_outcome("sip:alice@%s" % DOMAIN, "4255551234"),
                         "OUTCOME_ROUTED")
        trunk = self.trunk("pstn-primary", "14255551234", [OPUS], mediaenc="srtp-mand")
        alice = self.client([OPUS])
        sessions = self.call(alice, "4255551234", peers=(trunk,))
        session = self.one_session(sessions)
        self.assertFalse(session.get("transcoding"), "transcoding Opus to Opus: %s" % session)
        offer_in = self.received_sdp(trunk, "INVITE")
        answer_in = self.received_sdp(alice, 200)
        self.assertLegSdp(offer_in, "RTP/SAVP", ["OPUS"], True, "the offer the trunk received")
        self.assertLegSdp(answer_in, "RTP/SAVP", ["OPUS"], True, "the answer alice received")
        keys = lambda audio: {line.split("inline:")[1].split("|")[0]  # noqa: E731
                              for line in audio["crypto"]}
        alice_keys = keys(self.sent_sdp(alice, "INVITE"))
        trunk_keys = keys(self.sent_sdp(trunk, 200))
        self.assertTrue(alice_keys and trunk_keys, "no SDES keys in what the peers sent")
        self.assertFalse(alice_keys & keys(offer_in), "alice's key reached the trunk")
        self.assertFalse(trunk_keys & keys(answer_in), "the trunk's key reached alice")
        self.assertHears(alice, TRUNK_HZ, "alice (Opus, SRTP) hears the trunk")
        self.assertHears(trunk, CLIENT_HZ, "the trunk (Opus, SRTP) hears alice")
        self.assertNoLeftovers()


class G729Calls(MediaCallTestCase):
    """alice (Opus, SRTP) calls a pbx that only does G.729. baresip has no G.729 and SIPp
    cannot encode it, so the pbx is SIPp answering with PT 18 only and echoing every RTP
    packet it receives (-rtp_echo), and alice must hear her own 440 Hz.

    What this proves: the gateway offers G.729 to a G.729-only trunk and the worker accepts
    a PT 18 answer; the worker sends G.729 (PT 18, checked on the wire) towards the trunk
    and decodes the same packets coming back into Opus, so both the encode and the decode
    direction of the transcoding chain Opus <-> G.729 carry a tone intact, over SRTP on
    alice's side.
    What it does not prove: interoperability with another G.729 implementation (the
    encoder and the decoder are both Medius's bcg729; an encoder that wrote a bitstream
    only its own decoder understands would pass), nor that two different streams are kept
    apart (the echo sends alice's tone back, not another one)."""

    cluster_options = {"trunk_overrides": {"pbx": {"srtp": "off", "codecs": ["G729"]}},
                       "gateway_extra": INTERNAL_SRTP_REQUIRED}

    def test_opus_srtp_client_to_g729_trunk_echo(self):
        capture = self.capture(HOSTS["pbx"])
        self.assertIsNotNone(capture, "no AF_PACKET capture on lo (needs root): the G.729 "
                             "payload type cannot be checked on the wire")
        pbx = self.far("pbx", "uas_answer_g729.xml", echo=True)
        alice = self.client([OPUS])
        sessions = self.call(alice, "2200")
        capture.stop()
        session = self.one_session(sessions)
        self.assertTrue(session.get("transcoding"), "not transcoding: %s" % session)
        self.assertCodecs(session, "opus", "G729")
        result = self.stopped_uas(pbx, "the G.729 PBX")
        invite = self.first(result, "INVITE", "the G.729 PBX")
        offer = baresip.sdp_audio(invite.body.replace("\r\n", "\n"))
        self.assertLegSdp(offer, "RTP/AVP", ["G729"], False, "the offer the PBX received")
        to_pbx = [p for p in capture.packets if (p[3], p[4]) == (HOSTS["pbx"], pbx.media_port)]
        from_pbx = [p for p in capture.packets if (p[1], p[2]) == (HOSTS["pbx"], pbx.media_port)]
        types = sorted({p[5] for p in to_pbx})
        print("RTP to the G.729 PBX: %d packets, payload types %s; echoed back: %d"
              % (len(to_pbx), types, len(from_pbx)))
        self.assertGreater(len(to_pbx), 100, "RTP towards the PBX")
        self.assertGreater(len(from_pbx), 100, "RTP echoed by the PBX")
        self.assertEqual(types, [18], "payload types sent to the G.729-only PBX")
        self.assertHears(alice, CLIENT_HZ, "alice hears her own tone through G.729 and back")
        self.assertNoLeftovers()


class DirectBaresip(MediaCallTestCase):
    """The peers themselves, without Medius: two baresips calling each other directly with
    the codecs and SRTP of the tests above. If this fails, the tests above say nothing about
    Medius. Runs without a cluster."""

    @classmethod
    def setUpClass(cls):
        baresip.check_prerequisites()
        import tempfile
        cls.dir = tempfile.mkdtemp(prefix="medius-e2e-baresip-direct-")

    @classmethod
    def tearDownClass(cls):
        pass

    def direct(self, codec, mediaenc):
        port = baresip.free_sip_port(HOSTS["pbx"])
        far = baresip.Baresip(self.dir, "far", HOSTS["pbx"],
                              baresip.trunk_account("2200", HOSTS["pbx"], port, mediaenc=mediaenc,
                                                    codecs=[codec]), TRUNK_HZ, port=port)
        near = baresip.Baresip(self.dir, "near", CLIENT_HOST,
                               "<sip:alice@%s:{port}>;regint=0%s" % (
                                   CLIENT_HOST, baresip._media_params(mediaenc, [codec])),
                               CLIENT_HZ)
        for ua in (far, near):
            self.agents.append(ua)
            self.addCleanup(ua.stop)
            ua.start()
        started = time.time()
        near.dial("sip:2200@%s:%d" % (HOSTS["pbx"], port))
        for ua in (near, far):
            ua.wait_event("CALL_ESTABLISHED", 5, after=started)
        time.sleep(1.0)
        sent = time.time()
        near.send_digits("159#")
        far.wait_event("CALL_DTMF_START", 5, after=sent, count=4)
        time.sleep(max(0.0, started + TALK_S - time.time()))
        near.hangup()
        for ua in (near, far):
            ua.wait_event("CALL_CLOSED", 5, after=started)
        self.assertEqual(far.received_digits(), "159#")
        self.assertHears(near, TRUNK_HZ, "near (%s) hears far" % codec)
        self.assertHears(far, CLIENT_HZ, "far (%s) hears near" % codec)

    def test_opus_srtp(self):
        self.direct(OPUS, "srtp-mand")

    def test_pcmu(self):
        self.direct(PCMU, None)


if __name__ == "__main__":
    harness.main()
