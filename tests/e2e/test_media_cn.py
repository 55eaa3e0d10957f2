"""Comfort noise (RFC 3389) end to end: a trunk that takes CN ("CN" in its routing.json
codecs) behind an Opus client that does not.

alice (baresip, Opus with SRTP, no CN) calls the pbx trunk, a SIPp UAS answering PCMU with
CN/8000 (uas_answer_pcmu_cn.xml). The worker offers the trunk CN although alice did not
(the call is transcoded whatever it answers), answers alice without CN, and while alice is
muted (baresip sends encoded silence) sends the trunk RFC 3389 CN packets (PT 13, one level
byte) instead of PCMU; when she unmutes, PCMU resumes. A capture on lo (root) sees the
packets the worker sends the trunk. Same cluster and peers as test_media_calls.py.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import baresip  # noqa: E402
import harness  # noqa: E402
from test_media_calls import (HOSTS, INTERNAL_SRTP_REQUIRED, OPUS,  # noqa: E402
                              MediaCallTestCase, PayloadCapture)

CN_TRUNKS = {"pbx": {"srtp": "off", "codecs": ["PCMU", "CN"]}}


class ComfortNoiseCalls(MediaCallTestCase):
    cluster_options = {"trunk_overrides": CN_TRUNKS, "gateway_extra": INTERNAL_SRTP_REQUIRED}

    def test_silence_from_an_opus_client_reaches_a_cn_trunk_as_cn(self):
        pbx = self.far("pbx", "uas_answer_pcmu_cn.xml", echo=False)
        capture = PayloadCapture(pbx.media_port, hosts={HOSTS["pbx"], "127.0.0.1"})
        self.addCleanup(capture.stop)
        alice = self.client([OPUS])
        marks = {}

        def mute_a_while():
            marks["muted"] = time.time()
            alice.command("mute")
            time.sleep(1.5)
            marks["sessions"] = self.cluster.sessions().get("sessions", [])
            time.sleep(0.5)
            marks["unmuted"] = time.time()
            alice.command("mute")
            time.sleep(1.0)

        self.call(alice, "2200", talk_s=5.5, during=mute_a_while)
        capture.stop()
        uas = self.stopped_uas(pbx, "the PBX with CN")
        offer = uas.received("INVITE")[0].text
        self.assertIn("CN/8000", offer, "the offer to the trunk: %s" % offer)
        answer = baresip.sdp_audio(baresip.sdp_body(alice.received_responses(200, "INVITE")[0]))
        self.assertNotIn("CN", baresip.codec_names(answer), "the answer to alice: %s" % answer)

        packets = sorted(capture.payloads, key=lambda p: p[0])
        muted = [p for p in packets if marks["muted"] + 0.5 < p[0] < marks["unmuted"]]
        talking = [p for p in packets if p[0] > marks["unmuted"] + 0.3]
        before = [p for p in packets if p[0] < marks["muted"]]
        summary = lambda ps: {pt: sum(1 for p in ps if p[2] == pt) for pt in {p[2] for p in ps}}  # noqa: E731
        print("to the trunk: before mute %s, muted %s, after %s"
              % (summary(before), summary(muted), summary(talking)))
        self.assertGreater(summary(before).get(0, 0), 30, "PCMU while alice talks")
        cn = [p for p in muted if p[2] == 13]
        print("CN levels while muted: %s" % [p[3][0] for p in cn])
        self.assertGreaterEqual(len(cn), 3, "CN while alice is muted: %s" % summary(muted))
        self.assertLess(len(muted), 20, "silence is not sent as 20 ms audio: %s" % summary(muted))
        for p in cn:
            self.assertEqual(len(p[3]), 1, "a level byte: %r" % (p[3],))
            self.assertGreaterEqual(p[3][0], 50, "a quiet level: %r" % (p[3],))
        self.assertGreater(summary(talking).get(0, 0), 20, "PCMU again after unmuting")
        # The worker counts them on the trunk's leg (medctl sessions, GetSessionStats).
        self.assertEqual(len(marks["sessions"]), 1, marks["sessions"])
        leg_b = marks["sessions"][0].get("leg_b", {})
        self.assertGreaterEqual(int(leg_b.get("comfort_noise_sent", 0)), 3, marks["sessions"][0])
        self.assertEqual(int(marks["sessions"][0].get("leg_a", {}).get("comfort_noise_sent", 0)), 0)
        self.assertNoLeftovers()


if __name__ == "__main__":
    harness.main()
