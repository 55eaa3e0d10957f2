"""The media-transcoder end to end: the real `media-transcoder` binary (examples/local/media.json,
listen addresses and port range moved through the MEDIUS_* environment overrides), driven over
gRPC with grpcio's generic API (the wire helpers of test_routing.py), with two Python UDP
sockets playing leg A and leg B of a call anchored on it.
"""

import os
import random
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_routing import _decode, _field, _varint_field  # noqa: E402

EXAMPLE = os.path.join(harness.ROOT, "examples", "local", "media.json")
SERVICE = "/medius.v1.MediaTranscoder/"
LEG_A, LEG_B = 1, 2
KIND_MEDIA_TIMEOUT, KIND_SESSION_DELETED = 1, 2


def sdp(port, address="127.0.0.1"):
    return ("v=0\r\no=peer 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"
            "m=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n" % (address, address, port))


def audio_port(text):
    for line in text.splitlines():
        if line.startswith("m=audio "):
            return int(line.split()[1])
    raise AssertionError("no m=audio in %r" % text)


def rtp(seq, ssrc=0x01020304, payload_type=0):
    return struct.pack("!BBHII", 0x80, payload_type, seq, seq * 160, ssrc) + b"\xd5" * 160


class Peer:
    """A UDP socket on 127.0.0.1 playing one leg."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def send(self, port, data):
        self.sock.sendto(data, ("127.0.0.1", port))

    def receive(self, timeout=2.0):
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return None, None
        data, source = self.sock.recvfrom(4096)
        return data, source[1]

    def close(self):
        self.sock.close()


class MediaTranscoder:
    """One media-transcoder process on free ports; its RTP ports in a random window below
    the ports harness.free_port hands out."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="medius-e2e-media-")
        self.grpc_port = harness.free_port()
        self.metrics_port = harness.free_port()
        base = 10000 + 100 * random.SystemRandom().randrange(0, 99)
        self.port_min, self.port_max = base, base + 99
        env = {"MEDIUS_GRPC_LISTEN": "127.0.0.1:%d" % self.grpc_port,
               "MEDIUS_METRICS_LISTEN": "127.0.0.1:%d" % self.metrics_port,
               "MEDIUS_MEDIA_PORT_MIN": str(self.port_min),
               "MEDIUS_MEDIA_PORT_MAX": str(self.port_max)}
        self.service = harness.Service(
            "media-transcoder",
            [os.path.join(harness.bin_dir(), "media-transcoder"), "--config", EXAMPLE], env,
            os.path.join(self.dir, "media-transcoder.log"))
        harness.wait_tcp("127.0.0.1", self.grpc_port, 30, self.service.proc)
        self.channel = grpc.insecure_channel("127.0.0.1:%d" % self.grpc_port)
        grpc.channel_ready_future(self.channel).result(timeout=10)

    def call(self, method, request, timeout=5):
        return self.channel.unary_unary(SERVICE + method)(request, timeout=timeout)

    def health(self):
        rc = subprocess.run([os.path.join(harness.bin_dir(), "medctl"), "health", "--target",
                             "127.0.0.1:%d" % self.grpc_port], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=30)
        return rc.returncode, rc.stdout + rc.stderr

    def metrics(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port,
                                    timeout=5) as r:
            return r.read().decode()

    def create(self, session_id, offer, timeout_ms=0):
        request = _field(1, session_id) + _field(2, "gw-e2e") + _field(5, offer)
        if timeout_ms:
            request += _varint_field(6, timeout_ms)
        return _decode(self.call("CreateSession", request))[1][0].decode()

    def update(self, session_id, from_leg, text, is_answer):
        request = (_field(1, session_id) + _varint_field(2, from_leg) + _field(3, text)
                   + _varint_field(4, int(is_answer)))
        return _decode(self.call("UpdateSession", request))[1][0].decode()

    def delete(self, session_id):
        """{leg: (packets_in, packets_out)} of the final SessionStats."""
        stats = _decode(self.call("DeleteSession", _field(1, session_id)))
        out = {}
        for leg, number in (("a", 2), ("b", 3)):
            fields = _decode(stats.get(number, [b""])[0])
            out[leg] = (fields.get(1, [0])[0], fields.get(2, [0])[0])
        return out

    def stop(self):
        self.channel.close()
        return self.service.stop()

    def dump_logs(self, out=sys.stderr):
        print("\n===== media-transcoder log (%s) =====" % self.service.log_path, file=out)
        print(self.service.log_text()[-20000:], file=out)
        out.flush()


class MediaEndToEnd(harness.E2ETestCase):
    def setUp(self):
        self.media = MediaTranscoder()
        self.cluster = self.media  # E2ETestCase prints its log when a test fails
        self.peers = []

    def tearDown(self):
        for peer in self.peers:
            peer.close()
        code = self.media.stop()
        if code != 0:
            self.media.dump_logs()
        self.assertEqual(code, 0, "media-transcoder did not exit 0 on SIGTERM")

    def peer(self):
        p = Peer()
        self.peers.append(p)
        return p

    def test_call_relays_rtp_both_ways_and_frees_its_ports(self):
        a, b = self.peer(), self.peer()
        free_before = harness.metric_value(self.media.metrics(), "medius_media_port_pool_free")
        self.assertEqual(free_before, 50)
        offer_for_b = self.media.create("e2e-call", sdp(a.port))
        self.assertIn("c=IN IP4 127.0.0.1", offer_for_b)
        port_b = audio_port(offer_for_b)
        answer_for_a = self.media.update("e2e-call", LEG_B, sdp(b.port), True)
        port_a = audio_port(answer_for_a)
        for port in (port_a, port_b):
            self.assertTrue(self.media.port_min <= port <= self.media.port_max, port)
            self.assertEqual(port % 2, 0)

        for seq in range(1, 11):
            a.send(port_a, rtp(seq))
            data, source = b.receive()
            self.assertEqual(data, rtp(seq), "leg B got something else")
            self.assertEqual(source, port_b)
        dtmf = struct.pack("!BBHII", 0x80, 101, 11, 1760, 0x01020304) + b"\x05\x0a\x00\xa0"
        a.send(port_a, dtmf)
        self.assertEqual(b.receive()[0], dtmf)
        for seq in range(500, 505):
            b.send(port_b, rtp(seq, ssrc=0x0a0b0c0d))
            data, source = a.receive()
            self.assertEqual(data, rtp(seq, ssrc=0x0a0b0c0d))
            self.assertEqual(source, port_a)

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            text = self.media.metrics()
            if harness.metric_value(text, "medius_media_packets_total",
                                    {"direction": "a_to_b"}) == 11:
                break
            time.sleep(0.05)
        self.assertEqual(harness.metric_value(text, "medius_media_packets_total",
                                              {"direction": "a_to_b"}), 11)
        self.assertEqual(harness.metric_value(text, "medius_media_packets_total",
                                              {"direction": "b_to_a"}), 5)
        self.assertEqual(harness.metric_value(text, "medius_media_sessions_active"), 1)
        self.assertEqual(harness.metric_value(text, "medius_media_port_pool_free"), 48)

        stats = self.media.delete("e2e-call")
        self.assertEqual(stats["a"], (11, 5))
        self.assertEqual(stats["b"], (5, 11))
        text = self.media.metrics()
        self.assertEqual(harness.metric_value(text, "medius_media_port_pool_free"), 50)
        self.assertEqual(harness.metric_value(text, "medius_media_sessions_active"), 0)
        self.assertEqual(harness.metric_value(text, "medius_media_sessions_total",
                                              {"result": "ok"}), 1)

    def test_media_timeout_reaches_the_watch_stream(self):
        a = self.peer()
        events = []
        stream = self.media.channel.unary_stream(SERVICE + "WatchEvents")(_field(1, "gw-e2e"),
                                                                          timeout=20)

        def read_first():
            try:
                for message in stream:
                    events.append(_decode(message))
                    return
            except grpc.RpcError:
                pass

        reader = threading.Thread(target=read_first, daemon=True)
        reader.start()
        time.sleep(0.3)  # the stream is open before the session times out
        b = self.peer()
        self.media.create("e2e-quiet", sdp(a.port), timeout_ms=400)
        self.media.update("e2e-quiet", LEG_B, sdp(b.port), True)  # answered, then silence
        reader.join(10)
        stream.cancel()
        self.assertEqual(len(events), 1, "no event on WatchEvents")
        self.assertEqual(events[0][1][0], KIND_MEDIA_TIMEOUT)
        self.assertEqual(events[0][2][0].decode(), "e2e-quiet")
        self.assertEqual(harness.metric_value(self.media.metrics(), "medius_media_timeouts_total"), 1)
        self.media.delete("e2e-quiet")

    def test_bad_sdp_is_invalid_argument_naming_the_line(self):
        with self.assertRaises(grpc.RpcError) as caught:
            self.media.create("e2e-bad", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nm=audio x RTP/AVP 0\r\n")
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("line 4", caught.exception.details())

    def test_drain_refuses_new_sessions_and_reports_not_serving(self):
        a, b = self.peer(), self.peer()
        port_b = audio_port(self.media.create("e2e-old", sdp(a.port)))
        port_a = audio_port(self.media.update("e2e-old", LEG_B, sdp(b.port), True))
        remaining = _decode(self.media.call("Drain", b""))
        self.assertEqual(remaining.get(1, [0])[0], 1)
        code, out = self.media.health()
        self.assertNotEqual(code, 0, out)
        with self.assertRaises(grpc.RpcError) as caught:
            self.media.create("e2e-new", sdp(a.port))
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAVAILABLE)
        a.send(port_a, rtp(1))
        self.assertEqual(b.receive()[0], rtp(1), "the existing session stopped relaying")
        del port_b


class MediaBadConfig(unittest.TestCase):
    def test_bad_config_exits_2_with_one_line(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write('{"port_range": {"min": 30001, "max": 30001}}')
        self.addCleanup(os.unlink, f.name)
        rc = subprocess.run([os.path.join(harness.bin_dir(), "media-transcoder"), "--config", f.name],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)
        self.assertEqual(rc.returncode, 2, rc.stderr)
        self.assertEqual(rc.stderr.strip(), "config error: %s: $.port_range.max: the range "
                         "30001-30001 holds no even RTP port with its RTCP port (RTP + 1)" % f.name)


if __name__ == "__main__":
    harness.main()
