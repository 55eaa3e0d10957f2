"""Static checks of the observability files (issue 8 item 6), no services needed:

- deploy/grafana/dashboards/*.json are what deploy/grafana/dashboards.py generates, valid
  JSON with the shape Grafana's provisioning loads (unique uids, unique panel ids, panels
  inside the 24-column grid without overlaps, a Prometheus query and datasource on every
  panel);
- every metric that a dashboard panel or an alert uses is one the services export: it is
  in docs/metrics.md, whose tables tests/e2e/test_reference_topology.py and
  test_trunk_health.py keep equal to the live /metrics pages;
- every alert of deploy/prometheus/alerts.yml has a promtool unit test in which it fires
  and one in which it must not (the tests themselves run in deploy_prometheus_rules).

tests/e2e/test_observability.py runs every query against a Prometheus scraping a live
cluster.
"""

import json
import os
import re
import subprocess
import sys
import unittest

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GRAFANA = os.path.join(ROOT, "deploy", "grafana")
PROMETHEUS = os.path.join(ROOT, "deploy", "prometheus")
METRIC = re.compile(r"\b(medius_[a-z0-9_]+|up)\b(?!\s*\()")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def dashboards():
    out = {}
    folder = os.path.join(GRAFANA, "dashboards")
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json"):
            with open(os.path.join(folder, name)) as f:
                out[name] = json.load(f)
    return out


def panel_exprs(board):
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield panel, target["expr"]


def alert_rules():
    with open(os.path.join(PROMETHEUS, "alerts.yml")) as f:
        doc = yaml.safe_load(f)
    return [rule for group in doc["groups"] for rule in group["rules"]]


def documented_metrics():
    """Metric names in docs/metrics.md's tables (first column, in backquotes)."""
    names = set()
    with open(os.path.join(ROOT, "docs", "metrics.md")) as f:
        for line in f:
            m = re.match(r"\|\s*`([a-z_][a-z0-9_]*)`\s*\|", line)
            if m:
                names.add(m.group(1))
    return names


def metric_names(expr):
    """The metric names an expression selects: identifiers that are not followed by '('
    (functions) and are not label names inside {...} or by (...)."""
    # Drop label matchers and grouping clauses, which hold label names, not metrics.
    stripped = re.sub(r"\{[^}]*\}", "", expr)
    stripped = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "",
                      stripped)
    names = set()
    for name in METRIC.findall(stripped):
        for suffix in HISTOGRAM_SUFFIXES:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
        names.add(name)
    return names


class Dashboards(unittest.TestCase):

    def test_generated_files_are_up_to_date(self):
        rc = subprocess.run([sys.executable, os.path.join(GRAFANA, "dashboards.py"), "--check"],
                            capture_output=True, text=True)
        self.assertEqual(rc.returncode, 0, rc.stdout + rc.stderr)

    def test_every_dashboard_has_the_shape_grafana_loads(self):
        boards = dashboards()
        self.assertGreaterEqual(set(b["uid"] for b in boards.values()),
                                {"medius-overview", "medius-signaling-gateway", "medius-routing",
                                 "medius-media-transcoder", "medius-registrar"})
        self.assertEqual(len(set(b["uid"] for b in boards.values())), len(boards))
        for name, board in boards.items():
            with self.subTest(dashboard=name):
                for key in ("uid", "title", "schemaVersion", "panels", "templating"):
                    self.assertIn(key, board)
                self.assertLessEqual(len(board["uid"]), 40, "Grafana's uid limit")
                variables = [v["name"] for v in board["templating"]["list"]]
                self.assertIn("datasource", variables)
                ids = [p["id"] for p in board["panels"]]
                self.assertEqual(len(ids), len(set(ids)), "panel ids repeat")
                cells = set()
                for panel in board["panels"]:
                    pos = panel["gridPos"]
                    self.assertLessEqual(pos["x"] + pos["w"], 24, panel["title"])
                    for x in range(pos["x"], pos["x"] + pos["w"]):
                        for y in range(pos["y"], pos["y"] + pos["h"]):
                            self.assertNotIn((x, y), cells, "%s overlaps" % panel["title"])
                            cells.add((x, y))
                    if panel["type"] == "row":
                        continue
                    self.assertEqual(panel["datasource"]["uid"], "${datasource}", panel["title"])
                    self.assertTrue(panel["targets"], panel["title"])
                    for target in panel["targets"]:
                        self.assertTrue(target["expr"].strip(), panel["title"])

    def test_overview_shows_what_an_operator_watches(self):
        text = json.dumps(dashboards()["medius-overview.json"])
        for metric in ("medius_gateway_calls_active", "medius_gateway_calls_total",
                       "medius_gateway_call_setup_seconds", "medius_gateway_trunk_up",
                       "medius_media_sessions_active", "medius_media_leg_loss_ratio",
                       "medius_media_leg_jitter_seconds", "medius_media_session_mos",
                       "medius_media_load"):
            self.assertIn(metric, text)


class MetricsAreExported(unittest.TestCase):

    def test_dashboard_queries_use_exported_metrics(self):
        exported = documented_metrics() | {"up"}
        self.assertIn("medius_gateway_calls_active", exported, "docs/metrics.md not parsed")
        for name, board in dashboards().items():
            for panel, expr in panel_exprs(board):
                with self.subTest(dashboard=name, panel=panel["title"]):
                    used = metric_names(expr)
                    self.assertTrue(used, expr)
                    self.assertLessEqual(used, exported, expr)

    def test_alerts_use_exported_metrics(self):
        exported = documented_metrics() | {"up"}
        for rule in alert_rules():
            with self.subTest(alert=rule["alert"]):
                used = metric_names(rule["expr"])
                self.assertTrue(used, rule["expr"])
                self.assertLessEqual(used, exported, rule["expr"])

    def test_the_name_extraction_ignores_functions_and_labels(self):
        self.assertEqual(metric_names('histogram_quantile(0.5, sum by (le, trunk) '
                                      '(rate(medius_x_seconds_bucket{job="a"}[5m])))'),
                         {"medius_x_seconds"})
        self.assertEqual(metric_names('up{job=~"medius-.+"} == 0'), {"up"})


def adapter_rule():
    """The prometheus-adapter rule that serves the media HPA's custom metric."""
    with open(os.path.join(ROOT, "deploy", "k8s", "prometheus-adapter-values.yaml")) as f:
        doc = yaml.safe_load(f)
    rules = doc["rules"]["custom"]
    if len(rules) != 1:
        raise AssertionError("one custom rule expected, got %d" % len(rules))
    return rules[0]


class AutoscalingMetric(unittest.TestCase):

    def test_the_adapter_serves_the_metric_the_hpa_scales_on(self):
        rule = adapter_rule()
        with open(os.path.join(ROOT, "helm", "medius", "templates",
                               "media-transcoder.yaml")) as f:
            template = f.read()
        hpa = re.findall(r"type: Pods\s+pods:\s+metric:\s+name: (\S+)", template)
        self.assertEqual(hpa, [rule["name"]["as"]])
        self.assertRegex(rule["name"]["matches"], "medius_media_load")
        for key in ("namespace", "pod"):
            self.assertEqual(rule["resources"]["overrides"][key], {"resource": key})

    def test_its_query_uses_exported_metrics_with_the_adapters_placeholders(self):
        query = adapter_rule()["metricsQuery"]
        self.assertIn("<<.LabelMatchers>>", query)
        self.assertIn("<<.GroupBy>>", query)
        plain = query.replace("<<.LabelMatchers>>", "").replace("<<.GroupBy>>", "pod")
        used = metric_names(plain)
        self.assertEqual(used, {"medius_media_load", "medius_media_load_limit"})
        self.assertLessEqual(used, documented_metrics())


class AlertTests(unittest.TestCase):

    def test_every_alert_has_a_firing_and_a_quiet_unit_test(self):
        with open(os.path.join(PROMETHEUS, "alerts_test.yml")) as f:
            tests = yaml.safe_load(f)["tests"]
        firing, quiet = set(), set()
        for case in tests:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
        for rule in alert_rules():
            with self.subTest(alert=rule["alert"]):
                self.assertIn(rule["alert"], firing)
                self.assertIn(rule["alert"], quiet)
                self.assertIn("severity", rule.get("labels", {}))
                self.assertIn("summary", rule.get("annotations", {}))


if __name__ == "__main__":
    unittest.main(verbosity=2)
