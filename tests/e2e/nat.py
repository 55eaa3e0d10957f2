"""A NAT built from network namespaces, for tests of remote clients behind NAT (issue 10).

Topology (all addresses inside 10.200.0.0/16, TOOLING.md "Network rule"):

    home ns                 router ns                              public ns
    h0 10.200.10.2/24 ----- rin 10.200.10.1/24
    default via .10.1       rout 10.200.1.2/24 ------------------- p0 10.200.1.1/24
                            ip_forward=1, nft masquerade on rout   lo up (127/8: the cluster)

- the client (baresip, SIPp) runs in the home ns: its private address 10.200.10.2 is in its
  Contact and SDP; everything it sends leaves the router from 10.200.1.2 on a port the NAT
  picked; the public ns has no route back to 10.200.10.0/24 (a real NAT's outside), so a
  gateway that sends to the Contact's address gets "network unreachable";
- the cluster (registrar, routing, media worker, gateway, trunk peers) runs in the public
  ns: its services keep 127.0.0.1 for gRPC, metrics and the trunks as in every other test,
  and the gateway's internal side and the media worker's RTP sit on 10.200.1.1.

How the guard rule stays valid: the root namespace gets `ip route add unreachable
10.200.0.0/16` before anything else (removed at the end; when another test already holds
it, it is left to that test) and never has an address or interface in 10.200/16: the veth
pairs are created inside the router ns and their peers moved straight into home and public.
Nothing in the root ns sends to 10.200/16: the test process itself enters the public ns
(setns(2), what `ip netns exec` does, without its mount namespace) for the whole test class
(`entered(topology.public)`), and starts a home-ns client inside `entered(topology.home)`:
the child process is created there, and so is the ctrl_tcp socket the test keeps to it
(a socket stays in the namespace it was created in). Namespaces are named uniquely per
test process and deleted at the end (which deletes their veths).
"""

import contextlib
import ctypes
import os
import random
import subprocess

GUARD = "10.200.0.0/16"
HOME_ADDRESS = "10.200.10.2"
ROUTER_INSIDE = "10.200.10.1"
ROUTER_OUTSIDE = "10.200.1.2"   # the NAT's public address: what the cluster sees
PUBLIC_ADDRESS = "10.200.1.1"   # the gateway's internal side and the media worker
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "setns: %s" % os.strerror(err))


def _run(*argv, check=True, stdin=None):
    result = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise AssertionError("%s failed (%d): %s%s" % (" ".join(argv), result.returncode,
                                                      result.stdout, result.stderr))
    return result


def check_prerequisites():
    """AssertionError naming what is missing (tests never skip)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (network namespaces)")
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if _run("sh", "-c", "command -v %s" % tool, check=False).returncode != 0:
            missing.append("%s (Debian package %s)" % (tool, package))
    if missing:
        raise AssertionError("NAT test prerequisites missing: " + ", ".join(missing))


def netns_path(name):
    return "/run/netns/%s" % name


@contextlib.contextmanager
def entered(name):
    """The calling thread (and the processes, threads and sockets it creates meanwhile) in
    network namespace `name`; back where it was afterwards."""
    back = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        fd = os.open(netns_path(name), os.O_RDONLY)
        try:
            _setns(fd)
        finally:
            os.close(fd)
        try:
            yield
        finally:
            _setns(back)
    finally:
        os.close(back)


class NatTopology:
    """home -> router (masquerade) -> public, see the module docstring. start() builds it
    (guard route first), stop() removes it; both idempotent."""

    def __init__(self, tag="nat"):
        suffix = "%d-%04x" % (os.getpid(), random.SystemRandom().randrange(0x10000))
        self.home = "md-%s-home-%s" % (tag, suffix)
        self.router = "md-%s-rtr-%s" % (tag, suffix)
        self.public = "md-%s-pub-%s" % (tag, suffix)
        self.guard_ours = False
        self.created = []

    def guarded(self):
        out = _run("ip", "route", "show", "table", "main", GUARD, check=False).stdout
        return out.strip().startswith("unreachable")

    def start(self):
        # Root namespace: the guard before any namespace address exists.
        if not self.guarded():
            _run("ip", "route", "add", "unreachable", GUARD)
            self.guard_ours = True
        if not self.guarded():
            raise AssertionError("no guard route for %s in the root namespace" % GUARD)
        try:
            for ns in (self.home, self.router, self.public):
                _run("ip", "netns", "add", ns)
                self.created.append(ns)
                _run("ip", "-n", ns, "link", "set", "lo", "up")
            r = self.router
            _run("ip", "-n", r, "link", "add", "rin", "type", "veth", "peer", "name", "h0",
                 "netns", self.home)
            _run("ip", "-n", r, "link", "add", "rout", "type", "veth", "peer", "name", "p0",
                 "netns", self.public)
            for ns, dev, addr in ((self.home, "h0", HOME_ADDRESS),
                                  (r, "rin", ROUTER_INSIDE),
                                  (r, "rout", ROUTER_OUTSIDE),
                                  (self.public, "p0", PUBLIC_ADDRESS)):
                _run("ip", "-n", ns, "addr", "add", addr + "/24", "dev", dev)
                _run("ip", "-n", ns, "link", "set", dev, "up")
            _run("ip", "-n", self.home, "route", "add", "default", "via", ROUTER_INSIDE)
            _run("ip", "netns", "exec", r, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
            _run("ip", "netns", "exec", r, "nft", "-f", "-", stdin=(
                "table ip medius_nat {\n"
                "  chain postrouting {\n"
                "    type nat hook postrouting priority srcnat; policy accept;\n"
                "    oifname \"rout\" masquerade\n"
                "  }\n"
                "}\n"))
        except Exception:
            self.stop()
            raise
        return self

    def stop(self):
        for ns in reversed(self.created):
            _run("ip", "netns", "delete", ns, check=False)
        self.created = []
        if self.guard_ours:
            _run("ip", "route", "del", "unreachable", GUARD, check=False)
            self.guard_ours = False

    def conntrack(self):
        """The router's NAT table as nft/conntrack would show it (for failure messages)."""
        path = "/proc/net/nf_conntrack"
        with entered(self.router):
            try:
                with open(path) as f:
                    return f.read()
            except OSError:
                return "(no %s)" % path
