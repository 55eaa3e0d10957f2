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
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "deploy"))
import harness  # noqa: E402
from harness import wait_until  # noqa: E402
from test_calls import CallTestCase  # noqa: E402
from test_observability_files import adapter_rule, dashboards, metric_names  # noqa: E402

PROMETHEUS_DIR = os.path.join(harness.ROOT, "deploy", "prometheus")
# Series that exist only after an event this test does not cause (documented in
# docs/metrics.md as created on their first event).
EVENT_ONLY = {"medius_gateway_grpc_client_errors_total"}


class Prometheus:
    """Debian's prometheus on a free 127.0.0.1 port with the given config."""

    def __init__(self, workdir, config):
        self.port = harness.free_port()
        self.dir = tempfile.mkdtemp(prefix="prometheus-", dir=workdir)
        path = os.path.join(self.dir, "prometheus.yml")
        with open(path, "w") as f:
            yaml.safe_dump(config, f)
        self.log_path = os.path.join(self.dir, "prometheus.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            ["prometheus", "--config.file=" + path, "--storage.tsdb.path=" + self.dir + "/data",
             "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        harness.wait_tcp("127.0.0.1", self.port, 30, self.proc)
        wait_until(self.ready, 60, "prometheus ready (%s)" % self.log_path)

    def ready(self):
        """/-/ready answers 200 once the TSDB is open (503 before)."""
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % self.port,
                                        timeout=5) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def api(self, path, **params):
        url = "http://127.0.0.1:%d/api/v1/%s" % (self.port, path)
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.loads(r.read().decode())
        except urllib.error.HTTPError as e:  # 400/422 carry the error as JSON
            return json.loads(e.read().decode())

    def query(self, expr):
        return self.api("query", query=expr)

    def targets(self):
        return self.api("targets")["data"]["activeTargets"]

    def firing(self):
        return [a for a in self.api("alerts")["data"]["alerts"] if a["state"] == "firing"]

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


class ObservedCluster(CallTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.prometheus = None
        cls.extra_worker = None
        try:
            cls.start_extra_worker()
            cls.prometheus = Prometheus(cls.cluster.dir, cls.prometheus_config())
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
        with open(os.path.join(PROMETHEUS_DIR, "prometheus.yml")) as f:
            config = yaml.safe_load(f)
        c = cls.cluster
        targets = {
            "medius-registrar": ["127.0.0.1:%d" % c.registrar_metrics],
            "medius-routing": ["127.0.0.1:%d" % c.routing_metrics],
            "medius-media": ["127.0.0.1:%d" % c.media_metrics, cls.extra_metrics],
            "medius-gateway": ["127.0.0.1:%d" % c.gateway_metrics],
        }
        jobs = [job["job_name"] for job in config["scrape_configs"]]
        assert sorted(jobs) == sorted(targets), "jobs of prometheus.yml changed: %s" % jobs
        for job in config["scrape_configs"]:
            job["static_configs"] = [{"targets": targets[job["job_name"]]}]
        # Scrapes every second; a busy machine (CI builds beside) may take a while to answer.
        config["global"].update({"scrape_interval": "1s", "scrape_timeout": "1s",
                                 "evaluation_interval": "1s"})
        config["rule_files"] = [os.path.join(PROMETHEUS_DIR, name)
                                for name in config["rule_files"]]
        return config

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
