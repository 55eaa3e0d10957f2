"""baresip 1.0.0 (Debian `baresip-core`) as a media peer for end-to-end tests, and tone
analysis of its recordings.

Baresip: one headless baresip process with its own config dir, written before the first
start (an empty dir makes baresip write a template that listens on 0.0.0.0):
- SIP on host:port, a loopback "host" of its own (127.0.0.21 for a client, a trunk's
  address for a trunk); `net_interface HOST` makes it bind there and put HOST into its
  Contact and SDP (a name such as "lo" fails: "could not get IPv4 address");
- RTP in a window of 100 ports below harness.free_port's range and the media worker's.
  baresip 1.0 binds its RTP sockets to the wildcard address, not to net_interface: the SDP
  says HOST, but RTP sent to 127.0.0.1 leaves from 127.0.0.1 (the media worker latches that
  source; seen as the leg's remote in `medctl sessions`), and two instances must not share
  a window;
- a 48 kHz stereo sine of its own frequency as the source (ausine never ends; an aufile WAV
  that ends makes baresip hang up), the played audio thrown away (ALSA's null PCM), and
  sndfile recording what it sends (dump-...-enc.wav) and what it receives (dump-...-dec.wav)
  at the codec's rate;
- ctrl_tcp on 127.0.0.1 (netstrings carrying JSON): commands (dial, sndcode, hangup) and
  the events it pushes (REGISTER_OK, CALL_ESTABLISHED, CALL_DTMF_START, CALL_CLOSED, ...);
- `-s`: the SIP trace goes to its log; sip_messages() parses it;
- stdin /dev/null (stdio.so is not loaded), `-t LIFETIME` as a last resort; stopped by its
  PID only (SIGTERM: a registered instance un-REGISTERs first and exits 0).

Accounts (one line each, see client_account/trunk_account):
- a client registering through the gateway's internal side:
  `<sip:alice@example.com>;auth_pass=...;outbound="sip:127.0.0.1:GW";regint=600` plus
  `;mediaenc=srtp-mand;audio_codecs=opus/48000/2`. It REGISTERs (and INVITEs) via the
  outbound proxy and answers the gateway's digest challenges (MD5 only);
- a trunk (a UAS on the trunk's address): `<sip:USER@HOST:PORT>;regint=0;answermode=auto`;
  baresip picks the account by the user part of the Request-URI and answers OPTIONS
  keepalives with 200 by itself.
Codec names must carry rate and channels (`g722/16000/1`): an unknown name makes baresip
offer all its codecs.

BaresipProcess is the process part (config dir, start, stop, log, dump) that
test_baresip's registering agents share with Baresip; DumpsAgentsOnFailure is the TestCase
mixin that prints their logs after a failed test.

Tone analysis (numpy, /usr/bin/python3): dominant_frequency() and level_dbfs() over the
middle half of a WAV (baresip's recordings start and end with a little silence).
"""

import glob
import importlib.util
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import wave

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MODULE_PATH = "/usr/lib/baresip/modules"
MODULES = ("g711.so", "g722.so", "opus.so", "srtp.so", "alsa.so", "ausine.so", "sndfile.so")
LIFETIME_S = 300   # baresip's own -t: it quits by itself if the test never stops it
ANSI = re.compile(r"\x1b\[[0-9;]*m")
TRACE = re.compile(r"\x1b\[36;1m#\n(\S+) (\S+) -> (\S+)\n(.*?)\x1b\[;m", re.S)

_rtp_windows = set()


def baresip_path():
    return os.environ.get("BARESIP", shutil.which("baresip") or "baresip")


def check_prerequisites():
    """Raises AssertionError naming what is missing (tests never skip)."""
    missing = []
    if not os.path.exists(baresip_path()) and not shutil.which(baresip_path()):
        missing.append("baresip (Debian package baresip-core)")
    for module in MODULES + ("ctrl_tcp.so", "menu.so", "account.so"):
        if not os.path.exists(os.path.join(MODULE_PATH, module)):
            missing.append("%s/%s (baresip-core)" % (MODULE_PATH, module))
    if not shutil.which("sox"):
        missing.append("sox (Debian package sox)")
    if importlib.util.find_spec("numpy") is None:
        missing.append("numpy for %s (python3-numpy; run with /usr/bin/python3)"
                       % sys.executable)
    if missing:
        raise AssertionError("media test prerequisites missing: " + ", ".join(missing))


def free_sip_port(host):
    """A port free for UDP and TCP on host whose next port is free for TCP too (baresip
    opens its TLS listener on sip_listen + 1)."""
    for _ in range(50):
        port = harness.free_port(host)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((host, port + 1))
        except OSError:
            continue
        finally:
            s.close()
        harness._given_ports.add(port + 1)
        return port
    raise RuntimeError("no free SIP port pair on %s" % host)


def rtp_window():
    """100 RTP ports in 5000-9999: below the media worker's window (10000-19999, see
    harness.Cluster) and harness.free_port's range (20000-32000), above the well-known
    ports, never handed out twice by this process."""
    rng = random.SystemRandom()
    for _ in range(100):
        base = 5000 + 100 * rng.randrange(0, 50)
        if base not in _rtp_windows:
            _rtp_windows.add(base)
            return base, base + 99
    raise RuntimeError("no RTP window left")


def wait_for(predicate, timeout, interval=0.05):
    """predicate()'s first truthy value within timeout seconds, else its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def client_account(user, gateway_port, password=None, mediaenc=None, codecs=None,
                   gateway_host="127.0.0.1", regint=600, extra="", transport="udp"):
    """A user registering through the gateway's internal side (digest with auth_pass);
    transport "tcp" goes into the outbound URI."""
    password = password if password is not None else harness.user_password(user)
    outbound = "sip:%s:%d" % (gateway_host, gateway_port)
    if transport != "udp":
        outbound += ";transport=%s" % transport
    line = ('<sip:%s@%s>;auth_pass=%s;outbound="%s";regint=%d'
            % (user, harness.DOMAIN, password, outbound, regint))
    return line + _media_params(mediaenc, codecs) + extra


def trunk_account(user, host, port, mediaenc=None, codecs=None, extra=""):
    """A UAS on host:port answering calls to `user` at once (no registration)."""
    line = "<sip:%s@%s:%d>;regint=0;answermode=auto" % (user, host, port)
    return line + _media_params(mediaenc, codecs) + extra


def _media_params(mediaenc, codecs):
    out = ""
    if mediaenc:
        out += ";mediaenc=%s" % mediaenc
    if codecs:
        out += ";audio_codecs=%s" % ",".join(codecs)
    return out


def write_config(directory, host, port, account, settings=(), modules=(), uuid=None):
    """Writes baresip's config dir: `config` (SIP on host:port with net_interface host, the
    settings lines, module_path, the module lines as given: "module x.so", "module_tmp
    x.so", ...), `accounts` (the one account line) and, for uuid.so, `uuid`."""
    lines = ["sip_listen %s:%d" % (host, port),
             "net_interface %s" % host]
    lines += list(settings)
    lines.append("module_path %s" % MODULE_PATH)
    lines += list(modules)
    with open(os.path.join(directory, "config"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(directory, "accounts"), "w") as f:
        f.write(account + "\n")
    if uuid:
        with open(os.path.join(directory, "uuid"), "w") as f:
            f.write(uuid)


class BaresipProcess:
    """One headless baresip process with its own config dir (`directory`, made here):
    start() picks the ports (pick_ports), writes the config (write_config, the subclass's),
    runs `baresip -f DIR -s -t LIFETIME` with stdin /dev/null and waits for "baresip is
    ready.", then on_ready() (an OSError there counts as a failed start); stop() signals its
    PID only."""

    lifetime_s = LIFETIME_S

    def __init__(self, directory, name, host, port=None):
        self.name = name
        self.host = host
        self.dir = directory
        os.makedirs(self.dir)
        self.fixed_port = port
        self.port = None
        self.log_path = os.path.join(self.dir, "baresip.log")
        self.proc = None

    def pick_ports(self):
        """self.port: the fixed one, else a free SIP port on host."""
        self.port = self.fixed_port or free_sip_port(self.host)

    def write_config(self):
        raise NotImplementedError

    def start_banner(self):
        """What the log's "===== start: ... =====" line says."""
        return "SIP %s:%d" % (self.host, self.port)

    def on_ready(self):
        pass

    def start(self, attempts=3):
        """Starts it and waits until it is ready; new ports when one was taken in the
        meantime (not for a fixed port)."""
        for attempt in range(1, attempts + 1):
            self.pick_ports()
            self.write_config()
            with open(self.log_path, "ab") as log:
                log.write(b"\n===== start: %s =====\n" % self.start_banner().encode())
                log.flush()
                self.proc = subprocess.Popen(
                    [baresip_path(), "-f", self.dir, "-s", "-t", str(self.lifetime_s)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
            wait_for(lambda: "baresip is ready." in self.log() or self.proc.poll() is not None,
                     15)
            if self.proc.poll() is None and "baresip is ready." in self.log():
                try:
                    self.on_ready()
                    return self
                except OSError:
                    pass
            self.stop(timeout=5)
            if attempt == attempts or self.fixed_port or "in use" not in self.log():
                raise AssertionError("baresip %s did not start:\n%s" % (self.name,
                                                                         self.log()[-5000:]))
        return self

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Signal, wait, SIGKILL after timeout; the exit code (-9 when killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        """The log as text: colours removed, the status line's \\r made newlines."""
        text = self.raw_log()
        return ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")

    def raw_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def dump_details(self):
        """Lines dump() prints before the log."""
        return []

    def dump(self, out=sys.stderr):
        print("\n===== baresip %s (%s) =====" % (self.name, self.log_path), file=out)
        for line in self.dump_details():
            print(line, file=out)
        print(self.log()[-25000:], file=out)
        out.flush()


# The tone verdict (MEDIA-TESTING.md). The sine is sent at -9 dBFS (ausine); a codec chain
# that loses more than 6 dB of it, or adds so much noise that less than 80 % of the energy is
# in the tone, is not "hearing". A call lasts TALK_S: the recordings' middle half (analysed)
# is then ~2 s.
TALK_S = 4.0
TONE_TOLERANCE_HZ = 5.0
MIN_LEVEL_DBFS = -15.0
MIN_TONE_FRACTION = 0.8


class HearsTones:
    """unittest.TestCase mixin: assertHears(ua, hz, what), the tone verdict on what a
    baresip recorded."""

    def assertHears(self, ua, hz, what):
        """ua's recording of what it received holds a tone of hz at a sane level."""
        recordings = ua.recordings("dec")
        self.assertEqual(len(recordings), 1, "%s: recordings %s" % (what, recordings))
        result = analyse(recordings[0])
        print("%s: %s" % (what, describe(result)))
        self.assertGreater(result["seconds"], TALK_S - 1.5, describe(result))
        self.assertAlmostEqual(result["peak_hz"], hz, delta=TONE_TOLERANCE_HZ,
                               msg="%s: expected %d Hz: %s" % (what, hz, describe(result)))
        self.assertGreater(result["level_dbfs"], MIN_LEVEL_DBFS, describe(result))
        self.assertLess(result["level_dbfs"], 0.0, describe(result))
        self.assertGreater(result["tone_fraction"], MIN_TONE_FRACTION, describe(result))
        return result


class DumpsAgentsOnFailure:
    """unittest.TestCase mixin (before the TestCase in the bases): self.agents, emptied
    before each test, are the baresips (BaresipProcess) whose logs are printed when the
    test fails."""

    def run(self, result=None):
        result = result or self.defaultTestResult()
        self.agents = []
        before = len(result.failures) + len(result.errors)
        out = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            for agent in self.agents:
                agent.dump()
        return out


class Baresip(BaresipProcess):
    """One baresip media peer (see the module docstring). `account` may contain {port}, the
    SIP port chosen at start (a trunk passes its fixed port instead)."""

    def __init__(self, workdir, name, host, account, tone_hz, port=None, extra_modules=(),
                 extra_settings=()):
        super().__init__(os.path.join(workdir, "baresip-%s-%d" % (name, time.monotonic_ns())),
                         name, host, port=port)
        # More "module x.so" lines (ice.so for a client doing ICE) and config lines.
        self.extra_modules = tuple(extra_modules)
        self.extra_settings = tuple(extra_settings)
        self.rec_dir = os.path.join(self.dir, "rec")
        os.makedirs(self.rec_dir)
        self.account_template = account
        self.tone_hz = tone_hz
        self.ctrl_port = None
        self.events = []
        self._responses = {}
        self._cond = threading.Condition()
        self._sock = None
        self._reader = None
        self._token = 0

    # ---- process

    def pick_ports(self):
        super().pick_ports()
        self.ctrl_port = harness.free_port()

    def start_banner(self):
        return "SIP %s:%d, ctrl 127.0.0.1:%d" % (self.host, self.port, self.ctrl_port)

    def write_config(self):
        rtp_min, rtp_max = rtp_window()
        self.account = self.account_template.format(port=self.port)
        write_config(self.dir, self.host, self.port, self.account,
                     settings=["rtp_ports %d-%d" % (rtp_min, rtp_max),
                               "audio_player alsa,null",
                               "audio_alert alsa,null",
                               "audio_source ausine,%d" % self.tone_hz,
                               # ausine produces 48 kHz stereo only; baresip resamples to
                               # the codec.
                               "ausrc_srate 48000",
                               "ausrc_channels 2",
                               "snd_path %s" % self.rec_dir,
                               "ctrl_tcp_listen 127.0.0.1:%d" % self.ctrl_port]
                     + list(self.extra_settings),
                     modules=["module %s" % m for m in MODULES + self.extra_modules]
                     + ["module_tmp account.so", "module_app menu.so",
                        "module_app ctrl_tcp.so"])

    def on_ready(self):
        """Connects to ctrl_tcp."""
        self._connect()

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
        return super().stop(sig, timeout)

    # ---- ctrl_tcp

    def _connect(self):
        deadline = time.monotonic() + 5
        while True:
            try:
                self._sock = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self._sock.settimeout(None)
        self._reader = threading.Thread(target=self._read, args=(self._sock,), daemon=True)
        self._reader.start()

    def _read(self, sock):
        buf = b""
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            while True:
                colon = buf.find(b":")
                if colon < 0:
                    break
                length = int(buf[:colon])
                if len(buf) < colon + 1 + length + 1:
                    break
                payload = buf[colon + 1:colon + 1 + length]
                buf = buf[colon + 1 + length + 1:]   # the trailing ","
                try:
                    message = json.loads(payload.decode(errors="replace"))
                except ValueError:
                    continue
                with self._cond:
                    message["_time"] = time.time()
                    if message.get("event"):
                        self.events.append(message)
                    elif message.get("response"):
                        self._responses[message.get("token")] = message
                    self._cond.notify_all()

    def command(self, command, params="", timeout=5):
        """Sends one ctrl_tcp command; its response ({"ok": ..., "data": ...})."""
        if self._sock is None:
            raise AssertionError("baresip %s: no ctrl_tcp connection" % self.name)
        self._token += 1
        token = "t%d" % self._token
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self._sock.sendall(b"%d:%s," % (len(body), body))
        with self._cond:
            if not self._cond.wait_for(lambda: token in self._responses, timeout):
                raise AssertionError("baresip %s: no response to %s %s within %ss"
                                     % (self.name, command, params, timeout))
            response = self._responses.pop(token)
        if not response.get("ok"):
            raise AssertionError("baresip %s: %s %s failed: %s" % (self.name, command, params,
                                                                   response))
        return response

    def wait_event(self, kind, timeout, after=0.0, count=1):
        """The first `count` events of type `kind` pushed after `after` (time.time()),
        waiting up to timeout seconds; AssertionError listing what came instead."""
        def found():
            hits = [e for e in self.events if e.get("type") == kind and e["_time"] > after]
            return hits if len(hits) >= count else None
        with self._cond:
            hits = self._cond.wait_for(found, timeout)
        if not hits:
            raise AssertionError("baresip %s: no %d x %s within %ss; events: %s"
                                 % (self.name, count, kind, timeout, self.event_summary()))
        return hits[:count]

    def event_types(self, kind=None):
        with self._cond:
            return [e for e in self.events if kind is None or e.get("type") == kind]

    def event_summary(self):
        with self._cond:
            return ["%s(%s)" % (e.get("type"), e.get("param", "")) for e in self.events]

    def wait_registered(self, timeout=10):
        """Until the account's REGISTER got its 200. baresip registers at start, often
        before ctrl_tcp is connected (the REGISTER_OK event is then never seen), so this
        reads the log line it writes: "alice@example.com: {0/UDP/v4} 200 OK (...)"."""
        done = re.compile(r"^\S+: \{\d+/\w+/v4\} 200 OK", re.M)
        if not wait_for(lambda: done.search(self.log()), timeout):
            raise AssertionError("baresip %s did not register within %ss:\n%s"
                                 % (self.name, timeout, self.log()[-4000:]))

    def dial(self, uri):
        return self.command("dial", uri)

    def hangup(self):
        return self.command("hangup")

    def send_digits(self, digits):
        """RFC 4733 events for each digit (menu's sndcode)."""
        return self.command("sndcode", digits)

    def received_digits(self, after=0.0):
        return "".join(e.get("param", "") for e in self.event_types("CALL_DTMF_START")
                       if e["_time"] > after)

    # ---- files

    def recordings(self, kind="dec"):
        """The sndfile recordings of one direction ("dec": received, "enc": sent), oldest
        first."""
        return sorted(glob.glob(os.path.join(self.rec_dir, "dump-*-%s.wav" % kind)))

    def sip_messages(self):
        """The -s trace: [(transport, src, dst, message text with \\n line ends)]."""
        return [(m.group(1), m.group(2), m.group(3), m.group(4).replace("\r\n", "\n"))
                for m in TRACE.finditer(self.raw_log())]

    def received_requests(self, method):
        """Requests of `method` this baresip received (to its own host:port)."""
        me = "%s:%d" % (self.host, self.port)
        return [text for _, _, dst, text in self.sip_messages()
                if dst == me and text.startswith(method + " ")]

    def sent_responses(self, status, cseq_method=None):
        me = "%s:%d" % (self.host, self.port)
        out = []
        for _, src, _, text in self.sip_messages():
            if src != me or not text.startswith("SIP/2.0 %d " % status):
                continue
            if cseq_method and not re.search(r"^CSeq:\s*\d+ %s\s*$" % cseq_method, text, re.M):
                continue
            out.append(text)
        return out

    def received_responses(self, status, cseq_method=None):
        me = "%s:%d" % (self.host, self.port)
        out = []
        for _, _, dst, text in self.sip_messages():
            if dst != me or not text.startswith("SIP/2.0 %d " % status):
                continue
            if cseq_method and not re.search(r"^CSeq:\s*\d+ %s\s*$" % cseq_method, text, re.M):
                continue
            out.append(text)
        return out

    def dump_details(self):
        return ["events: %s" % self.event_summary()]


def raw_ulaw_tone(path, hz, seconds):
    """A raw G.711 u-law file of a sine at -6 dBFS peak (SIPp's rtp_stream input), made
    with sox."""
    sox = shutil.which("sox")
    if not sox:
        raise AssertionError("sox is missing (Debian package sox)")
    subprocess.run([sox, "-n", "-r", "8000", "-c", "1", "-t", "ul", path, "synth",
                    str(seconds), "sine", str(hz), "vol", "0.5"], check=True,
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    return path


# ---------------------------------------------------------------- SDP

def sdp_body(message):
    return message.split("\n\n", 1)[1] if "\n\n" in message else ""


def sdp_audio(body):
    """{"proto", "port", "formats": {pt: "name/rate[/ch]"}, "crypto": [lines], "address"}."""
    m = re.search(r"^m=audio (\d+) (\S+) ([\d ]+)\s*$", body, re.M)
    if not m:
        raise AssertionError("no m=audio line in SDP:\n%s" % body)
    rtpmaps = dict(re.findall(r"^a=rtpmap:(\d+) (\S+)\s*$", body, re.M))
    static = {"0": "PCMU/8000", "8": "PCMA/8000", "9": "G722/8000", "18": "G729/8000"}
    formats = {pt: rtpmaps.get(pt, static.get(pt, "?")) for pt in m.group(3).split()}
    address = re.search(r"^c=IN IP4 (\S+)", body, re.M)
    return {"port": int(m.group(1)), "proto": m.group(2), "formats": formats,
            "crypto": re.findall(r"^a=crypto:.*$", body, re.M),
            "address": address.group(1) if address else None}


def codec_names(audio):
    """The encoding names of an sdp_audio() result, upper case, in order."""
    return [f.split("/")[0].upper() for f in audio["formats"].values()]


# ---------------------------------------------------------------- tone analysis

def read_wav(path):
    """(samples of the first channel as floats in [-1, 1], rate). Accepts a WAV whose header
    was never finished (length 0): the data after the 44-byte header."""
    import numpy as np
    with wave.open(path) as w:
        rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        frames = w.readframes(w.getnframes())
    if width != 2:
        raise AssertionError("%s: %d-byte samples, expected 16-bit" % (path, width))
    if not frames:
        with open(path, "rb") as f:
            frames = f.read()[44:]
    data = np.frombuffer(frames[:len(frames) // (2 * channels) * 2 * channels], dtype="<i2")
    return data.reshape(-1, channels)[:, 0].astype(np.float64) / 32768.0, rate


def middle(samples, fraction=0.5):
    cut = int(len(samples) * (1 - fraction) / 2)
    return samples[cut:len(samples) - cut]


def analyse(path):
    """{"rate", "seconds", "peak_hz", "level_dbfs"} over the middle half of a WAV."""
    import numpy as np
    samples, rate = read_wav(path)
    part = middle(samples)
    if len(part) < rate // 10:
        raise AssertionError("%s: only %.2f s of audio" % (path, len(samples) / float(rate)))
    spectrum = np.abs(np.fft.rfft(part * np.hanning(len(part))))
    freqs = np.fft.rfftfreq(len(part), 1.0 / rate)
    spectrum[freqs < 50] = 0   # DC and rumble
    k = int(np.argmax(spectrum))
    # Parabolic interpolation between the bins around the peak.
    peak = freqs[k]
    if 0 < k < len(spectrum) - 1:
        a, b, c = spectrum[k - 1], spectrum[k], spectrum[k + 1]
        denom = a - 2 * b + c
        if denom:
            peak += 0.5 * (a - c) / denom * (freqs[1] - freqs[0])
    rms = float(np.sqrt(np.mean(part ** 2)))
    # How much of the energy sits within 20 Hz of the peak (a clean tone: most of it).
    power = spectrum ** 2
    near = power[np.abs(freqs - peak) <= 20].sum()
    return {"path": path, "rate": rate, "seconds": len(samples) / float(rate),
            "peak_hz": float(peak), "level_dbfs": 20 * np.log10(max(rms, 1e-12)),
            "tone_fraction": float(near / power.sum()) if power.sum() else 0.0}


DTMF_ROWS = (697, 770, 852, 941)
DTMF_COLS = (1209, 1336, 1477, 1633)
DTMF_KEYS = ("123A", "456B", "789C", "*0#D")


def ulaw_to_float(data):
    """G.711 u-law bytes to floats in [-1, 1] (ITU-T G.711 expansion)."""
    import numpy as np
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    magnitude = ((((u & 0x0F) << 3) + 0x84) << ((u >> 4) & 0x07)) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.float64) / 32768.0


def dtmf_digits(samples, rate=8000, block_ms=20, min_blocks=2):
    """In-band DTMF digits in samples (Goertzel per block): a block holds a digit when its
    strongest row and column frequencies together carry more than half of its energy and
    each more than a tenth; a digit counts after min_blocks blocks in a row (40 ms), and
    again only after a block without it."""
    import numpy as np
    n = int(rate * block_ms / 1000)
    t = np.arange(n) / float(rate)
    probes = {f: np.exp(-2j * np.pi * f * t) for f in DTMF_ROWS + DTMF_COLS}
    digits, current, run = [], None, 0
    for start in range(0, len(samples) - n + 1, n):
        block = samples[start:start + n]
        energy = float(np.sum(block ** 2))
        found = None
        if energy > 1e-7 * n:   # not silence (below -70 dBFS)
            # The share of the block's energy at f: 1.0 for a pure sine at f.
            share = {f: 2 * abs(np.dot(block, w)) ** 2 / (n * energy) for f, w in probes.items()}
            row = max(DTMF_ROWS, key=share.get)
            col = max(DTMF_COLS, key=share.get)
            if share[row] + share[col] > 0.5 and min(share[row], share[col]) > 0.1:
                found = DTMF_KEYS[DTMF_ROWS.index(row)][DTMF_COLS.index(col)]
        if found is not None and found == current:
            run += 1
            if run == min_blocks:
                digits.append(found)
        else:
            current, run = found, 1 if found is not None else 0
            if found is not None and min_blocks == 1:
                digits.append(found)
    return "".join(digits)


def describe(result):
    return ("%s: %.2f s at %d Hz, peak %.1f Hz, level %.1f dBFS, %.0f%% of the energy at the "
            "peak" % (os.path.basename(result["path"]), result["seconds"], result["rate"],
                      result["peak_hz"], result["level_dbfs"], 100 * result["tone_fraction"]))
