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
from test_media_ice import StunServer  # noqa: E402

DOMAIN = harness.DOMAIN
PBX_HOST = harness.TRUNK_HOSTS["pbx"]
CLIENT_HZ = 440
PBX_HZ = 1000
LAN_HZ = 660
TALK_S = baresip.TALK_S


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


class NatReplica(harness.GatewayReplica):
    """A second gateway in the public ns, its internal side on nat.PUBLIC_ADDRESS too."""

    def env(self):
        env = super().env()
        env["MEDIUS_INTERNAL_LISTEN"] = "sip:%s:%d" % (nat.PUBLIC_ADDRESS, self.internal_port)
        return env

    def start(self):
        self.runs += 1
        log = os.path.join(self.cluster.dir, "signaling-gateway-%s.%d.log"
                           % (self.gateway_id, self.runs))
        self.service = harness.Service(
            "signaling-gateway-%s" % self.gateway_id,
            [os.path.join(harness.bin_dir(), "signaling-gateway"), "--config",
             self.cluster.gateway_config], self.env(), log)
        harness.wait_tcp("127.0.0.1", self.grpc, 30, self.service.proc)
        harness.wait_tcp(nat.PUBLIC_ADDRESS, self.internal_port, 20, self.service.proc)
        return self


class NatTestCase(baresip.DumpsAgentsOnFailure, baresip.HearsTones, harness.E2ETestCase):
    """One topology and one cluster per class; the test process sits in the public ns
    from setUpClass to tearDownClass."""

    topology = None
    _inside = None
    gateway_extra = None

    @classmethod
    def setUpClass(cls):
        nat.check_prerequisites()
        baresip.check_prerequisites()
        cls.topology = nat.NatTopology(tag=cls.__name__.lower()[:6]).start()
        cls._inside = nat.entered(cls.topology.public)
        cls._inside.__enter__()
        try:
            # The clients are baresips with SRTP (mediaenc=srtp-mand): the gateway's own
            # default internal_srtp "required" (the harness lowers it for SIPp callers).
            extra = {"media": {"internal_srtp": "required"}}
            extra.update(cls.gateway_extra or {})
            cls.cluster = NatCluster(name="nat-" + cls.__name__.lower(),
                                     gateway_extra=extra).start()
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

    def home_client(self, user, tone_hz=CLIENT_HZ, transport="udp", extra="", modules=()):
        """A baresip in the home ns registering as user through the NAT (REGISTER_OK
        awaited), answering calls at once."""
        account = baresip.client_account(user, self.cluster.internal_port,
                                         gateway_host=nat.PUBLIC_ADDRESS, transport=transport,
                                         mediaenc="srtp-mand", codecs=["opus/48000/2"],
                                         extra=";answermode=auto" + extra)
        ua = baresip.Baresip(self.cluster.dir, "home-" + user, nat.HOME_ADDRESS, account,
                             tone_hz, extra_modules=modules)
        self.agents.append(ua)
        self.addCleanup(ua.stop)
        with nat.entered(self.topology.home):
            ua.start()
        ua.wait_registered()
        return ua

    def lan_client(self, user, host, tone_hz):
        """A baresip on the gateway's own network (public ns, a loopback host): its Contact
        is its source, no NAT."""
        account = baresip.client_account(user, self.cluster.internal_port,
                                         gateway_host=nat.PUBLIC_ADDRESS,
                                         mediaenc="srtp-mand", codecs=["opus/48000/2"],
                                         extra=";answermode=auto")
        ua = baresip.Baresip(self.cluster.dir, "lan-" + user, host, account, tone_hz)
        self.agents.append(ua)
        self.addCleanup(ua.stop)
        ua.start()
        ua.wait_registered()
        return ua

    def flow_state(self, aor, host):
        """The flow of aor's binding registered from `host` ({} when there is none)."""
        for b in self.cluster.registrations(aor)["bindings"]:
            if b["source"]["host"] == host:
                return b["flow"]
        return {}

    def gateway_metric(self, name, labels):
        return harness.metric_value(self.cluster.metrics("gateway"), name, labels) or 0.0

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

    def test_3_tcp_client_behind_nat_is_called_over_its_own_connection(self):
        """Over TCP the NAT forwards no port to the client: the INVITE can only come back
        over the connection its REGISTER came over (and does: same ports in the trace)."""
        aor = "sip:bob@%s" % DOMAIN
        bob = self.home_client("bob", transport="tcp")
        binding = self.binding_of(aor)[0]
        self.assertEqual(binding["source"]["host"], nat.ROUTER_OUTSIDE, binding)
        self.assertEqual(binding["source"]["transport"], "tcp", binding)
        registers = [m for m in bob.sip_messages() if m[3].startswith("REGISTER ")]
        self.assertTrue(registers)
        self.assertEqual(registers[-1][0], "TCP")
        connection = registers[-1][1]   # bob's side of the connection (home ns address)
        pbx = self.pbx()
        started = time.time()
        pbx.dial("sip:101@127.0.0.1:%d" % self.cluster.trunk_port)   # bob's extension
        for ua in (pbx, bob):
            ua.wait_event("CALL_ESTABLISHED", 15, after=started)
        invites = [m for m in bob.sip_messages() if m[3].startswith("INVITE ")]
        self.assertTrue(invites, "bob got no INVITE")
        self.assertEqual(invites[0][0], "TCP", invites[0][:3])
        self.assertEqual(invites[0][2], connection,
                         "the INVITE came over another connection: %s" % (invites[0][:3],))
        time.sleep(TALK_S)
        pbx.hangup()
        for ua in (pbx, bob):
            ua.wait_event("CALL_CLOSED", 10, after=started)
        self.assertHears(bob, PBX_HZ, "bob behind the NAT (TCP) hears the PBX")
        self.assertHears(pbx, CLIENT_HZ, "the PBX hears bob behind the NAT (TCP)")
        self.assertEqual(bob.stop(signal.SIGTERM), 0)

    def test_4_ice_client_behind_nat_calls_out_audio_both_ways(self):
        """alice behind the NAT does ICE (baresip's ice module, full agent, controlling;
        a STUN server on the public side gives it its server-reflexive candidate) and calls
        the PBX (extension 2200, outbound): the worker's ICE-lite answers her checks, which
        arrive from the NAT's outside address; the nominated pair is that address (not the
        private one in her SDP), and audio flows both ways through it."""
        stun = StunServer(nat.PUBLIC_ADDRESS)
        self.addCleanup(stun.stop)
        alice = self.home_client(
            "alice", extra=";medianat=ice;stunserver=stun:%s:%d" % (nat.PUBLIC_ADDRESS, stun.port),
            modules=("ice.so",))
        pbx = self.pbx()
        nominated_before = len(re.findall(r"leg A ICE nominated", self.cluster.media.log_text()))
        started = time.time()
        alice.dial("sip:2200@%s" % DOMAIN)
        for ua in (alice, pbx):
            ua.wait_event("CALL_ESTABLISHED", 15, after=started)
        time.sleep(1.0)
        sessions = self.cluster.sessions().get("sessions", [])
        time.sleep(TALK_S - 1.0)
        alice.hangup()
        for ua in (alice, pbx):
            ua.wait_event("CALL_CLOSED", 10, after=started)
        # alice offered ICE with her private address; our answer carries ICE-lite.
        offer = baresip.sdp_body([t for _, _, _, t in alice.sip_messages()
                                  if t.startswith("INVITE ")][0])
        self.assertIn("a=ice-ufrag:", offer)
        self.assertIn(nat.HOME_ADDRESS, offer)
        answer = baresip.sdp_body(alice.received_responses(200, "INVITE")[0])
        self.assertRegex(answer, r"(?m)^a=ice-lite\s*$")
        self.assertRegex(alice.log(), r"ice: \S+: connectivity check is complete",
                         "baresip's ICE did not complete")
        self.assertGreater(stun.requests, 0, "baresip never asked the STUN server")
        # The nomination: from the NAT's outside address, which leg A now sends to.
        nominated = re.findall(r"leg A ICE nominated ([\d.]+):(\d+) for RTP",
                               self.cluster.media.log_text())[nominated_before:]
        self.assertTrue(nominated, "no nomination in the media worker's log")
        self.assertEqual(nominated[-1][0], nat.ROUTER_OUTSIDE, nominated)
        self.assertEqual(len(sessions), 1, sessions)
        remote = sessions[0]["leg_a"]["remote"]
        print("nominated %s; leg A remote %s" % (nominated, remote))
        self.assertEqual((remote["host"], int(remote["port"])),
                         (nominated[-1][0], int(nominated[-1][1])), sessions[0])
        self.assertHears(alice, PBX_HZ, "alice (ICE) behind the NAT hears the PBX")
        self.assertHears(pbx, CLIENT_HZ, "the PBX hears alice (ICE) behind the NAT")
        self.assertEqual(alice.stop(signal.SIGTERM), 0)

    def test_9_services_alive(self):
        for svc in self.cluster.services:
            self.assertTrue(svc.alive(), "%s exited" % svc.name)


class NatFlows(NatTestCase):
    """Flows (issue 10): short timers (OPTIONS ping after 0.5 s of silence, dead after 2.5 s)
    so that a client whose keepalives stop is noticed within seconds."""

    gateway_extra = {"flows": {"ping_interval_ms": 500, "udp_timeout_ms": 2500}}

    def test_1_dead_nat_flow_is_unreachable_and_calls_reach_only_the_other_device(self):
        aor = "sip:alice@%s" % DOMAIN
        home = self.home_client("alice")
        lan = self.lan_client("alice", "127.0.0.22", LAN_HZ)
        self.binding_of(aor, 2)
        flow = self.flow_state(aor, nat.ROUTER_OUTSIDE)
        self.assertTrue(flow["nat"], flow)
        self.assertEqual(flow["state"], "active", flow)
        self.assertFalse(self.flow_state(aor, "127.0.0.22")["nat"])
        # Alive: the gateway's pings are answered through the NAT, for longer than the
        # timeout.
        time.sleep(4)
        self.assertEqual(self.flow_state(aor, nat.ROUTER_OUTSIDE)["state"], "active")
        self.assertGreaterEqual(self.gateway_metric("medius_gateway_flow_keepalives_total",
                                                    {"kind": "ping_answered"}), 2)
        self.assertEqual(self.gateway_metric("medius_gateway_flows", {"state": "active"}), 1)

        # Its keepalives stop: the client dies without un-REGISTERing.
        self.assertEqual(home.stop(signal.SIGKILL), -signal.SIGKILL)
        dead = baresip.wait_for(lambda: self.flow_state(aor, nat.ROUTER_OUTSIDE).get("state")
                                == "unreachable", 10, 0.2)
        self.assertTrue(dead, "the dead flow was never marked unreachable: %s"
                        % self.flow_state(aor, nat.ROUTER_OUTSIDE))
        flow = self.flow_state(aor, nat.ROUTER_OUTSIDE)
        self.assertEqual(flow["reason"], "keepalive timeout", flow)
        self.assertEqual(self.gateway_metric("medius_gateway_flow_failures_total",
                                             {"reason": "keepalive_timeout"}), 1)
        self.assertEqual(self.gateway_metric("medius_gateway_flows", {"state": "unreachable"}), 1)
        table = self.cluster.medctl("flows", aor, "--registrar",
                                    "127.0.0.1:%d" % self.cluster.registrar_grpc).stdout
        self.assertRegex(table, r"%s:\d+/udp\s+gw-e2e\s+yes\s+no\s+unreachable\s+\d+\s+"
                         r"keepalive timeout" % re.escape(nat.ROUTER_OUTSIDE), table)
        # The gateway's own live view: the flow, its AOR, how long it has been silent.
        live = self.cluster.medctl("flows", "--gateway", self.cluster.gateway_address).stdout
        m = re.search(r"%s:\d+/udp\s+sip:alice@example\.com\s+yes\s+no\s+unreachable\s+"
                      r"(\d+)\s+keepalive timeout" % re.escape(nat.ROUTER_OUTSIDE), live)
        self.assertIsNotNone(m, live)
        self.assertGreaterEqual(int(m.group(1)), 2, live)   # silent for udp_timeout at least

        # A call to alice forks only to the device that is still there.
        cdr_before = len(self.cluster.cdr_records())
        pbx = self.pbx()
        started = time.time()
        pbx.dial("sip:100@127.0.0.1:%d" % self.cluster.trunk_port)
        for ua in (pbx, lan):
            ua.wait_event("CALL_ESTABLISHED", 10, after=started)
        time.sleep(1.0)
        pbx.hangup()
        for ua in (pbx, lan):
            ua.wait_event("CALL_CLOSED", 10, after=started)
        records = baresip.wait_for(lambda: self.cluster.cdr_records()[cdr_before:], 5)
        self.assertEqual(len(records), 1, records)
        targets = [f["target"] for f in records[0]["forks"]]
        self.assertEqual(len(targets), 1, records[0])
        self.assertIn("127.0.0.22", targets[0], records[0])

    def test_2_closed_tcp_connection_marks_its_binding_unreachable(self):
        aor = "sip:bob@%s" % DOMAIN
        bob = self.home_client("bob", transport="tcp")
        self.binding_of(aor, 1)
        self.assertEqual(self.flow_state(aor, nat.ROUTER_OUTSIDE)["state"], "active")
        before = self.gateway_metric("medius_gateway_flow_failures_total",
                                     {"reason": "connection_closed"})
        self.assertEqual(bob.stop(signal.SIGKILL), -signal.SIGKILL)   # the kernel closes it
        dead = baresip.wait_for(lambda: self.flow_state(aor, nat.ROUTER_OUTSIDE).get("state")
                                == "unreachable", 10, 0.2)
        self.assertTrue(dead, self.flow_state(aor, nat.ROUTER_OUTSIDE))
        self.assertEqual(self.flow_state(aor, nat.ROUTER_OUTSIDE)["reason"], "connection closed")
        self.assertEqual(self.gateway_metric("medius_gateway_flow_failures_total",
                                             {"reason": "connection_closed"}), before + 1)

    def test_3_crlf_keepalive_ping_gets_a_pong(self):
        """RFC 5626 4.4.1 over TCP, from behind the NAT."""
        import socket
        with nat.entered(self.topology.home):
            conn = socket.create_connection((nat.PUBLIC_ADDRESS, self.cluster.internal_port),
                                            timeout=5)
        self.addCleanup(conn.close)
        conn.sendall(b"\r\n\r\n")
        self.assertEqual(conn.recv(16), b"\r\n")

    def test_4_stun_binding_request_on_the_sip_port_gets_the_mapped_address(self):
        """RFC 5626 4.4.2 over UDP, from behind the NAT: a STUN Binding request on the
        gateway's SIP port is answered with the NAT's address (what the client needs to
        notice a changed mapping)."""
        import socket
        import struct
        with nat.entered(self.topology.home):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.settimeout(5)
        txid = os.urandom(12)
        sock.sendto(struct.pack("!HHI", 0x0001, 0, 0x2112A442) + txid,
                    (nat.PUBLIC_ADDRESS, self.cluster.internal_port))
        data, _ = sock.recvfrom(2048)
        kind, length, cookie = struct.unpack("!HHI", data[:8])
        self.assertEqual(kind, 0x0101, "not a Binding success response: %r" % data)
        self.assertEqual(data[8:20], txid)
        mapped = None
        offset = 20
        while offset + 4 <= 20 + length:
            atype, alen = struct.unpack("!HH", data[offset:offset + 4])
            value = data[offset + 4:offset + 4 + alen]
            if atype == 0x0020:   # XOR-MAPPED-ADDRESS
                port = struct.unpack("!H", value[2:4])[0] ^ 0x2112
                ip = bytes(b ^ c for b, c in zip(value[4:8], struct.pack("!I", 0x2112A442)))
                mapped = (socket.inet_ntoa(ip), port)
            elif atype == 0x0001 and mapped is None:   # MAPPED-ADDRESS
                mapped = (socket.inet_ntoa(value[4:8]), struct.unpack("!H", value[2:4])[0])
            offset += 4 + ((alen + 3) & ~3)
        self.assertIsNotNone(mapped, "no (XOR-)MAPPED-ADDRESS in %r" % data)
        self.assertEqual(mapped[0], nat.ROUTER_OUTSIDE)

    def test_5_a_second_gateway_skips_a_nat_binding_whose_flow_is_on_the_first(self):
        """docs/registrar.md "Several gateways": without a Path, only the gateway that holds
        a NAT'd client's flow can reach it; another one skips that fork (503, logged)
        instead of sending into the NAT."""
        aor = "sip:alice@%s" % DOMAIN
        alice = self.home_client("alice")
        ours = [b for b in self.cluster.registrations(aor)["bindings"]
                if b["flow"]["state"] == "active"]
        self.assertEqual(len(ours), 1, ours)
        self.assertEqual(ours[0]["gateway_id"], "gw-e2e")
        self.assertTrue(ours[0]["flow"]["nat"])
        gw_b = NatReplica(self.cluster, "gw-b")
        self.addCleanup(gw_b.stop)
        gw_b.start()
        pbx = self.pbx()
        started = time.time()
        pbx.dial("sip:100@127.0.0.1:%d" % gw_b.trunk_port)
        pbx.wait_event("CALL_CLOSED", 10, after=started)
        self.assertFalse([m for m in alice.sip_messages() if m[3].startswith("INVITE ")],
                         "alice got an INVITE through gateway b")
        self.assertRegex(gw_b.log_text(), r"is behind a NAT whose flow is on gateway gw-e2e "
                                          r"\(no Path\): not reachable from here")
        # Through the gateway that holds the flow, the same call reaches her.
        started = time.time()
        pbx.dial("sip:100@127.0.0.1:%d" % self.cluster.trunk_port)
        for ua in (pbx, alice):
            ua.wait_event("CALL_ESTABLISHED", 10, after=started)
        pbx.hangup()
        for ua in (pbx, alice):
            ua.wait_event("CALL_CLOSED", 10, after=started)

    def test_6_rfc5626_outbound_client_gets_require_outbound_and_flow_timer(self):
        """baresip with ;sipnat=outbound and uuid.so (+sip.instance, reg-id, Supported:
        outbound) behind the NAT: the 200 says Require: outbound and Flow-Timer, and the
        binding's flow is outbound and NAT'd."""
        import uuid as uuidlib
        from test_baresip import RegisteringBaresip
        aor = "sip:user021@%s" % DOMAIN
        account = baresip.client_account("user021", self.cluster.internal_port,
                                         gateway_host=nat.PUBLIC_ADDRESS,
                                         extra=";sipnat=outbound")
        ua = RegisteringBaresip(self.cluster.dir, "outbound", account,
                                modules=("uuid.so", "account.so"), uuid=str(uuidlib.uuid4()),
                                host=nat.HOME_ADDRESS)
        self.agents.append(ua)
        self.addCleanup(ua.stop)
        with nat.entered(self.topology.home):
            ua.start()
        self.binding_of(aor, 1)
        flow = self.flow_state(aor, nat.ROUTER_OUTSIDE)
        self.assertTrue(flow["outbound"], flow)
        self.assertTrue(flow["nat"], flow)
        self.assertEqual(flow["flow_timer_s"], 120, flow)
        traced = [m.group(4).replace("\r\n", "\n") for m in baresip.TRACE.finditer(ua.raw_log())]
        oks = [t for t in traced if t.startswith("SIP/2.0 200") and "REGISTER" in t]
        self.assertTrue(oks, "no 200 to the REGISTER in the trace")
        self.assertRegex(oks[-1], r"(?mi)^Require: outbound$")
        self.assertRegex(oks[-1], r"(?mi)^Flow-Timer: 120$")
        self.assertEqual(ua.stop(signal.SIGTERM), 0)

    def test_7_through_the_load_balancer_both_gateways_reach_a_client_behind_nat(self):
        """docs/registrar.md "Several gateways", 1: the client registers through Kamailio
        (deploy/kamailio/kamailio.cfg), which adds a Path with its received address; a call
        through either gateway reaches it through Kamailio's flow, and the requests in the
        dialog (ACK, BYE) reach it too (Contact alias)."""
        aor = "sip:alice@%s" % DOMAIN
        gw_b = NatReplica(self.cluster, "gw-b")
        self.addCleanup(gw_b.stop)
        gw_b.start()
        lb = harness.Kamailio(self.cluster.dir, [
            "sip:%s:%d" % (nat.PUBLIC_ADDRESS, self.cluster.internal_port),
            "sip:%s:%d" % (nat.PUBLIC_ADDRESS, gw_b.internal_port)], host=nat.PUBLIC_ADDRESS)
        self.addCleanup(lb.stop)
        account = baresip.client_account("alice", lb.port, gateway_host=nat.PUBLIC_ADDRESS,
                                         mediaenc="srtp-mand", codecs=["opus/48000/2"],
                                         extra=";answermode=auto")
        alice = baresip.Baresip(self.cluster.dir, "home-lb-alice", nat.HOME_ADDRESS, account,
                                CLIENT_HZ)
        self.agents.append(alice)
        self.addCleanup(alice.stop)
        with nat.entered(self.topology.home):
            alice.start()
        alice.wait_registered()
        bound = [b for b in self.cluster.registrations(aor)["bindings"]
                 if b["flow"]["state"] == "active" and b["path"]]
        self.assertEqual(len(bound), 1, self.cluster.registrations(aor))
        self.assertIn("received=", bound[0]["path"][0])
        self.assertFalse(bound[0]["flow"]["nat"])   # the edge proxy holds the flow
        pbx = self.pbx()
        for trunk_port in (self.cluster.trunk_port, gw_b.trunk_port):
            started = time.time()
            pbx.dial("sip:100@127.0.0.1:%d" % trunk_port)
            for ua in (pbx, alice):
                ua.wait_event("CALL_ESTABLISHED", 10, after=started)
            time.sleep(1.0)
            pbx.hangup()
            for ua in (pbx, alice):
                ua.wait_event("CALL_CLOSED", 10, after=started)
        self.assertEqual(lb.stop(), 0)

    def test_9_services_alive(self):
        for svc in self.cluster.services:
            self.assertTrue(svc.alive(), "%s exited" % svc.name)


if __name__ == "__main__":
    harness.main()
