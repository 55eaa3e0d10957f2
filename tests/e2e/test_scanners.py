"""SIP scanners and password guessing (issue 7 item 4, docs/security.md) end to end: the whole
cluster (harness.Cluster(calls=True)) with failed-authentication limits small enough to reach
in a test, attacked with SIPVicious from Debian (svmap, svwar, svcrack) and raw requests, each
attacker on its own 127.0.0.x address.

- svmap (User-Agent friendly-scanner) finds nothing: the gateway does not answer it.
- svwar (with its User-Agent changed, as a careful attacker does) cannot tell configured
  users from unknown ones over REGISTER, INVITE or OPTIONS: it reports no extension.
- An unknown user and a known one with a wrong password get the same answer (status,
  reason and headers apart from nonces and tags) for REGISTER, INVITE, OPTIONS, SUBSCRIBE
  and MESSAGE.
- svcrack finds a password at the head of its list (the tool works against us), but with
  a wrong list its source is banned after max_failures_per_source failures, and with the
  right password at the end of a long list it is banned long before reaching it.
- Failures for one user from several sources lock that user: credentials for it get 403
  without being checked, except from an address it authenticated from before.
- After all that, a normal call from another address completes.
"""

import os
import re
import secrets
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_calls import CallTestCase  # noqa: E402

DOMAIN = harness.DOMAIN
SOURCE_FAILURES = 5
USER_FAILURES = 8
# Debian's sipvicious installs its package here (its scripts find it through the
# egg-info); the wrapper below imports it from there to change the User-Agent.
SIPVICIOUS_DIR = os.environ.get("SIPVICIOUS_DIR", "/usr/share/sipvicious")
# Runs one SIPVicious tool (argv: host, User-Agent or "", the tool's name and arguments).
# Two changes: another User-Agent than friendly-scanner when one is given (the tools have no
# option for it: makeRequest's default is replaced before the tool imports it), and the
# binding address: svwar and svcrack 0.3.3 parse -b but never pass it on (they would send
# from 127.0.0.1 whatever the test says), so their classes get it as a default here.
WRAPPER = """
import importlib, inspect, sys
sys.path.insert(0, %r)
host, user_agent, name = sys.argv[1:4]
from sipvicious.libs import svhelper
original = svhelper.makeRequest
def makeRequest(*args, **kwargs):
    if user_agent:
        kwargs.setdefault("useragent", user_agent)
    return original(*args, **kwargs)
svhelper.makeRequest = makeRequest
tool = importlib.import_module("sipvicious." + name)
for cls in list(vars(tool).values()):
    if inspect.isclass(cls) and cls.__module__ == tool.__name__ and \\
            "bindingip" in inspect.signature(cls.__init__).parameters:
        def bound(init):
            def __init__(self, *args, **kwargs):
                kwargs["bindingip"] = host
                init(self, *args, **kwargs)
            return __init__
        cls.__init__ = bound(cls.__init__)
sys.argv = sys.argv[3:]
sys.exit(tool.main())
"""


def sipvicious_available():
    return shutil.which("svmap") is not None and os.path.isdir(
        os.path.join(SIPVICIOUS_DIR, "sipvicious"))


class Scanners(CallTestCase):
    cluster_options = {"gateway_extra": {"security": {"auth": {
        "max_failures_per_source": SOURCE_FAILURES, "source_window_s": 120,
        "source_ban_s": 120, "max_failures_per_user": USER_FAILURES, "user_window_s": 300,
        "user_lock_s": 120}}}}

    def setUp(self):
        if not sipvicious_available():
            self.fail("sipvicious is missing (./medius deps installs it)")

    # ---- helpers

    def metric(self, name, labels=None):
        return harness.metric_value(self.cluster.metrics("gateway"), name, labels) or 0.0

    def client(self, host):
        c = harness.SipClient(self.cluster.internal_port, local=(host, 0))
        self.addCleanup(c.close)
        return c

    def sipvicious(self, tool, host, *args, user_agent=None, timeout=120):
        """Runs svmap/svwar/svcrack from host against the internal port; (stdout, stderr).
        user_agent: replace friendly-scanner."""
        port = harness.free_port(host)
        argv = ["-b", host, "-x", host, "-P", str(port)] + list(args)
        if tool == "svmap":  # no udp://host:port form
            argv += ["-p", str(self.cluster.internal_port), "127.0.0.1"]
        else:
            argv.append("udp://127.0.0.1:%d" % self.cluster.internal_port)
        argv = ["/usr/bin/python3", "-c", WRAPPER % SIPVICIOUS_DIR, host, user_agent or "",
                tool] + argv
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, cwd=self.cluster.dir,
                              env=dict(os.environ, HOME=self.cluster.dir))
        out, err = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
        with open(os.path.join(self.cluster.dir, "%s-%s-%d.log" % (tool, host, time.monotonic_ns())),
                  "w") as f:
            f.write("argv: %s\nrc: %d\n--- stdout\n%s\n--- stderr\n%s\n" % (argv, done.returncode,
                                                                           out, err))
        return out, err

    def wordlist(self, words):
        path = os.path.join(self.cluster.dir, "words-%d.txt" % time.monotonic_ns())
        with open(path, "w") as f:
            f.write("\n".join(words) + "\n")
        return path

    def register(self, client, user, password):
        """REGISTER without credentials, then with user/password; the second answer (or the
        first when it was not a 401)."""
        first = client.request("REGISTER", user=user)
        if first is None or first.status != 401:
            return first
        return client.request("REGISTER", user=user, authorization=client.authorization(
            user, password, harness.md5_challenge(first)))

    def assertBanned(self, host):
        self.assertIsNone(self.client(host).request("OPTIONS", contact=False, expires=None),
                          "%s is still answered" % host)

    # ---- svmap

    def test_svmap_finds_nothing(self):
        dropped = self.metric("medius_gateway_flood_dropped_total", {"reason": "scanner"})
        out, err = self.sipvicious("svmap", "127.0.0.81", "-t", "0.05")
        self.assertNotIn("Medius", out + err)
        self.assertIn("found nothing", err)
        self.assertGreater(self.metric("medius_gateway_flood_dropped_total",
                                       {"reason": "scanner"}), dropped)

    # ---- svwar

    def test_svwar_cannot_tell_users_from_strangers(self):
        users = ["alice", "bob", "user000", "user001", "user050"]
        strangers = ["admin", "100", "1000", "test", "guest", "carol", "user999", "sip"]
        words = self.wordlist(strangers[:4] + users + strangers[4:])
        for i, method in enumerate(["REGISTER", "INVITE", "OPTIONS"]):
            host = "127.0.0.%d" % (82 + i)
            out, err = self.sipvicious("svwar", host, "-v", "-d", words, "-m", method, "--force",
                                       "-t", "0.05", "--maximumtime", "3",
                                       user_agent="Zoiper rv2.10.20.3")
            # It got answers (it is not simply ignored), but no extension stood out.
            self.assertIn("Ok SIP device found", err, "%s: %s" % (method, err))
            self.assertIn("found nothing", err, "%s:\n%s\n%s" % (method, out, err))
            for user in users:
                self.assertNotIn(user, out, "%s: svwar told %s apart" % (method, user))
        # Its default User-Agent gets no answer at all.
        out, err = self.sipvicious("svwar", "127.0.0.85", "-v", "-d", words, "--maximumtime", "2")
        self.assertNotIn("Ok SIP device found", err)
        self.assertIn("found nothing", err)

    # ---- no enumeration through the answers

    @staticmethod
    def shape(response, user):
        """What an answer tells apart: status, reason, header names and values, with the
        user's name, nonces, tags, branches, Call-IDs and CSeq numbers blanked."""
        def blank(value):
            value = value.replace(user, "USER")
            value = re.sub(r'(nonce|cnonce)="[^"]*"', r'\1=""', value)
            value = re.sub(r"(tag|branch)=[^;,>\s]+", r"\1=", value)
            return re.sub(r"^\d+ ", "N ", value)
        return (response.status, response.reason,
                [(name, "" if name == "call-id" else blank(value))
                 for name, value in response.headers])

    def answers(self, client, method, user, password):
        """Without credentials, then with user/password (Authorization for REGISTER,
        Proxy-Authorization otherwise); the two answers' shapes."""
        if method == "REGISTER":
            first = client.request("REGISTER", user=user)
            second = client.request("REGISTER", user=user, authorization=client.authorization(
                user, password, harness.md5_challenge(first)))
            return [self.shape(first, user), self.shape(second, user)]
        shapes = []

        def build(cseq, branch, extra):
            lines = ["%s sip:2200@%s SIP/2.0" % (method, DOMAIN),
                     "Via: SIP/2.0/UDP %s:%d;branch=%s;rport" % (client.host, client.port, branch),
                     "Max-Forwards: 70",
                     "From: <sip:%s@%s>;tag=%s" % (user, DOMAIN, secrets.token_hex(4)),
                     "To: <sip:2200@%s>" % DOMAIN,
                     "Call-ID: %s" % secrets.token_hex(8),
                     "CSeq: %d %s" % (cseq, method),
                     "Contact: <sip:%s@%s:%d>" % (user, client.host, client.port)]
            if method == "SUBSCRIBE":
                lines.append("Event: presence")
            lines += extra + ["User-Agent: medius-e2e-python", "Content-Length: 0", "", ""]
            return "\r\n".join(lines)
        text = build(1, "z9hG4bK" + secrets.token_hex(8), [])
        first = client.send_raw(text)
        self.assertIsNotNone(first, method)
        shapes.append(self.shape(first, user))
        if first.status != 407:
            return shapes
        if method == "INVITE":
            client.sock.sendto(harness.ack_for(text, first).encode(), client.target)
        uri = text.split(" ", 2)[1]
        auth = harness.proxy_authorization(user, password, first, method, uri)
        text = build(2, "z9hG4bK" + secrets.token_hex(8), ["Proxy-Authorization: " + auth])
        second = client.send_raw(text)
        self.assertIsNotNone(second, method)
        if method == "INVITE" and second.status >= 300:
            client.sock.sendto(harness.ack_for(text, second).encode(), client.target)
        shapes.append(self.shape(second, user))
        return shapes

    def test_unknown_users_and_wrong_passwords_get_the_same_answers(self):
        for i, method in enumerate(["REGISTER", "INVITE", "OPTIONS", "SUBSCRIBE", "MESSAGE"]):
            # One address per method: two failures each, under the per-source limit.
            client = self.client("127.0.0.%d" % (100 + i))
            known = self.answers(client, method, "user010", "not-the-password")
            unknown = self.answers(client, method, "nosuchuser", "not-the-password")
            self.assertEqual(known, unknown, method)
            if method == "OPTIONS":
                self.assertEqual(known[0][0], 200)
            else:
                self.assertEqual([s[0] for s in known],
                                 [401, 401] if method == "REGISTER" else [407, 407], known)

    # ---- svcrack

    def crack(self, host, user, words):
        return self.sipvicious("svcrack", host, "-u", user, "-d", self.wordlist(words),
                               "--domain", DOMAIN, "-t", "0.05", "--maximumtime", "3",
                               user_agent="Linphone/3.6.1 (belle-sip/1.3.0)")

    def test_svcrack_finds_a_password_at_the_head_of_its_list(self):
        # The control: against us the tool works, so the tests below mean something.
        out, err = self.crack("127.0.0.90", "user002", [harness.user_password("user002"),
                                                        "1234", "password"])
        self.assertIn(harness.user_password("user002"), out, err)

    def test_svcrack_is_banned_and_finds_nothing(self):
        host = "127.0.0.91"
        bans = self.metric("medius_gateway_auth_bans_total", {"scope": "source"})
        out, err = self.crack(host, "bob", ["1234", "password", "bob", "123456", "qwerty",
                                            "letmein", "admin", "secret", "0000", "1111"])
        self.assertNotIn(harness.user_password("bob"), out)
        self.assertIn("found nothing", err)
        self.assertIn("since we last received a response", err)  # silence: the ban
        self.assertEqual(self.metric("medius_gateway_auth_bans_total", {"scope": "source"}),
                         bans + 1)
        self.assertBanned(host)

    def test_svcrack_is_banned_long_before_the_right_password(self):
        host = "127.0.0.92"
        user = "user003"
        words = ["guess%04d" % i for i in range(300)] + [harness.user_password(user)]
        started = time.monotonic()
        out, err = self.crack(host, user, words)
        self.assertNotIn(harness.user_password(user), out)
        self.assertIn("found nothing", err)
        self.assertLess(time.monotonic() - started, 60)
        self.assertBanned(host)
        # The registrar checked SOURCE_FAILURES guesses, not 300: the ban came first.
        rejected = harness.metric_value(self.cluster.metrics("registrar"),
                                        "medius_registrar_auth_failures_total",
                                        {"reason": "bad_response"}) or 0.0
        self.assertLess(rejected, 100)

    # ---- per-user lock

    def test_a_user_under_attack_is_locked_except_for_its_known_address(self):
        user, password = "user004", harness.user_password("user004")
        phone = self.client("127.0.0.110")
        self.assertEqual(self.register(phone, user, password).status, 200)
        locks = self.metric("medius_gateway_auth_bans_total", {"scope": "user"})
        refused = self.metric("medius_gateway_requests_refused_total", {"reason": "user_locked"})
        # A guesser spread over four addresses, two guesses each: no source reaches its
        # limit, the user does.
        for i in range(USER_FAILURES // 2):
            guesser = self.client("127.0.0.%d" % (111 + i))
            for attempt in range(2):
                response = self.register(guesser, user, "guess-%d-%d" % (i, attempt))
                self.assertEqual(response.status, 401, response.raw)
        self.assertEqual(self.metric("medius_gateway_auth_bans_total", {"scope": "user"}),
                         locks + 1)
        # Even the right password from a new address is refused, unchecked.
        newcomer = self.client("127.0.0.120")
        response = self.register(newcomer, user, password)
        self.assertEqual((response.status, response.reason),
                         (403, "Too Many Failed Authentications"), response.raw)
        self.assertEqual(self.metric("medius_gateway_requests_refused_total",
                                     {"reason": "user_locked"}), refused + 1)
        # Calls too: an INVITE with the user's right credentials from a new address.
        shapes = self.answers(self.client("127.0.0.121"), "INVITE", user, password)
        self.assertEqual([s[:2] for s in shapes],
                         [(407, "Proxy Authentication Required"),
                          (403, "Too Many Failed Authentications")])
        # The phone that registered before still can.
        self.assertEqual(self.register(phone, user, password).status, 200)
        # Other users are not affected.
        self.assertEqual(self.register(self.client("127.0.0.122"), "user005",
                                       harness.user_password("user005")).status, 200)

    # ---- and everyone else

    def test_zz_a_normal_call_completes_after_the_scans(self):
        # Named to run last in this class: after the bans and the lock above.
        pbx = self.far("pbx", "uas_answer.xml")
        uac = self.caller("uac_call.xml", "2200", host="127.0.0.21", duration_ms=1000)
        self.assertSippOk(uac.wait(), "a normal call after the scanners")
        self.finish_uas(pbx, what="the PBX")


if __name__ == "__main__":
    harness.main()
