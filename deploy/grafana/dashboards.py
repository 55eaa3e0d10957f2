#!/usr/bin/env python3
"""Generates Medius's Grafana dashboards (deploy/grafana/dashboards/*.json).

The JSON files are committed (Grafana's provisioning reads them as they are); this script is
their source, so that every panel has the same shape and the queries are written once:

    deploy/grafana/dashboards.py           rewrite the JSON files
    deploy/grafana/dashboards.py --check   exit 1 when a file differs from what it would write

Every query uses metrics the services export (docs/metrics.md); tests/deploy checks that, and
the e2e test test_observability.py runs each query against a Prometheus scraping a live
cluster. `$__rate_interval` and `$datasource` are Grafana's; the panels aggregate over
replicas (`instance`), so the same dashboards serve one process or a scaled cluster.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "dashboards")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"


def quantile(q, metric, by=""):
    group = "le" + (", " + by if by else "")
    return "histogram_quantile(%s, sum by (%s) (rate(%s_bucket[%s])))" % (q, group, metric, RATE)


class Board:
    def __init__(self, uid, title, description, tags):
        self.uid, self.title, self.description, self.tags = uid, title, description, tags
        self.panels = []
        self.x = self.y = 0
        self.row_height = 0

    def row(self, title):
        if self.x:
            self.y += self.row_height
            self.x = self.row_height = 0
        self.panels.append({"id": len(self.panels) + 1, "type": "row", "title": title,
                            "collapsed": False, "panels": [],
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}})
        self.y += 1

    def panel(self, title, targets, unit="short", kind="timeseries", width=8, height=8,
              description="", stack=False, thresholds=None, mappings=None):
        if self.x + width > 24:
            self.y += self.row_height
            self.x = self.row_height = 0
        defaults = {"unit": unit}
        if thresholds:
            defaults["thresholds"] = {"mode": "absolute", "steps": [
                {"color": color, "value": value} for value, color in thresholds]}
        if mappings:
            defaults["mappings"] = mappings
        if kind == "timeseries":
            defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10,
                                  "stacking": {"mode": "normal" if stack else "none",
                                               "group": "A"}}
            options = {"legend": {"displayMode": "list", "placement": "bottom",
                                  "showLegend": True},
                       "tooltip": {"mode": "multi", "sort": "desc"}}
        else:  # stat
            options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                         "values": False},
                       "colorMode": "value", "graphMode": "area", "justifyMode": "auto",
                       "orientation": "auto", "textMode": "auto"}
        panel = {
            "id": len(self.panels) + 1,
            "type": kind,
            "title": title,
            "description": description,
            "datasource": DATASOURCE,
            "gridPos": {"h": height, "w": width, "x": self.x, "y": self.y},
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": options,
            "targets": [{"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr,
                         "legendFormat": legend, "range": True}
                        for i, (expr, legend) in enumerate(targets)],
        }
        self.panels.append(panel)
        self.x += width
        self.row_height = max(self.row_height, height)

    def json(self):
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["medius"] + self.tags,
            "editable": True,
            "graphTooltip": 1,
            "schemaVersion": 39,
            "version": 1,
            "refresh": "30s",
            "time": {"from": "now-1h", "to": "now"},
            "timezone": "browser",
            "templating": {"list": [{
                "name": "datasource", "label": "Prometheus", "type": "datasource",
                "query": "prometheus", "current": {}, "hide": 0, "refresh": 1,
                "options": [], "regex": ""}]},
            "annotations": {"list": []},
            "links": [{"type": "dashboards", "tags": ["medius"], "title": "Medius",
                       "asDropdown": True, "includeVars": True, "keepTime": True}],
            "panels": self.panels,
        }




def overview():
    b = Board("medius-overview", "Medius overview",
              "Calls, trunks and media of the whole cluster (every replica).", ["overview"])
    b.row("Calls")
    b.panel("Calls in progress", [("sum(medius_gateway_calls_active)", "calls")],
            kind="stat", width=4)
    b.panel("Calls per second (finished)",
            [("sum(rate(medius_gateway_calls_total[%s]))" % RATE, "calls/s")],
            unit="reqps", kind="stat", width=4)
    b.panel("Answer-seizure ratio (15 min)",
            [("sum(increase(medius_gateway_calls_total{outcome=\"answered\"}[15m]))"
              " / sum(increase(medius_gateway_calls_total[15m]))", "ASR")],
            unit="percentunit", kind="stat", width=4,
            description="Answered calls over all finished calls; MediusAnswerSeizureRatioLow "
                        "fires below 30 %.",
            thresholds=[(None, "red"), (0.3, "orange"), (0.5, "green")])
    b.panel("Post-dial delay",
            [(quantile("0.5", "medius_gateway_call_setup_seconds"), "median"),
             (quantile("0.95", "medius_gateway_call_setup_seconds"), "95th percentile")],
            unit="s", width=12,
            description="INVITE received to the first 18x or 2xx relayed to the caller.")
    b.panel("Finished calls by outcome",
            [("sum by (outcome) (rate(medius_gateway_calls_total[%s]))" % RATE, "{{outcome}}")],
            unit="reqps", stack=True, width=12)
    b.panel("Calls by direction",
            [("sum by (direction) (rate(medius_gateway_calls_total[%s]))" % RATE,
              "{{direction}}")],
            unit="reqps", stack=True, width=12)
    b.row("Trunks")
    b.panel("Trunk health", [("max by (trunk) (medius_gateway_trunk_up)", "{{trunk}}")],
            kind="stat", width=8,
            description="1 when at least one gateway gets answers to its OPTIONS keepalive.",
            mappings=[{"type": "value", "options": {
                "0": {"text": "down", "color": "red", "index": 0},
                "1": {"text": "up", "color": "green", "index": 1}}}],
            thresholds=[(None, "red"), (1, "green")])
    b.panel("Calls per trunk", [("sum by (trunk) (medius_gateway_trunk_active_calls)",
                                 "{{trunk}}")], width=8)
    b.panel("Answer-seizure ratio per trunk (15 min)",
            [("sum by (trunk) (increase(medius_gateway_trunk_call_answers_total[15m]))"
              " / sum by (trunk) (increase(medius_gateway_trunk_call_attempts_total[15m]))",
              "{{trunk}}")], unit="percentunit", width=8)
    b.row("Media")
    b.panel("Media sessions",
            [("sum(medius_media_sessions_active)", "sessions"),
             ("sum(medius_media_transcoding_sessions)", "transcoding")], width=8)
    b.panel("Media worker load (of its limit)",
            [("medius_media_load / medius_media_load_limit", "{{instance}}")],
            unit="percentunit", width=8,
            description="Codec-weighted load estimate; new sessions go elsewhere at 100 %.")
    b.panel("Packets relayed", [("sum by (direction) (rate(medius_media_packets_total[%s]))"
                                 % RATE, "{{direction}}")], unit="pps", width=8)
    b.panel("Packet loss per leg (95th percentile)",
            [(quantile("0.95", "medius_media_leg_loss_ratio"), "loss")],
            unit="percentunit", width=8)
    b.panel("Jitter per leg (95th percentile)",
            [(quantile("0.95", "medius_media_leg_jitter_seconds"), "jitter")], unit="s",
            width=8)
    b.panel("MOS of finished calls",
            [(quantile("0.5", "medius_media_session_mos"), "median"),
             (quantile("0.05", "medius_media_session_mos"), "worst 5 %")], width=8)
    b.row("Services")
    b.panel("Services up", [("sum by (job) (up{job=~\"medius-.+\"})", "{{job}}")],
            kind="stat", width=24, height=5,
            description="Replicas of each service that Prometheus scrapes successfully.")
    return b


def gateway():
    b = Board("medius-signaling-gateway", "Medius signaling gateway",
              "SIP traffic, dependencies and protection of the signaling gateways.", ["gateway"])
    b.row("SIP")
    b.panel("Requests received",
            [("sum by (method, side) (rate(medius_gateway_sip_requests_total[%s]))" % RATE,
              "{{side}} {{method}}")], unit="reqps", width=12)
    b.panel("Responses sent",
            [("sum by (code_class, side) (rate(medius_gateway_sip_responses_total[%s]))"
              % RATE, "{{side}} {{code_class}}")], unit="reqps", width=12)
    b.panel("Calls in progress per gateway", [("medius_gateway_calls_active", "{{instance}}")],
            width=8)
    b.panel("REGISTERs waiting for the registrar",
            [("sum(medius_gateway_register_pending)", "pending")], width=8)
    b.panel("CDR write errors",
            [("sum(rate(medius_gateway_cdr_write_errors_total[%s]))" % RATE, "errors")],
            unit="reqps", width=8)
    b.row("Dependencies (gRPC)")
    b.panel("gRPC latency (95th percentile)",
            [(quantile("0.95", "medius_gateway_grpc_client_seconds", "service, method"),
              "{{service}}/{{method}}")], unit="s", width=12)
    b.panel("gRPC errors",
            [("sum by (service, method, code) "
              "(rate(medius_gateway_grpc_client_errors_total[%s]))" % RATE,
              "{{service}}/{{method}} {{code}}")], unit="reqps", width=12)
    b.row("Trunks")
    b.panel("OPTIONS keepalives by result",
            [("sum by (trunk, result) (rate(medius_gateway_trunk_options_total[%s]))" % RATE,
              "{{trunk}} {{result}}")], unit="reqps", width=12)
    b.panel("Forks to trunks that failed",
            [("sum by (trunk) (rate(medius_gateway_trunk_call_failures_total[%s]))" % RATE,
              "{{trunk}}")], unit="reqps", width=12)
    b.row("Security")
    b.panel("Authentication failures",
            [("sum by (reason) (rate(medius_gateway_auth_failures_total[%s]))" % RATE,
              "{{reason}}")], unit="reqps", width=8,
            description="'missing' is the 407 challenge every call starts with.")
    b.panel("Requests refused or dropped",
            [("sum by (reason) (rate(medius_gateway_requests_refused_total[%s]))" % RATE,
              "refused {{reason}}"),
             ("sum by (reason) (rate(medius_gateway_flood_dropped_total[%s]))" % RATE,
              "dropped {{reason}}"),
             ("sum by (reason) (rate(medius_gateway_flood_rejected_total[%s]))" % RATE,
              "503 {{reason}}")], unit="reqps", width=8)
    b.panel("Flood guard",
            [("sum(medius_gateway_flood_banned_sources)", "banned now"),
             ("sum(medius_gateway_flood_sources)", "tracked sources"),
             ("sum(increase(medius_gateway_flood_bans_total[%s]))" % RATE, "new bans"),
             ("sum by (scope) (increase(medius_gateway_auth_bans_total[%s]))" % RATE,
              "failed-auth bans {{scope}}")],
            width=8)
    return b


def routing():
    b = Board("medius-routing", "Medius routing",
              "Enterprise Voice routing decisions and configuration.", ["routing"])
    b.panel("Decisions by outcome",
            [("sum by (outcome) (rate(medius_routing_decisions_total[%s]))" % RATE,
              "{{outcome}}")], unit="reqps", stack=True, width=12)
    b.panel("Decision time",
            [(quantile("0.5", "medius_routing_decision_seconds"), "median"),
             (quantile("0.99", "medius_routing_decision_seconds"), "99th percentile")],
            unit="s", width=12)
    b.panel("Trunks as routing sees them", [("min by (trunk) (medius_routing_trunk_up)",
                                             "{{trunk}}")], width=8)
    b.panel("Configuration reloads",
            [("sum by (result) (increase(medius_routing_config_reloads_total[%s]))" % RATE,
              "{{result}}")], width=8)
    b.panel("Configuration serving (hash)",
            [("count by (hash) (medius_routing_config_info)", "{{hash}}")], width=8,
            description="More than one hash: replicas serve different configurations.")
    return b


def media():
    b = Board("medius-media-transcoder", "Medius media workers",
              "Relay, transcoding, capacity and audio quality of the media workers.", ["media"])
    b.row("Sessions and capacity")
    b.panel("Sessions per worker", [("medius_media_sessions_active", "{{instance}}")],
            width=8)
    b.panel("Load per worker",
            [("medius_media_load", "{{instance}} load"),
             ("medius_media_load_limit", "{{instance}} limit")], width=8,
            description="Percent of one core (load.hpp's estimate).")
    b.panel("Free RTP port pairs", [("medius_media_port_pool_free", "{{instance}}")],
            width=8)
    b.panel("CreateSession answers",
            [("sum by (result) (rate(medius_media_sessions_total[%s]))" % RATE,
              "{{result}}")], unit="reqps", width=12)
    b.panel("Transcoding sessions", [("medius_media_transcoding_sessions", "{{instance}}")],
            width=12)
    b.row("Traffic")
    b.panel("Packets relayed", [("sum by (instance, direction) "
                                 "(rate(medius_media_packets_total[%s]))" % RATE,
                                 "{{instance}} {{direction}}")], unit="pps", width=8)
    b.panel("Bytes relayed", [("sum by (instance, direction) "
                               "(rate(medius_media_bytes_total[%s]))" % RATE,
                               "{{instance}} {{direction}}")], unit="Bps", width=8)
    b.panel("Packets dropped",
            [("sum by (reason) (rate(medius_media_dropped_packets_total[%s]))" % RATE,
              "{{reason}}"),
             ("sum(rate(medius_media_timeouts_total[%s]))" % RATE, "media timeouts")],
            unit="pps", width=8)
    b.row("Quality")
    b.panel("MOS", [(quantile("0.5", "medius_media_session_mos"), "median"),
                    (quantile("0.05", "medius_media_session_mos"), "worst 5 %")], width=6)
    b.panel("Loss per leg", [(quantile("0.95", "medius_media_leg_loss_ratio"), "95th pct")],
            unit="percentunit", width=6)
    b.panel("Jitter per leg", [(quantile("0.95", "medius_media_leg_jitter_seconds"),
                                "95th pct")], unit="s", width=6)
    b.panel("Round-trip time", [(quantile("0.95", "medius_media_leg_rtt_seconds"),
                                 "95th pct")], unit="s", width=6)
    return b


def registrar():
    b = Board("medius-registrar", "Medius registrar", "Registrations and their authentication.",
              ["registrar"])
    b.panel("Bindings", [("max(medius_registrar_bindings)", "bindings")], width=8,
            description="Replicas sharing Redis report the same store: max, not sum.")
    b.panel("REGISTERs by result",
            [("sum by (result) (rate(medius_registrar_register_requests_total[%s]))" % RATE,
              "{{result}}")], unit="reqps", stack=True, width=8)
    b.panel("Authentication failures",
            [("sum by (reason) (rate(medius_registrar_auth_failures_total[%s]))" % RATE,
              "{{reason}}")], unit="reqps", width=8,
            description="'missing' is every client's first, unauthenticated REGISTER.")
    return b


BOARDS = [overview, gateway, routing, media, registrar]


def render():
    boards = [make() for make in BOARDS]
    return {"%s.json" % b.uid: json.dumps(b.json(), indent=2) + "\n" for b in boards}


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, text in render().items():
        path = os.path.join(OUT, name)
        current = open(path).read() if os.path.exists(path) else None
        if current != text:
            stale.append(path)
            if not check:
                with open(path, "w") as f:
                    f.write(text)
    if check and stale:
        print("out of date (run deploy/grafana/dashboards.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
