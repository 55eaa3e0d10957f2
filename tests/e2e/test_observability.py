"""Prometheus against a live cluster (issue 8 item 6): Debian's prometheus runs
deploy/prometheus/prometheus.yml (its job names, alerts.yml unchanged; only the targets
are moved to this cluster's ports and the intervals shortened to 1 s) and scrapes the
whole call path of harness.Cluster(calls=True) after SIPp placed a call through it.

- every Medius job is up, and its targets are the cluster's;
- every query of every Grafana dashboard (deploy/grafana/dashboards/*.json) evaluates in
  Prometheus, and each metric it uses has series on the live cluster;
- the prometheus-adapter rule the media HPA scales on (deploy/k8s/prometheus-adapter-values.yaml)
  evaluates per worker to its load over its load limit (the adapter's placeholders filled
  as it would, with this cluster's job instead of a namespace and pods);
- a media worker killed with SIGKILL fires MediusServiceDown for its instance (the alert's
  own `for: 30s`), and no other alert is firing.
"""

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "deploy"))
import harness  # noqa: E402
from harness import wait_until  # noqa: E402
from test_calls import CallTestCase  # noqa: E402
from test_observability_files import adapter_rule, dashboards, metric_names  # noqa: E402

# Series that exist only after an event this test does not cause (documented in
# docs/metrics.md as created on their first event).
EVENT_ONLY = {"medius_gateway_grpc_client_errors_total"}


class ObservedCluster(CallTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.prometheus = None
        cls.extra_worker = None
        try:
            cls.start_extra_worker()
            cls.prometheus = harness.Prometheus(cls.cluster.dir, cls.prometheus_config())
            wait_until(lambda: len(cls.prometheus.query('up{job=~"medius-.+"} == 1')
                                   ["data"]["result"]) == 5, 60, "five Medius targets up")
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.prometheus is not None:
            cls.prometheus.stop()
        if cls.extra_worker is not None:
            cls.extra_worker.stop()
        super().tearDownClass()

    @classmethod
    def start_extra_worker(cls):
        """A second media worker, scraped like the first, which a test kills."""
        cluster = cls.cluster
        grpc, metrics = harness.free_port(), harness.free_port()
        with open(cluster.media_config) as f:
            config = json.load(f)
        config["service"]["grpc_listen"] = "127.0.0.1:%d" % grpc
        config["service"]["metrics_listen"] = "127.0.0.1:%d" % metrics
        base = cluster.media_port_max + 1
        config["port_range"] = {"min": base, "max": base + 19}
        path = os.path.join(cluster.dir, "media-extra.json")
        with open(path, "w") as f:
            json.dump(config, f)
        env = {"MEDIUS_GRPC_LISTEN": config["service"]["grpc_listen"],
               "MEDIUS_METRICS_LISTEN": config["service"]["metrics_listen"],
               "MEDIUS_MEDIA_PORT_MIN": str(base), "MEDIUS_MEDIA_PORT_MAX": str(base + 19)}
        cls.extra_worker = harness.Service(
            "media-transcoder", [os.path.join(harness.bin_dir(), "media-transcoder"),
                                 "--config", path], env,
            os.path.join(cluster.dir, "media-extra.log"))
        harness.wait_tcp("127.0.0.1", metrics, 30, cls.extra_worker.proc)
        cls.extra_metrics = "127.0.0.1:%d" % metrics

    @classmethod
    def prometheus_config(cls):
        """deploy/prometheus/prometheus.yml with this cluster's targets: same jobs, same
        rule file, 1 s intervals."""
        c = cls.cluster
        return harness.prometheus_config({
            "medius-registrar": ["127.0.0.1:%d" % c.registrar_metrics],
            "medius-routing": ["127.0.0.1:%d" % c.routing_metrics],
            "medius-media": ["127.0.0.1:%d" % c.media_metrics, cls.extra_metrics],
            "medius-gateway": ["127.0.0.1:%d" % c.gateway_metrics],
        })

    def place_call(self):
        pbx = self.far("pbx", "uas_answer.xml", duration_ms=0)
        result = self.caller("uac_call.xml", "2200", duration_ms=2000).wait()
        self.assertSippOk(result, "alice calls 2200")
        self.finish_uas(pbx, what="the PBX")

    def scraped(self, expr):
        data = self.prometheus.query(expr)
        self.assertEqual(data["status"], "success", data)
        return data["data"]["result"]

    def down_targets(self):
        return ["%s %s: %s" % (t["labels"]["job"], t["scrapeUrl"], t["lastError"])
                for t in self.prometheus.targets() if t["health"] != "up"]

    def test_every_job_is_up_with_the_clusters_targets(self):
        wait_until(lambda: len(self.scraped('up{job=~"medius-.+"} == 1')) == 5, 30,
                   "five Medius targets up")
        jobs = sorted(t["labels"]["job"] for t in self.prometheus.targets())
        self.assertEqual(jobs, ["medius-gateway", "medius-media", "medius-media",
                                "medius-registrar", "medius-routing"])

    def test_every_dashboard_query_evaluates_on_the_live_cluster(self):
        self.place_call()
        wait_until(lambda: self.scraped(
            'medius_gateway_calls_total{outcome="answered"} > 0'), 30,
            "the answered call in Prometheus")
        wait_until(lambda: self.scraped("medius_media_session_mos_count > 0"), 30,
                   "the call's MOS in Prometheus")
        checked = set()
        for name, board in dashboards().items():
            for panel in board["panels"]:
                for target in panel.get("targets", []):
                    expr = target["expr"].replace("$__rate_interval", "1m")
                    with self.subTest(dashboard=name, panel=panel["title"], expr=expr):
                        data = self.prometheus.query(expr)
                        self.assertEqual(data["status"], "success", data)
                        for metric in metric_names(expr) - EVENT_ONLY - checked:
                            selector = '{__name__=~"%s(_bucket)?"}' % metric
                            wait_until(lambda: self.scraped(selector), 10,
                                       "series of %s (%s)" % (metric, self.down_targets()))
                            checked.add(metric)
        self.assertGreater(len(checked), 40)

    def test_hpa_load_ratio_rule_evaluates_per_worker(self):
        wait_until(lambda: len(self.scraped('medius_media_load_limit{job="medius-media"}')) == 2,
                   30, "both workers' load limits in Prometheus")
        query = (adapter_rule()["metricsQuery"]
                 .replace("<<.LabelMatchers>>", 'job="medius-media"')
                 .replace("<<.GroupBy>>", "instance"))

        def by_instance(expr):
            data = self.prometheus.query(expr)
            self.assertEqual(data["status"], "success", data)
            return {r["metric"]["instance"]: float(r["value"][1]) for r in data["data"]["result"]}
        ratios = by_instance(query)
        loads = by_instance('medius_media_load{job="medius-media"}')
        limits = by_instance('medius_media_load_limit{job="medius-media"}')
        self.assertEqual(sorted(ratios), sorted(limits))
        self.assertEqual(len(ratios), 2, ratios)
        for instance, ratio in ratios.items():
            self.assertGreater(limits[instance], 0)
            self.assertAlmostEqual(ratio, loads[instance] / limits[instance], places=6)

    def test_killed_media_worker_fires_service_down(self):
        wait_until(lambda: self.scraped(
            'up{job="medius-media", instance="%s"} == 1' % self.extra_metrics), 30,
            "the extra worker scraped")
        os.kill(self.extra_worker.pid, signal.SIGKILL)
        self.extra_worker.proc.wait(10)
        killed = time.monotonic()

        def fired():
            return [a for a in self.prometheus.firing() if a["labels"]["alertname"] ==
                    "MediusServiceDown"]
        wait_until(fired, 90, "MediusServiceDown firing")
        self.assertGreaterEqual(time.monotonic() - killed, 29, "fired before its for: 30s")
        alerts = fired()
        self.assertEqual(len(alerts), 1, alerts)
        self.assertEqual(alerts[0]["labels"]["instance"], self.extra_metrics)
        self.assertEqual(alerts[0]["labels"]["job"], "medius-media")
        self.assertEqual(alerts[0]["labels"]["severity"], "critical")
        others = [a["labels"]["alertname"] for a in self.prometheus.firing()
                  if a["labels"]["alertname"] != "MediusServiceDown"]
        self.assertEqual(others, [])


if __name__ == "__main__":
    harness.main()
