"""A media worker frees the sessions of a gateway that crashed (kill -9).

Only the owning gateway deletes a media session (DeleteSession); a gateway that dies leaves
its sessions on the workers, holding ports and load. The worker notices that the gateway's
WatchEvents stream ended and, when none of that gateway_id comes back within
orphan_grace_ms, deletes its sessions itself (medius_media_sessions_orphaned_total
{reason="owner_gone"}; docs/media.md, "Orphaned sessions").

harness.Cluster(calls=True) with orphan_grace_ms GRACE_MS in media.json; its own gateway
(gw-e2e) stays up, a replica (gw-doomed) is started beside it. Through gw-doomed: an
answered call to the PBX (SIPp UAS, RTP echoed) and a call ringing at pstn-primary (never
answered: its session never got RTP, no media timeout runs for it). Through gw-e2e: an
answered call to the PBX that goes on after the kill. Then kill -9 gw-doomed: within
GRACE_MS plus one sweep (GRACE_MS / 4) plus the polling here, the worker is down to
gw-e2e's session, with two sessions counted as owner_gone, their ports back in the pool;
gw-e2e's call then ends normally and leaves nothing.
"""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import wait_until  # noqa: E402

GRACE_MS = 1500
SWEEP_MS = GRACE_MS // 4  # OrphanSweeper::intervalFor
# medctl sessions every 100 ms takes some tens of ms each on a loaded machine.
SLACK_S = 2.0
HOSTS = harness.TRUNK_HOSTS


class OrphanCluster(harness.Cluster):
    """A calls cluster whose media.json sets orphan_grace_ms."""

    def pick_ports(self):
        super().pick_ports()
        with open(self.media_config) as f:
            media = json.load(f)
        media["orphan_grace_ms"] = GRACE_MS
        with open(self.media_config, "w") as f:
            json.dump(media, f, indent=2)


class MediaOrphans(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        # pstn-primary rings for as long as the test needs (no failover timeout meanwhile).
        cls.cluster = OrphanCluster(name="media-orphans", calls=True, trunk_overrides={
            "pstn-primary": {"failover_timeout_ms": 60000}}).start()

    def far(self, trunk, scenario):
        uas = harness.SippProcess(scenario, self.cluster.dir, local_ip=HOSTS[trunk],
                                  port=self.cluster.trunk_ports[trunk], rtp_echo=True,
                                  timeout=60, name="%s-%d" % (trunk, time.monotonic_ns()))
        self.addCleanup(uas.stop)
        return uas

    def caller(self, internal_port, number, host, duration_ms):
        uac = harness.SippProcess(
            "uac_call.xml", self.cluster.dir, "-s", number, "-au", "alice",
            "-ap", harness.user_password("alice"), target="127.0.0.1:%d" % internal_port,
            local_ip=host, keys={"caller": "alice"}, duration_ms=duration_ms, calls=1, timeout=60,
            name="caller-%s-%d" % (number, time.monotonic_ns()))
        self.addCleanup(uac.stop)
        return uac

    def sessions(self):
        return self.cluster.sessions().get("sessions") or []

    def media_metric(self, name, labels=None):
        return harness.metric_value(self.cluster.metrics("media"), name, labels) or 0

    def test_the_sessions_of_a_killed_gateway_are_deleted_by_the_worker(self):
        c = self.cluster
        doomed = c.gateway_replica("gw-doomed").start()
        self.addCleanup(doomed.kill)
        free_before = self.media_metric("medius_media_port_pool_free")
        self.far("pbx", "uas_answer.xml")
        self.far("pstn-primary", "uas_ringing.xml")
        time.sleep(0.3)  # bound before anything is sent to them

        survivor = self.caller(c.internal_port, "2200", "127.0.0.21", 8000)
        wait_until(lambda: len(self.sessions()) == 1, 10, "gw-e2e's session")
        self.caller(doomed.internal_port, "2200", "127.0.0.22", 30000)
        self.caller(doomed.internal_port, "4255551234", "127.0.0.23", 30000)
        wait_until(lambda: len(self.sessions()) == 3, 10, "three sessions")
        # gw-doomed's call to the PBX is answered and carries RTP (the PBX echoes).
        wait_until(lambda: sum(1 for s in self.sessions()
                               if int(s.get("leg_b", {}).get("packets_in", 0)) > 0) == 2,
                   10, "RTP on both answered calls")
        survivor_id = None
        calls = c.active_calls().get("calls", [])
        self.assertEqual(len(calls), 1, calls)
        survivor_id = calls[0].get("id") or calls[0].get("call_id")
        self.assertEqual(self.media_metric("medius_media_sessions_orphaned_total"), 0)

        os.kill(doomed.service.pid, 9)
        killed_at = time.monotonic()
        doomed.service.proc.wait()
        left = wait_until(lambda: (lambda s: s if len(s) == 1 else None)(self.sessions()),
                          (GRACE_MS + SWEEP_MS) / 1000.0 + SLACK_S,
                          "only gw-e2e's session left on the worker")
        took = time.monotonic() - killed_at
        print("gw-doomed's 2 sessions deleted %.2f s after kill -9 (grace %.1f s, sweep %.2f s)"
              % (took, GRACE_MS / 1000.0, SWEEP_MS / 1000.0))
        self.assertGreaterEqual(took, GRACE_MS / 1000.0 - 0.2, "deleted before the grace")
        if survivor_id:
            self.assertEqual(left[0]["session_id"], survivor_id, left)
        self.assertEqual(self.media_metric("medius_media_sessions_orphaned_total",
                                           {"reason": "owner_gone"}), 2)
        self.assertEqual(self.media_metric("medius_media_sessions_orphaned_total",
                                           {"reason": "timeout_unhandled"}), 0)
        self.assertEqual(self.media_metric("medius_media_sessions_active"), 1)
        self.assertEqual(self.media_metric("medius_media_port_pool_free"), free_before - 2)
        log = c.media.log_text()
        self.assertEqual(log.count("owner_gone"), 2, log[-3000:])

        # The surviving gateway's call was never touched: it ends normally, nothing is left.
        result = survivor.wait()
        self.assertEqual(result.returncode, 0, result.describe())
        wait_until(lambda: not self.sessions(), 5, "no session left")
        self.assertEqual(self.media_metric("medius_media_port_pool_free"), free_before)
        self.assertEqual(self.media_metric("medius_media_load"), 0)


if __name__ == "__main__":
    harness.main()
