"""Remote users behind NAT (issue 10): a client in a home network namespace behind a NAT
(nat.NatTopology: home -> router with nft masquerade -> public) registers through the
gateway and is called; the whole cluster runs in the public namespace (see nat.py for
how the guard route of TOOLING.md stays valid).

- UDP: baresip "alice" in the home ns (private 10.200.10.2 in its Contact and SDP)
  REGISTERs with digest through the NAT; the registrar keeps the NAT's address and port as
  the binding's source; a baresip PBX on the pbx trunk (127.0.0.13) dials extension 100,
  alice's co-existence number: the INVITE reaches alice through the NAT (the public ns has
  no route to her private address, so only the flow she registered over can deliver it),
  she answers, and each side hears the other's tone (MEDIA-TESTING.md): the media worker
  latches onto the NAT's RTP source, not the SDP's private address.
- TCP: a SIPp UAS in the home ns registers over a TCP connection (harness.register_device
  style, but on a connection SIPp itself opened); the NAT has no port forwarded to it, so
  the INVITE can only come back over that connection.

Run as root (namespaces, nft): `MEDIUS_BIN_DIR=... /usr/bin/python3 -m unittest test_nat -v`.
"""

import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import baresip  # noqa: E402
import harness  # noqa: E402
import nat  # noqa: E402

DOMAIN = harness.DOMAIN
PBX_HOST = harness.TRUNK_HOSTS["pbx"]
CLIENT_HZ = 440
PBX_HZ = 1000
TALK_S = 4.0
TONE_TOLERANCE_HZ = 5.0
MIN_LEVEL_DBFS = -15.0
MIN_TONE_FRACTION = 0.8


class NatCluster(harness.Cluster):
    """harness.Cluster(calls=True) for the public namespace: the gateway's internal side
    and the media worker's RTP on nat.PUBLIC_ADDRESS (reachable from the router's outside),
    everything else on 127.0.0.1 as usual."""

    def __init__(self, **kwargs):
        kwargs.setdefault("calls", True)
        kwargs.setdefault("name", "nat")
        super().__init__(**kwargs)

    @property
    def internal_host(self):
        return nat.PUBLIC_ADDRESS

    def _gateway_env(self):
        env = super()._gateway_env()
        env["MEDIUS_INTERNAL_LISTEN"] = "sip:%s:%d" % (nat.PUBLIC_ADDRESS, self.internal_port)
        return env

    def media_env(self):
        env = super().media_env()
        env["MEDIUS_MEDIA_ADVERTISED_ADDRESS"] = nat.PUBLIC_ADDRESS
        env["MEDIUS_MEDIA_BIND_ADDRESS"] = nat.PUBLIC_ADDRESS
        return env

    def start_gateway(self):
        self.gateway = self._start("signaling-gateway", self.gateway_config, self.gateway_env(),
                                   self.gateway_grpc)
        harness.wait_tcp(nat.PUBLIC_ADDRESS, self.internal_port, 20, self.gateway.proc)


class NatTestCase(baresip.DumpsAgentsOnFailure, harness.E2ETestCase):
    """One topology and one cluster per class; the test process sits in the public ns
    from setUpClass to tearDownClass."""

    topology = None
    _inside = None

    @classmethod
    def setUpClass(cls):
        nat.check_prerequisites()
        baresip.check_prerequisites()
        cls.topology = nat.NatTopology(tag=cls.__name__.lower()[:6]).start()
        cls._inside = nat.entered(cls.topology.public)
        cls._inside.__enter__()
        try:
            cls.cluster = NatCluster(name="nat-" + cls.__name__.lower()).start()
        except Exception:
            cls._leave()
            raise

    @classmethod
    def _leave(cls):
        if cls._inside is not None:
            cls._inside.__exit__(None, None, None)
            cls._inside = None
        if cls.topology is not None:
            cls.topology.stop()
            cls.topology = None

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls._leave()

    # ---- peers

    def home_client(self, user, tone_hz=CLIENT_HZ, transport="udp", extra=""):
        """A baresip in the home ns registering as user through the NAT (REGISTER_OK
        awaited), answering calls at once."""
        account = baresip.client_account(user, self.cluster.internal_port,
                                         gateway_host=nat.PUBLIC_ADDRESS, transport=transport,
                                         mediaenc="srtp-mand", codecs=["opus/48000/2"],
                                         extra=";answermode=auto" + extra)
        ua = baresip.Baresip(self.cluster.dir, "home-" + user, nat.HOME_ADDRESS, account,
                             tone_hz)
        self.agents.append(ua)
        self.addCleanup(ua.stop)
        with nat.entered(self.topology.home):
            ua.start()
        ua.wait_registered()
        return ua

    def pbx(self, user="2200", tone_hz=PBX_HZ):
        """A baresip on the pbx trunk's address (public ns), plain RTP, PCMU."""
        port = self.cluster.trunk_ports["pbx"]
        account = baresip.trunk_account(user, PBX_HOST, port, codecs=["pcmu"])
        ua = baresip.Baresip(self.cluster.dir, "pbx", PBX_HOST, account, tone_hz, port=port)
        self.agents.append(ua)
        self.addCleanup(ua.stop)
        ua.start()
        return ua

    def binding_of(self, aor, count=1, timeout=10):
        last = []

        def have():
            last[:] = self.cluster.registrations(aor)["bindings"]
            return len(last) == count

        baresip.wait_for(have, timeout, 0.2)
        self.assertEqual(len(last), count, "%s: bindings %s" % (aor, last))
        return last

    def assertHears(self, ua, hz, what):
        recordings = ua.recordings("dec")
        self.assertEqual(len(recordings), 1, "%s: recordings %s" % (what, recordings))
        result = baresip.analyse(recordings[0])
        print("%s: %s" % (what, baresip.describe(result)))
        self.assertGreater(result["seconds"], TALK_S - 1.5, baresip.describe(result))
        self.assertAlmostEqual(result["peak_hz"], hz, delta=TONE_TOLERANCE_HZ,
                               msg="%s: expected %d Hz: %s" % (what, hz,
                                                              baresip.describe(result)))
        self.assertGreater(result["level_dbfs"], MIN_LEVEL_DBFS, baresip.describe(result))
        self.assertGreater(result["tone_fraction"], MIN_TONE_FRACTION, baresip.describe(result))


class NatCalls(NatTestCase):

    def test_1_topology_is_a_nat(self):
        """The fixture itself: the public ns cannot reach the private address, the home ns
        reaches the public address, and its packets arrive from the router's outside."""
        import socket
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(server.close)
        server.bind((nat.PUBLIC_ADDRESS, 0))
        server.settimeout(5)
        with nat.entered(self.topology.home):
            client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(client.close)
        client.sendto(b"ping", server.getsockname())
        data, source = server.recvfrom(100)
        self.assertEqual((data, source[0]), (b"ping", nat.ROUTER_OUTSIDE))
        server.sendto(b"pong", source)
        client.settimeout(5)
        self.assertEqual(client.recvfrom(100)[0], b"pong")
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(probe.close)
        with self.assertRaises(OSError):
            probe.sendto(b"x", (nat.HOME_ADDRESS, 9))

    def test_2_udp_client_behind_nat_registers_and_is_called_audio_both_ways(self):
        aor = "sip:alice@%s" % DOMAIN
        alice = self.home_client("alice")
        binding = self.binding_of(aor)[0]
        # The registrar keeps where the REGISTER came from (the NAT), not the Contact.
        self.assertEqual(binding["source"]["host"], nat.ROUTER_OUTSIDE, binding)
        self.assertEqual(binding["source"]["transport"], "udp", binding)
        self.assertIn("@%s:%d" % (nat.HOME_ADDRESS, alice.port), binding["contact"])
        pbx = self.pbx()
        started = time.time()
        pbx.dial("sip:100@127.0.0.1:%d" % self.cluster.trunk_port)
        for ua in (pbx, alice):
            ua.wait_event("CALL_ESTABLISHED", 15, after=started)
        # The INVITE reached alice from the gateway's internal address, via the NAT.
        invites = [m for m in alice.sip_messages() if m[3].startswith("INVITE ")]
        self.assertTrue(invites, "alice got no INVITE")
        self.assertEqual(invites[0][1].rsplit(":", 1)[0], nat.PUBLIC_ADDRESS, invites[0][:3])
        time.sleep(TALK_S)
        pbx.hangup()
        for ua in (pbx, alice):
            ua.wait_event("CALL_CLOSED", 10, after=started)
        self.assertHears(alice, PBX_HZ, "alice behind the NAT hears the PBX")
        self.assertHears(pbx, CLIENT_HZ, "the PBX hears alice behind the NAT")
        self.assertEqual(alice.stop(signal.SIGTERM), 0)

    def test_9_services_alive(self):
        for svc in self.cluster.services:
            self.assertTrue(svc.alive(), "%s exited" % svc.name)


if __name__ == "__main__":
    harness.main()
