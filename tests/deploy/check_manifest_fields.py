#!/usr/bin/python3
"""Unknown and mistyped fields in rendered Kubernetes manifests, offline.

kubernetes-models (validate_manifests.js) checks types and required fields but lets unknown
fields through, and a misspelt field (`readinesProbe`, `containerport`) is silently ignored
by the API server's non-strict decoding. This walks every object against Debian's
python3-kubernetes models (`openapi_types` / `attribute_map`) and reports any key the
Kubernetes API does not have. The two custom resources the chart can render
(ServiceMonitor, cert-manager Certificate) are checked against the fields listed below.

    /usr/bin/python3 check_manifest_fields.py FILE.yaml...
"""
import re
import sys

import kubernetes.client as k8s
import yaml

# Custom resources: allowed keys per path (a subset of their CRDs, what the chart uses and
# what a user would plausibly add); "*" accepts any value below.
CUSTOM = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): {
        "spec": {"jobLabel", "targetLabels", "podTargetLabels", "endpoints", "selector",
                 "namespaceSelector", "sampleLimit", "attachMetadata"},
        "spec.endpoints[]": {"port", "targetPort", "path", "scheme", "params", "interval",
                             "scrapeTimeout", "tlsConfig", "bearerTokenSecret", "honorLabels",
                             "honorTimestamps", "basicAuth", "metricRelabelings",
                             "relabelings", "followRedirects", "enableHttp2"},
        "spec.namespaceSelector": {"any", "matchNames"},
        "spec.selector": {"matchLabels", "matchExpressions"},
    },
    ("cert-manager.io/v1", "Certificate"): {
        "spec": {"secretName", "commonName", "duration", "renewBefore", "dnsNames",
                 "ipAddresses", "uris", "emailAddresses", "issuerRef", "isCA", "usages",
                 "privateKey", "secretTemplate", "subject", "keystores",
                 "revisionHistoryLimit", "additionalOutputFormats", "literalSubject"},
        "spec.privateKey": {"rotationPolicy", "encoding", "algorithm", "size"},
        "spec.issuerRef": {"name", "kind", "group"},
    },
}
CERT_USAGES = {"signing", "digital signature", "content commitment", "key encipherment",
               "key agreement", "data encipherment", "cert sign", "crl sign",
               "encipher only", "decipher only", "any", "server auth", "client auth",
               "code signing", "email protection", "s/mime", "ipsec end system",
               "ipsec tunnel", "ipsec user", "timestamping", "ocsp signing",
               "microsoft sgc", "netscape sgc"}

PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float)}


# Debian's python3-kubernetes (v22) predates autoscaling/v2's models; v2beta2 has the same
# fields (autoscaling/v2 is v2beta2 promoted unchanged).
ALIASES = {("autoscaling/v2", "HorizontalPodAutoscaler"): "V2beta2HorizontalPodAutoscaler"}


def model_class(api_version, kind):
    if (api_version, kind) in ALIASES:
        return getattr(k8s, ALIASES[(api_version, kind)], None)
    group, _, version = api_version.rpartition("/")
    version = version.capitalize()
    name = version + kind
    return getattr(k8s, name, None)


def check(value, type_name, path, problems):
    if value is None:
        return
    m = re.fullmatch(r"list\[(.+)\]", type_name)
    if m:
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list")
            return
        for i, item in enumerate(value):
            check(item, m.group(1), f"{path}[{i}]", problems)
        return
    m = re.fullmatch(r"dict\(str, (.+)\)", type_name)
    if m:
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a map")
            return
        for key, item in value.items():
            check(item, m.group(1), f"{path}.{key}", problems)
        return
    if type_name in PRIMITIVES:
        expected = PRIMITIVES[type_name]
        if not isinstance(value, expected) or (type_name == "int" and isinstance(value, bool)):
            problems.append(f"{path}: expected {type_name}, got {type(value).__name__} {value!r}")
        return
    if type_name in ("object", "datetime", "date"):
        return
    cls = getattr(k8s, type_name, None)
    if cls is None:
        problems.append(f"{path}: no model {type_name}")
        return
    if type_name == "V1IntOrString" or not getattr(cls, "openapi_types", None):
        return
    if not isinstance(value, dict):
        problems.append(f"{path}: expected an object ({type_name})")
        return
    by_json = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    for key, item in value.items():
        if key not in by_json:
            problems.append(f"{path}.{key}: unknown field of {type_name}")
            continue
        check(item, cls.openapi_types[by_json[key]], f"{path}.{key}", problems)


def check_custom(doc, allowed, where, problems):
    def walk(node, path):
        if isinstance(node, list):
            for item in node:
                walk(item, path + "[]")
            return
        if not isinstance(node, dict) or path not in allowed:
            return
        for key, item in node.items():
            if key not in allowed[path]:
                problems.append(f"{where}: {path}.{key}: unknown field")
            walk(item, f"{path}.{key}")
    walk(doc.get("spec"), "spec")
    for usage in (doc.get("spec") or {}).get("usages", []):
        if usage not in CERT_USAGES:
            problems.append(f"{where}: spec.usages: {usage!r} is not a cert-manager usage")


def main(files):
    problems = []
    count = 0
    for file in files:
        with open(file) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for doc in docs:
            where = f"{file}: {doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
            if not isinstance((doc.get("metadata") or {}).get("name"), str):
                problems.append(f"{where}: metadata.name missing")
            key = (doc.get("apiVersion"), doc.get("kind"))
            if key in CUSTOM:
                check_custom(doc, CUSTOM[key], where, problems)
                count += 1
                continue
            cls = model_class(*key)
            if cls is None:
                problems.append(f"{where}: no Kubernetes model for {key[0]} {key[1]}")
                continue
            found = []
            check(doc, cls.__name__, "", found)
            problems += [f"{where}: {p.lstrip('.')}" for p in found]
            count += 1
    for p in problems:
        print(p)
    print(f"check_manifest_fields: {count} objects, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
