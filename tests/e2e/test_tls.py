"""SIP over TLS on the gateway's internal side (issue 7 item 1), with independent clients:
`openssl s_client` and Python's ssl module (OpenSSL underneath, but not Sofia-SIP) for single
requests and handshakes, baresip for a REGISTER and calls (TlsBaresipCalls).

- TlsListener: OPTIONS through `openssl s_client` gets 200 over TLS; REGISTER with digest
  over TLS gets its binding with the TLS connection as its source; TLS 1.2 and 1.3 are
  served, TLS 1.0 and 1.1 are refused by the server (the client offers them with
  SECLEVEL=0, so the alert "protocol version" is the server's), and counted; a start with a
  key that does not match the certificate, or a missing file, stops with the file named.
- MutualTls (ca + require_client_cert + trusted_names): no client certificate, or one of
  another CA, gets no SIP answer at all (the connection is dropped) and is counted; a
  client certificate of the CA is served; one whose name is in trusted_names is a trusted
  peer (a MESSAGE needs no credentials: 501, not 407), one that is not gets 407.
- TlsReload: the certificate files are replaced (another serial and CN) while the gateway
  runs: a new connection gets the new certificate within the check interval, a connection
  made before goes on; bad new files (a key of another certificate) are refused, counted,
  and the last good certificate stays; SIGHUP reloads at once.
- TlsBaresipCalls: baresip registers over TLS (sip_cafile: it verifies the gateway), calls
  the PBX trunk over TLS, and receives a call from a trunk over its TLS connection (the
  gateway's INVITE goes back over the connection the REGISTER came on).

The certificates are deploy/certs/make-certs.sh's (harness.Cluster(tls=...)), plus a few
made here with the openssl CLI (another CA, a reloaded server certificate).
"""

import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import baresip  # noqa: E402
import harness  # noqa: E402
from harness import wait_until  # noqa: E402
from test_calls import CallTestCase  # noqa: E402

DOMAIN = harness.DOMAIN


def openssl(*args, **kwargs):
    return subprocess.run(["openssl"] + list(args), check=True, capture_output=True, text=True,
                          **kwargs)


def make_leaf(directory, name, cn, ca_pem, ca_key, days=30):
    """An EC key and certificate for cn (SAN DNS cn, localhost, IP 127.0.0.1) signed by the
    CA; returns (pem, key)."""
    key = os.path.join(directory, name + ".key")
    pem = os.path.join(directory, name + ".pem")
    csr = os.path.join(directory, name + ".csr")
    ext = os.path.join(directory, name + ".ext")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
    openssl("req", "-new", "-key", key, "-subj", "/CN=" + cn, "-out", csr)
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:%s,DNS:localhost,IP:127.0.0.1\n"
                "extendedKeyUsage=serverAuth,clientAuth\n" % cn)
    openssl("x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-days", str(days),
            "-set_serial", "0x" + secrets.token_hex(8), "-extfile", ext, "-out", pem)
    return pem, key


def make_ca(directory, name):
    key = os.path.join(directory, name + ".key")
    pem = os.path.join(directory, name + ".pem")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
    openssl("req", "-x509", "-new", "-key", key, "-subj", "/CN=" + name, "-days", "30",
            "-out", pem)
    return pem, key


def tls_client(port, cafile, cert=None, key=None, timeout=5.0):
    """A TLS connection to the gateway (its certificate verified against cafile for
    127.0.0.1), presenting cert/key when given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile)
    if cert:
        ctx.load_cert_chain(cert, key)
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    except Exception:
        raw.close()
        raise


def peer_serial(sock):
    der = sock.getpeercert(binary_form=True)
    text = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial", "-subject"],
                          input=der, capture_output=True, check=True).stdout.decode()
    return text


class TlsSip:
    """SIP requests over one TLS connection (Via SIP/2.0/TLS)."""

    def __init__(self, sock):
        self.sock = sock
        self.host, self.port = sock.getsockname()
        self.call_id = secrets.token_hex(8) + "@127.0.0.1"
        self.cseq = 0
        self.buffer = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def request(self, method, user="alice", uri=None, extra=(), contact=True, expires="600"):
        self.cseq += 1
        uri = uri or "sip:%s" % DOMAIN
        lines = ["%s %s SIP/2.0" % (method, uri),
                 "Via: SIP/2.0/TLS %s:%d;branch=z9hG4bK%s;rport" % (self.host, self.port,
                                                                   secrets.token_hex(8)),
                 "Max-Forwards: 70",
                 "From: <sip:%s@%s>;tag=%s" % (user, DOMAIN, secrets.token_hex(4)),
                 "To: <sip:%s@%s>" % (user if method == "REGISTER" else "bob", DOMAIN),
                 "Call-ID: %s" % self.call_id,
                 "CSeq: %d %s" % (self.cseq, method)]
        if contact:
            lines.append("Contact: <sip:%s@%s:%d;transport=tls>" % (user, self.host, self.port))
        if method == "REGISTER" and expires is not None:
            lines.append("Expires: %s" % expires)
        lines += list(extra)
        lines += ["User-Agent: medius-e2e-tls", "Content-Length: 0", "", ""]
        self.sock.sendall("\r\n".join(lines).encode())
        return self.final_response()

    def final_response(self, timeout=5.0):
        """The next final response on the connection; None when it closes or times out."""
        deadline = time.monotonic() + timeout
        while True:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
                length = int(m.group(1)) if m else 0
                if len(rest) >= length:
                    self.buffer = rest[length:]
                    response = harness.SipResponse((head + sep).decode(errors="replace"))
                    if response.status >= 200:
                        return response
                    continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65535)
            except (socket.timeout, ssl.SSLError, OSError):
                return None
            if not data:
                return None
            self.buffer += data

    def register(self, user, password):
        first = self.request("REGISTER", user=user)
        if first is None or first.status != 401:
            return first
        challenge = harness.parse_challenge(first.get("www-authenticate"))
        auth = harness.SipClient.authorization(None, user, password, challenge)
        return self.request("REGISTER", user=user, extra=["Authorization: " + auth])



class TlsCall:
    """alice's call to `uri` over a TlsSip connection: the INVITE, its 407, the INVITE with
    digest credentials; then ACK and BYE to the answer's Contact."""

    def __init__(self, sip, uri, contact):
        self.sip, self.uri, self.contact = sip, uri, contact
        self.from_tag = secrets.token_hex(4)

    def send(self, method, ruri, cseq, to_tag="", extra=(), body=""):
        sip = self.sip
        lines = ["%s %s SIP/2.0" % (method, ruri),
                 "Via: SIP/2.0/TLS %s:%d;branch=z9hG4bK%s;rport" % (
                     sip.host, sip.port, secrets.token_hex(8)),
                 "Max-Forwards: 70",
                 "From: <sip:alice@%s>;tag=%s" % (DOMAIN, self.from_tag),
                 "To: <%s>%s" % (self.uri, ";tag=" + to_tag if to_tag else ""),
                 "Call-ID: %s" % sip.call_id, "CSeq: %d %s" % (cseq, method),
                 "Contact: " + self.contact]
        lines += list(extra)
        if body:
            lines.append("Content-Type: application/sdp")
        lines += ["Content-Length: %d" % len(body), "", body]
        sip.sock.sendall("\r\n".join(lines).encode())
        return None if method == "ACK" else sip.final_response(timeout=10)

    def invite(self, sdp):
        """(the first answer, the answer with credentials: None unless the first was 407)."""
        first = self.send("INVITE", self.uri, 1, body=sdp)
        if first is None or first.status != 407:
            return first, None
        self.send("ACK", self.uri, 1, to_tag=to_tag_of(first))
        challenge = harness.parse_challenge(first.get("proxy-authenticate"))
        auth = harness.SipClient.authorization(None, "alice", harness.user_password("alice"),
                                               challenge, method="INVITE", uri=self.uri)
        return first, self.send("INVITE", self.uri, 2,
                                extra=["Proxy-Authorization: " + auth], body=sdp)

    def hang_up(self, ok):
        """ACK of the 200 `ok`, then BYE; the BYE's answer."""
        target = ok.get("contact").strip("<>")
        self.send("ACK", target, 2, to_tag=to_tag_of(ok))
        return self.send("BYE", target, 3, to_tag=to_tag_of(ok))


def to_tag_of(response):
    return re.search(r"tag=([^;>\s]+)", response.get("to")).group(1)

def s_client(port, request, *args, timeout=10):
    """`openssl s_client` sending request (bytes) and printing what came back."""
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-ign_eof",
            "-verify_return_error"] + list(args)
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    # s_client writes stdin once connected and exits at EOF on the connection (-ign_eof
    # keeps it reading after stdin's end); the gateway keeps a TLS connection open, so
    # stop it once the answer is in.
    proc.stdin.write(request)
    proc.stdin.flush()
    output = b""
    deadline = time.monotonic() + timeout
    os.set_blocking(proc.stdout.fileno(), False)
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            chunk = proc.stdout.read()
        except BlockingIOError:
            chunk = None
        if chunk:
            output += chunk
            if re.search(rb"SIP/2.0 [2-6]\d\d .*\r\n(.*\r\n)*?\r\n", output):
                break
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    try:
        output += proc.stdout.read() or b""
    except (BlockingIOError, ValueError):
        pass
    proc.stdin.close()
    proc.stdout.close()
    return output.decode(errors="replace")


def options_text(port):
    return ("OPTIONS sip:%s SIP/2.0\r\n"
            "Via: SIP/2.0/TLS 127.0.0.1:%d;branch=z9hG4bK%s;rport\r\n"
            "Max-Forwards: 70\r\n"
            "From: <sip:probe@%s>;tag=%s\r\n"
            "To: <sip:%s>\r\n"
            "Call-ID: %s@127.0.0.1\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
            % (DOMAIN, port, secrets.token_hex(8), DOMAIN, secrets.token_hex(4), DOMAIN,
               secrets.token_hex(8))).encode()


class TlsCase(harness.E2ETestCase):
    tls = {}

    @classmethod
    def setUpClass(cls):
        cls.cluster = harness.Cluster(name=cls.__name__.lower(), tls=dict(cls.tls)).start()

    def ca(self):
        return os.path.join(self.cluster.certs_dir, "ca.pem")

    def handshakes(self, result):
        return harness.metric_value(self.cluster.metrics("gateway"),
                                    "medius_gateway_tls_handshakes_total", {"result": result})

    def wait_handshakes(self, result, at_least):
        wait_until(lambda: self.handshakes(result) >= at_least, 5,
                   "tls_handshakes_total{result=%s} >= %s" % (result, at_least))


class TlsListener(TlsCase):
    def test_options_through_openssl_s_client(self):
        out = s_client(self.cluster.tls_port, options_text(self.cluster.tls_port),
                       "-CAfile", self.ca(), "-verify_hostname", "localhost")
        self.assertIn("Verify return code: 0 (ok)", out)
        self.assertRegex(out, r"SIP/2.0 200 OK")
        self.assertRegex(out, r"(?m)^Via: SIP/2.0/TLS ")
        self.assertRegex(out, r"(?mi)^Allow: .*REGISTER")

    def test_register_over_tls_binds_the_connection(self):
        sip = TlsSip(tls_client(self.cluster.tls_port, self.ca()))
        self.addCleanup(sip.close)
        self.assertEqual(sip.sock.version(), "TLSv1.3")
        response = sip.register("user010", harness.user_password("user010"))
        self.assertIsNotNone(response)
        self.assertEqual(response.status, 200, response.raw)
        bindings = self.cluster.registrations("sip:user010@%s" % DOMAIN)["bindings"]
        self.assertEqual(len(bindings), 1, bindings)
        self.assertEqual(bindings[0]["source"], {"host": "127.0.0.1", "port": sip.port,
                                                 "transport": "tls"})
        self.assertEqual(bindings[0]["contact"],
                         "sip:user010@127.0.0.1:%d;transport=tls" % sip.port)
        # A wrong password over TLS is still a wrong password.
        other = TlsSip(tls_client(self.cluster.tls_port, self.ca()))
        self.addCleanup(other.close)
        self.assertEqual(other.register("user011", "wrong").status, 401)

    def test_tls_1_2_is_served(self):
        out = s_client(self.cluster.tls_port, options_text(self.cluster.tls_port),
                       "-CAfile", self.ca(), "-tls1_2")
        self.assertIn("Protocol  : TLSv1.2", out)
        self.assertRegex(out, r"SIP/2.0 200 OK")
        # The cipher is one of the configured list (ECDHE with AES-GCM for this EC key).
        self.assertRegex(out, r"Cipher is ECDHE-ECDSA-AES(128|256)-GCM-SHA(256|384)")

    def test_tls_1_0_and_1_1_are_refused_by_the_server(self):
        before = self.handshakes("protocol_version")
        for version in ("-tls1", "-tls1_1"):
            # SECLEVEL=0 makes this OpenSSL 3 client offer the old version at all.
            out = s_client(self.cluster.tls_port, options_text(self.cluster.tls_port),
                           "-CAfile", self.ca(), version, "-cipher", "DEFAULT@SECLEVEL=0")
            self.assertIn("alert protocol version", out, out)
            self.assertNotIn("SIP/2.0", out)
        self.wait_handshakes("protocol_version", before + 2)

    def test_a_client_that_does_not_trust_the_gateway_is_counted(self):
        directory = os.path.join(self.cluster.dir, "other-ca-1")
        os.makedirs(directory, exist_ok=True)
        other_ca, _ = make_ca(directory, "other-ca")
        before = self.handshakes("peer_alert")
        # The handshake through memory BIOs, so that the client's alert goes out and the
        # connection stays open until the gateway has read it: Sofia handles a hang-up
        # before reading, so an alert that arrives with the FIN is never seen (metrics.md).
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(other_ca)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
        raw = socket.create_connection(("127.0.0.1", self.cluster.tls_port), timeout=5)
        self.addCleanup(raw.close)
        refused = False
        for _ in range(20):
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                raw.sendall(outgoing.read())
                data = raw.recv(65536)
                if not data:
                    break
                incoming.write(data)
            except ssl.SSLCertVerificationError:
                raw.sendall(outgoing.read())  # the alert "unknown CA"
                refused = True
                break
        self.assertTrue(refused, "the client accepted a certificate of another CA")
        self.wait_handshakes("peer_alert", before + 1)

    def test_bad_certificate_files_stop_the_start(self):
        certs = self.cluster.certs_dir
        directory = os.path.join(self.cluster.dir, "bad-start")
        os.makedirs(directory, exist_ok=True)
        cases = [
            # the client's key with the gateway's certificate
            ({"cert": os.path.join(certs, "gateway.pem"), "key": os.path.join(certs, "client.key")},
             "internal.tls.key", "client.key: the private key does not match the certificate"),
            ({"cert": os.path.join(directory, "missing.pem"),
              "key": os.path.join(certs, "gateway.key")},
             "internal.tls.cert", "missing.pem: cannot read: No such file or directory"),
        ]
        for overrides, path, message in cases:
            config = harness.gateway_config(harness.free_port(), harness.free_port(),
                                            harness.free_port(), harness.free_port(),
                                            harness.free_port())
            config["internal"]["tls"] = dict({"listen": "sips:127.0.0.1:%d" % harness.free_port()},
                                             **overrides)
            name = os.path.join(directory, "gateway-%d.json" % len(os.listdir(directory)))
            with open(name, "w") as f:
                import json
                json.dump(config, f)
            result = subprocess.run([os.path.join(harness.bin_dir(), "signaling-gateway"),
                                     "--config", name], capture_output=True, text=True,
                                    timeout=20, env=dict(os.environ, MEDIUS_INTERNAL_TLS_LISTEN=""))
            self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
            text = result.stdout + result.stderr
            self.assertIn(path, text)
            self.assertIn(message, text)


class MutualTls(TlsCase):
    tls = {"ca": "{certs}/ca.pem", "require_client_cert": True,
           "trusted_names": ["client.example.com"]}

    def client_certs(self):
        return (os.path.join(self.cluster.certs_dir, "client.pem"),
                os.path.join(self.cluster.certs_dir, "client.key"))

    def assertRefused(self, sock):
        """The connection gives no SIP answer: dropped (TLS 1.3 completes the handshake
        on the client before the server checks the certificate)."""
        sip = TlsSip(sock)
        self.addCleanup(sip.close)
        try:
            response = sip.request("OPTIONS")
        except (ssl.SSLError, OSError):
            response = None
        self.assertIsNone(response, response.raw if response else "")

    def test_no_client_certificate_is_refused(self):
        before = self.handshakes("no_certificate")
        self.assertRefused(tls_client(self.cluster.tls_port, self.ca()))
        self.wait_handshakes("no_certificate", before + 1)

    def test_a_certificate_of_another_ca_is_refused(self):
        directory = os.path.join(self.cluster.dir, "other-ca-2")
        os.makedirs(directory, exist_ok=True)
        ca_pem, ca_key = make_ca(directory, "other-ca")
        pem, key = make_leaf(directory, "intruder", "client.example.com", ca_pem, ca_key)
        before = self.handshakes("bad_certificate")
        try:
            sock = tls_client(self.cluster.tls_port, self.ca(), pem, key)
        except (ssl.SSLError, OSError):
            sock = None
        if sock is not None:
            self.assertRefused(sock)
        self.wait_handshakes("bad_certificate", before + 1)

    def test_a_trusted_peer_needs_no_credentials(self):
        pem, key = self.client_certs()
        sip = TlsSip(tls_client(self.cluster.tls_port, self.ca(), pem, key))
        self.addCleanup(sip.close)
        self.assertEqual(sip.request("OPTIONS").status, 200)
        before = harness.metric_value(self.cluster.metrics("gateway"),
                                      "medius_gateway_trusted_peer_requests_total")
        # A MESSAGE is challenged (407) from anyone else; the trusted peer's reaches the
        # request handling, which does not implement MESSAGE (501).
        response = sip.request("MESSAGE", user="pool", contact=False)
        self.assertEqual(response.status, 501, response.raw)
        self.assertEqual(harness.metric_value(self.cluster.metrics("gateway"),
                                              "medius_gateway_trusted_peer_requests_total"),
                         before + 1)

    def test_a_verified_peer_not_in_trusted_names_is_challenged(self):
        # The gateway's own certificate (same CA, name gateway.example.com) as a client's.
        certs = self.cluster.certs_dir
        sip = TlsSip(tls_client(self.cluster.tls_port, self.ca(),
                                os.path.join(certs, "gateway.pem"),
                                os.path.join(certs, "gateway.key")))
        self.addCleanup(sip.close)
        response = sip.request("MESSAGE", user="pool", contact=False)
        self.assertEqual(response.status, 407, response.raw)


class TlsReload(TlsCase):
    tls = {"reload_interval_s": 1}

    def test_1_new_certificate_without_restart(self):
        certs = self.cluster.certs_dir
        old = tls_client(self.cluster.tls_port, self.ca())
        old_sip = TlsSip(old)
        self.addCleanup(old_sip.close)
        before = peer_serial(old)
        self.assertIn("gateway.example.com", before)
        self.assertEqual(old_sip.request("OPTIONS").status, 200)
        pem, key = make_leaf(os.path.join(self.cluster.dir), "renewed", "renewed.example.com",
                             os.path.join(certs, "ca.pem"), os.path.join(certs, "ca.key"))
        # Replaced as a deployment tool would: new files renamed over the old ones.
        os.replace(key, os.path.join(certs, "gateway.key"))
        os.replace(pem, os.path.join(certs, "gateway.pem"))

        def renewed():
            sock = tls_client(self.cluster.tls_port, self.ca())
            try:
                return "renewed.example.com" in peer_serial(sock)
            finally:
                sock.close()
        wait_until(renewed, 5, "a new connection gets the renewed certificate")
        self.assertEqual(harness.metric_value(self.cluster.metrics("gateway"),
                                              "medius_gateway_tls_reloads_total",
                                              {"result": "ok"}), 1)
        # The connection made before goes on, on its old certificate.
        self.assertEqual(old_sip.request("OPTIONS").status, 200)
        self.assertEqual(peer_serial(old), before)

    def test_2_bad_new_files_keep_the_last_good_certificate(self):
        certs = self.cluster.certs_dir
        with open(os.path.join(certs, "client.key")) as f:
            wrong_key = f.read()
        with open(os.path.join(certs, "gateway.key"), "w") as f:
            f.write(wrong_key)
        wait_until(lambda: harness.metric_value(self.cluster.metrics("gateway"),
                                                "medius_gateway_tls_reloads_total",
                                                {"result": "error"}) >= 1, 5,
                   "the bad key counted as a failed reload")
        sock = tls_client(self.cluster.tls_port, self.ca())
        self.addCleanup(sock.close)
        self.assertIn("renewed.example.com", peer_serial(sock))
        self.assertIn("the private key does not match the certificate",
                      self.cluster.gateway.log_text())

    def test_3_sighup_reloads_at_once(self):
        certs = self.cluster.certs_dir
        pem, key = make_leaf(os.path.join(self.cluster.dir), "hup", "hup.example.com",
                             os.path.join(certs, "ca.pem"), os.path.join(certs, "ca.key"))
        os.replace(key, os.path.join(certs, "gateway.key"))
        os.replace(pem, os.path.join(certs, "gateway.pem"))
        os.kill(self.cluster.gateway.pid, signal.SIGHUP)

        def reloaded():
            sock = tls_client(self.cluster.tls_port, self.ca())
            try:
                return "hup.example.com" in peer_serial(sock)
            finally:
                sock.close()
        wait_until(reloaded, 5, "the certificate after SIGHUP")


class TlsBaresipCalls(baresip.DumpsAgentsOnFailure, CallTestCase):
    """baresip over TLS: REGISTER, a call out, a call in (the whole call path)."""

    cluster_options = {"tls": {}}

    @classmethod
    def setUpClass(cls):
        baresip.check_prerequisites()
        super().setUpClass()

    def tls_client(self, user, host, answer=False):
        account = ('<sip:%s@%s>;auth_pass=%s;outbound="sip:127.0.0.1:%d;transport=tls";regint=600'
                   % (user, DOMAIN, harness.user_password(user), self.cluster.tls_port))
        if answer:
            account += ";answermode=auto"
        ua = TlsBaresip(self.cluster.dir, "tls-" + user, host, account, 440,
                        cafile=os.path.join(self.cluster.certs_dir, "ca.pem"))
        self.agents.append(ua)
        self.addCleanup(ua.stop)
        ua.start()
        ua.wait_registered()
        return ua

    def test_register_and_call_out_over_tls(self):
        ua = self.tls_client("alice", "127.0.0.21")
        binding = self.cluster.registrations("sip:alice@%s" % DOMAIN)["bindings"][0]
        self.assertEqual(binding["source"]["transport"], "tls", binding)
        self.assertRegex(ua.log(), r"alice@example.com: \{0/TLS/v4\} 200 OK")
        # The call: alice -> 2200 (the pbx trunk, an idle SIPp that answers).
        started = time.time()
        ua.dial("sip:2200@%s" % DOMAIN)
        ua.wait_event("CALL_ESTABLISHED", 15, after=started)
        time.sleep(1.0)
        ua.hangup()
        ua.wait_event("CALL_CLOSED", 10, after=started)
        trace = ua.log()
        # Every SIP message of the call went over TLS, both ways.
        # baresip connects from 127.0.0.1 (its TLS client socket is not bound to its host).
        self.assertRegex(trace, r"(?m)^TLS 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:%d$" % self.cluster.tls_port)
        self.assertNotRegex(trace, r"(?m)^(UDP|TCP) 127\.0\.0\.1:%d" % self.cluster.internal_port)
        invite_200 = [t for _, _, _, t in ua.sip_messages()
                      if t.startswith("SIP/2.0 200") and re.search(r"(?m)^CSeq: \d+ INVITE", t)]
        self.assertTrue(invite_200, "no 200 to the INVITE")
        self.assertRegex(invite_200[0], r"(?mi)^Contact: <sip:medius@127\.0\.0\.1:%d;transport=tls>"
                         % self.cluster.tls_port)

    def test_a_sips_call_gets_a_sips_contact(self):
        """baresip 1.0 cannot dial a sips: URI (it makes it sip:sips:...): a Python TLS
        client INVITEs sips:2200@example.com as alice (digest), ACKs the 200, sends BYE."""
        sock = tls_client(self.cluster.tls_port, os.path.join(self.cluster.certs_dir, "ca.pem"))
        sip = TlsSip(sock)
        self.addCleanup(sip.close)
        sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               "m=audio 7990 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
               "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n")
        call = TlsCall(sip, "sips:2200@%s" % DOMAIN, "<sips:alice@%s:%d>" % (sip.host, sip.port))
        first, ok = call.invite(sdp)
        self.assertEqual(first.status, 407, first.raw)
        self.assertEqual(ok.status, 200, ok.raw)
        # RFC 3261 12.1.1: a dialog started with a SIPS Request-URI gets a SIPS Contact.
        self.assertEqual(ok.get("contact"), "<sips:medius@127.0.0.1:%d>" % self.cluster.tls_port)
        bye = call.hang_up(ok)
        self.assertEqual(bye.status, 200, bye.raw)

    def test_a_call_in_reaches_the_client_over_its_tls_connection(self):
        ua = self.tls_client("bob", "127.0.0.22", answer=True)
        uac = self.caller("uac_call.xml", "4255550101", caller="2065550199",
                                 trunk="pstn-primary", duration_ms=2000)
        result = uac.wait()
        self.assertEqual(result.returncode, 0, result.describe())
        # The INVITE came over bob's own TLS connection (from the gateway's TLS port to the
        # connection's 127.0.0.1 end), to the Contact bob registered.
        gateway = "127.0.0.1:%d" % self.cluster.tls_port
        invites = [(transport, dst, text) for transport, src, dst, text in ua.sip_messages()
                   if src == gateway and text.startswith("INVITE ")]
        self.assertTrue(invites, "bob got no INVITE over TLS: %s" % [
            (t, src, dst, text.split("\n", 1)[0]) for t, src, dst, text in ua.sip_messages()])
        transport, dst, invite = invites[0]
        self.assertEqual(transport, "TLS")
        self.assertRegex(invite, r"^INVITE sip:bob-[^@]+@127\.0\.0\.22:\d+;transport=tls SIP/2.0")
        self.assertRegex(invite, r"(?mi)^Contact: <sip:medius@127\.0\.0\.1:%d;transport=tls>"
                         % self.cluster.tls_port)
        binding = self.cluster.registrations("sip:bob@%s" % DOMAIN)["bindings"][0]
        self.assertEqual(dst, "127.0.0.1:%d" % binding["source"]["port"])
        # bob answered over the same connection.
        self.assertTrue([t for transport, src, d, t in ua.sip_messages()
                         if d == gateway and t.startswith("SIP/2.0 200 ")
                         and re.search(r"(?m)^CSeq: \d+ INVITE", t)], "bob sent no 200")


class TlsTrunkPeer:
    """A trunk reached over TLS: a TLS server on the trunk's address (its certificate
    `cert`, asking for the gateway's, verified against `client_ca`) that answers OPTIONS
    with 200 and an INVITE with 100 and 200 (an SDP), ACK with nothing and BYE with 200.
    Records what it saw: the SNI names, the client certificates' subjects, the requests."""

    def __init__(self, host, port, cert, key, client_ca):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.load_verify_locations(client_ca)
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.sni, self.subjects, self.requests, self.failed_handshakes = [], [], [], 0
        self.ctx.sni_callback = lambda sock, name, ctx: self.sni.append(name) and None
        self.listener = socket.create_server((host, port))
        self.listener.settimeout(0.2)
        self.host = host
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping = True
        self.thread.join(10)
        self.listener.close()

    def methods(self):
        return [r.split(" ", 1)[0] for r in self.requests]

    def _serve(self):
        workers = []
        while not self.stopping:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                continue
            worker = threading.Thread(target=self._connection, args=(raw,), daemon=True)
            worker.start()
            workers.append(worker)
        for worker in workers:
            worker.join(5)

    def _connection(self, raw):
        raw.settimeout(1.0)
        try:
            conn = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            self.failed_handshakes += 1
            raw.close()
            return
        cert = conn.getpeercert()
        self.subjects.append(dict(x[0] for x in cert.get("subject", ())).get("commonName"))
        buffer = b""
        with conn:
            while not self.stopping:
                try:
                    data = conn.recv(65535)
                except socket.timeout:
                    continue
                except (ssl.SSLError, OSError):
                    return
                if not data:
                    return
                buffer += data
                while True:
                    head, sep, rest = buffer.partition(b"\r\n\r\n")
                    if not sep:
                        break
                    m = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
                    length = int(m.group(1)) if m else 0
                    if len(rest) < length:
                        break
                    buffer = rest[length:]
                    self._answer(conn, head.decode(errors="replace"))

    def _answer(self, conn, head):
        self.requests.append(head)
        lines = head.split("\r\n")
        method = lines[0].split(" ", 1)[0]
        if method == "ACK" or lines[0].startswith("SIP/2.0"):
            return
        keep = [l for l in lines[1:] if re.match(r"(?i)(via|from|call-id|cseq|v|f|i)\s*:", l)]
        to = next((l for l in lines[1:] if re.match(r"(?i)(to|t)\s*:", l)), "To: <sip:x>")
        if ";tag=" not in to:
            to += ";tag=" + secrets.token_hex(4)

        def send(status, extra=(), body=""):
            out = [status] + keep + [to] + list(extra)
            if body:
                out.append("Content-Type: application/sdp")
            out += ["Content-Length: %d" % len(body), "", body]
            conn.sendall("\r\n".join(out).encode())

        if method == "INVITE":
            send("SIP/2.0 100 Trying")
            sdp = ("v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"
                   "m=audio 7992 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
                   % (self.host, self.host))
            send("SIP/2.0 200 OK", ["Contact: <sips:pbx@%s:%d>" % self.listener.getsockname()],
                 sdp)
        else:
            send("SIP/2.0 200 OK")


class TrunkTls(harness.E2ETestCase):
    """The PBX trunk over TLS (routing.json transport "tls", tls_name pbx.example.net; the
    gateway's trunk.tls with the trunks' own CA): a Python TLS server is the PBX, the
    caller is alice over the internal side's TLS."""

    @classmethod
    def setUpClass(cls):
        cls.trunk_ca_dir = tempfile.mkdtemp(prefix="medius-e2e-trunk-ca-")
        cls.trunk_ca, cls.trunk_ca_key = make_ca(cls.trunk_ca_dir, "carriers-ca")
        cls.cluster = harness.Cluster(
            name="trunktls", calls=True, tls={}, trunk_tls={"ca": cls.trunk_ca},
            trunk_overrides={"pbx": {"transport": "tls", "tls_name": "pbx.example.net",
                                     "failover_timeout_ms": 2000}})
        try:
            cls.cluster.start()
            host, port = cls.cluster.trunk_address("pbx").split(":")
            cls.pbx_host, cls.pbx_port = host, int(port)
            pem, key = make_leaf(cls.trunk_ca_dir, "pbx", "pbx.example.net", cls.trunk_ca,
                                 cls.trunk_ca_key)
            cls.pbx_cert = (pem, key)
            cls.pbx = TlsTrunkPeer(host, int(port), pem, key,
                                   os.path.join(cls.cluster.certs_dir, "ca.pem"))
        except Exception:
            cls.cluster.dump_logs()
            cls.cluster.cleanup()
            cls.cluster = None
            raise

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "pbx", None):
            cls.pbx.stop()
        super().tearDownClass()
        shutil.rmtree(cls.trunk_ca_dir, ignore_errors=True)

    def trunk_client(self, cert, key, source):
        """A TLS connection from `source` to the gateway's trunk-side TLS port."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(os.path.join(self.cluster.certs_dir, "ca.pem"))
        ctx.load_cert_chain(cert, key)
        raw = socket.create_connection(("127.0.0.1", self.cluster.trunk_tls_port), timeout=5,
                                       source_address=(source, 0))
        try:
            return ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        except Exception:
            raw.close()
            raise

    def test_1_the_pbx_is_probed_and_called_over_tls(self):
        wait_until(lambda: "OPTIONS" in self.pbx.methods(), 10, "an OPTIONS probe over TLS")
        wait_until(lambda: harness.metric_value(self.cluster.metrics("routing"),
                                                "medius_routing_trunk_up", {"trunk": "pbx"}) == 1.0,
                   10, "pbx up in routing")
        # Every connection the gateway made named the PBX (SNI) and showed the gateway's
        # own certificate.
        self.assertEqual(set(self.pbx.sni), {"pbx.example.net"})
        self.assertEqual(set(self.pbx.subjects), {"gateway.example.com"})
        sock = tls_client(self.cluster.tls_port, os.path.join(self.cluster.certs_dir, "ca.pem"))
        sip = TlsSip(sock)
        self.addCleanup(sip.close)
        sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               "m=audio 7994 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")
        call = TlsCall(sip, "sip:2200@%s" % DOMAIN,
                       "<sip:alice@%s:%d;transport=tls>" % (sip.host, sip.port))
        first, ok = call.invite(sdp)
        self.assertEqual(first.status, 407, first.raw)
        self.assertEqual(ok.status, 200, ok.raw)
        invites = [r for r in self.pbx.requests if r.startswith("INVITE ")]
        self.assertEqual(len(invites), 1, self.pbx.requests)
        self.assertTrue(invites[0].startswith("INVITE sips:"), invites[0])
        self.assertRegex(invites[0], r"(?im)^Via: SIP/2.0/TLS ")
        bye = call.hang_up(ok)
        self.assertEqual(bye.status, 200, bye.raw)
        wait_until(lambda: "BYE" in self.pbx.methods(), 5, "the BYE at the PBX, over TLS")

    def test_2_the_pbx_calling_in_must_show_its_name(self):
        pem, key = self.pbx_cert
        sip = TlsSip(self.trunk_client(pem, key, self.pbx_host))
        self.addCleanup(sip.close)
        self.assertEqual(sip.request("OPTIONS", user="pbx", contact=False).status, 200)
        # Another name from the same CA: the handshake is refused (TLS 1.3 completes on the
        # client first, so the refusal shows as no SIP answer).
        other_pem, other_key = make_leaf(self.trunk_ca_dir, "other", "other.example.net",
                                         self.trunk_ca, self.trunk_ca_key)
        before = harness.metric_value(self.cluster.metrics("gateway"),
                                      "medius_gateway_tls_handshakes_total",
                                      {"result": "bad_certificate"})
        try:
            other = TlsSip(self.trunk_client(other_pem, other_key, self.pbx_host))
            self.addCleanup(other.close)
            response = other.request("OPTIONS", user="pbx", contact=False)
        except (ssl.SSLError, OSError):
            response = None
        self.assertIsNone(response, response.raw if response else "")
        wait_until(lambda: harness.metric_value(self.cluster.metrics("gateway"),
                                                "medius_gateway_tls_handshakes_total",
                                                {"result": "bad_certificate"}) >= before + 1,
                   5, "the refused handshake counted")
        # The PBX's address over UDP: not the PBX (it is its certificate).
        client = harness.SipClient(self.cluster.trunk_port, local=(self.pbx_host, 0))
        self.addCleanup(client.close)
        response = client.request("OPTIONS", user="pbx", contact=False, expires=None)
        self.assertEqual(response.status, 403, response.raw)
        self.assertEqual(response.reason, "Trunk Requires TLS")
        self.assertEqual(harness.metric_value(self.cluster.metrics("gateway"),
                                              "medius_gateway_requests_refused_total",
                                              {"reason": "trunk_tls"}), 1)


class TlsBaresip(baresip.Baresip):
    """baresip that verifies the gateway's certificate (sip_cafile)."""

    def __init__(self, workdir, name, host, account, tone_hz, cafile):
        super().__init__(workdir, name, host, account, tone_hz)
        self.cafile = cafile

    def write_config(self):
        super().write_config()
        with open(os.path.join(self.dir, "config"), "a") as f:
            f.write("sip_cafile %s\n" % self.cafile)


if __name__ == "__main__":
    harness.main()
