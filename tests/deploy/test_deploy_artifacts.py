#!/usr/bin/python3
"""Static checks of the deployment artifacts (ctest label "deploy"; no Docker engine, no
Kubernetes API): the images' Dockerfiles, docker-compose.yml, the Helm chart and the
manifests rendered from it, and that compose and the chart describe the same cluster.

    test_deploy_artifacts.py CHECK      (CHECK: one of CHECKS below)

Environment: MEDIUS_DEPLOY_TOOLS (helm and node modules, tests/deploy/fetch-deploy-tools.sh),
MEDIUS_BUILD_DIR (for the runtime-packages check: bin/<service>).
"""
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.environ.get("MEDIUS_DEPLOY_TOOLS", os.path.join(ROOT, "build", "deploy-tools"))
HELM = os.path.join(TOOLS, "helm", "helm")
CHART = os.path.join(ROOT, "helm", "medius")
NONDEFAULT = os.path.join(HERE, "helm-values-nondefault.yaml")
SKIP = 77

# The cluster: component -> its gRPC and metrics ports, config file, binary.
COMPONENTS = {
    "registrar": {"grpc": 50051, "metrics": 9101, "file": "registrar.json", "binary": "registrar"},
    "routing": {"grpc": 50052, "metrics": 9102, "file": "routing.json", "binary": "routing"},
    "media-transcoder": {"grpc": 50053, "metrics": 9103, "file": "media.json", "binary": "media-transcoder"},
    "signaling-gateway": {"grpc": 50054, "metrics": 9104, "file": "gateway.json", "binary": "signaling-gateway"},
}
# Prometheus job per component (deploy/prometheus/prometheus.yml).
JOBS = {"registrar": "medius-registrar", "routing": "medius-routing",
        "media-transcoder": "medius-media", "signaling-gateway": "medius-gateway"}
# docker-compose service -> chart component.
COMPOSE_COMPONENT = {
    "kamailio": "kamailio", "gateway-1": "signaling-gateway", "gateway-2": "signaling-gateway",
    "routing": "routing", "registrar-1": "registrar", "registrar-2": "registrar",
    "media-1": "media-transcoder", "media-2": "media-transcoder", "redis": "redis",
}
COMPOSE_ONLY = {"certs", "sip-certs", "prometheus", "grafana"}  # the chart leaves these to the cluster
CERT_SERVICES = {"certs", "sip-certs"}  # one-shot: the others wait for them to complete
# SIP over TLS on the gateways' internal side (internal.tls): the port, and where each
# deployment mounts the certificate files.
SIPS_PORT = 5061

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


def expect(cond, msg):
    if not cond:
        fail(msg)
    return cond


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def helm_env():
    home = tempfile.mkdtemp(prefix="medius-helm-home-")
    env = dict(os.environ, HOME=home, XDG_CACHE_HOME=f"{home}/cache", XDG_CONFIG_HOME=f"{home}/config",
               XDG_DATA_HOME=f"{home}/data", HELM_CACHE_HOME=f"{home}/cache")
    return env


def need_tools():
    if not os.access(HELM, os.X_OK):
        print(f"no helm at {HELM}: run tests/deploy/fetch-deploy-tools.sh {TOOLS} (the deploy_tools test)")
        sys.exit(1)


def helm_template(*args, release="medius", namespace="medius", chart=CHART):
    r = run([HELM, "template", release, chart, "--namespace", namespace, *args], env=helm_env())
    if r.returncode != 0:
        fail(f"helm template {' '.join(args)}: {r.stderr.strip()}")
        return None, []
    return r.stdout, [d for d in yaml.safe_load_all(r.stdout) if d]


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def component(doc):
    return doc["metadata"].get("labels", {}).get("app.kubernetes.io/component")


def config_of(docs, comp):
    """The JSON config file a component's ConfigMap or Secret carries."""
    name = COMPONENTS[comp]["file"]
    for d in docs:
        if d["kind"] in ("ConfigMap", "Secret") and component(d) == comp:
            data = d.get("data") or d.get("stringData") or {}
            if name in data:
                return json.loads(data[name])
    fail(f"no config {name} for {comp}")
    return {}


def volumes(service):
    """A compose service's volumes as dicts (docker-compose 1.29 prints the short form)."""
    out = []
    for v in service.get("volumes", []):
        if isinstance(v, str):
            parts = v.split(":")
            v = {"type": "bind" if parts[0].startswith("/") else "volume", "source": parts[0],
                 "target": parts[1], "read_only": len(parts) > 2 and "ro" in parts[2].split(",")}
        out.append(v)
    return out


def container_env(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


# ---------------------------------------------------------------- checks

def check_helm_lint():
    need_tools()
    for extra in ([], ["-f", NONDEFAULT]):
        r = run([HELM, "lint", "--strict", CHART, *extra], env=helm_env())
        expect(r.returncode == 0, f"helm lint --strict {' '.join(extra)}:\n{r.stdout}{r.stderr}")
    # values.schema.json refuses what it should.
    for bad in (["--set", "media.advertise=nodeName"], ["--set", "redis.enabled=false"],
                ["--set", "surprise=1"], ["--set", "tls.mode=self"], ["--set", "gateway.replicas=0"],
                ["--set", "sipTls.mode=self"], ["--set", "sipTls.surprise=1"],
                ["--set", "sipTls.verifyClientCerts=false", "--set", "sipTls.requireClientCert=true"],
                ["--set", "sipTls.verifyClientCerts=false", "--set", "sipTls.trustedNames={peer.example.com}"],
                ["--set", "sipTls.ipAddresses={sip.example.com}"], ["--set", "sipTls.reloadIntervalSeconds=-1"],
                ["--set", "media.portRange.min=30000", "--set", "media.portRange.max=20000"]):
        r = run([HELM, "template", "x", CHART, *bad], env=helm_env())
        expect(r.returncode != 0, f"helm template {' '.join(bad)} was accepted")


def validate_files(paths):
    env = dict(os.environ, NODE_PATH=os.path.join(TOOLS, "node_modules"))
    r = run(["node", os.path.join(HERE, "validate_manifests.js"), *paths], env=env)
    expect(r.returncode == 0, f"validate_manifests.js:\n{r.stdout}{r.stderr}")
    print(r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr)
    r = run(["/usr/bin/python3", os.path.join(HERE, "check_manifest_fields.py"), *paths])
    expect(r.returncode == 0, f"check_manifest_fields.py:\n{r.stdout}{r.stderr}")
    print(r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr)


def check_rendered_cluster(docs, label, nondefault=False):
    deployments = {component(d): d for d in by_kind(docs, "Deployment")}
    expected = {"kamailio", "signaling-gateway", "routing", "registrar", "media-transcoder"}
    if not nondefault:
        expected.add("redis")
    expect(set(deployments) == expected, f"{label}: Deployments {sorted(deployments)}")
    pdbs = {component(d) for d in by_kind(docs, "PodDisruptionBudget")}
    expect(pdbs >= expected - {"redis"}, f"{label}: PodDisruptionBudgets only for {sorted(pdbs)}")
    services = {d["metadata"]["name"]: d for d in by_kind(docs, "Service")}

    for comp, dep in deployments.items():
        spec = dep["spec"]["template"]["spec"]
        expect(spec.get("securityContext", {}).get("runAsNonRoot") is True, f"{label}: {comp} may run as root")
        for c in spec["containers"]:
            res = c.get("resources", {})
            expect(res.get("requests") and res.get("limits"), f"{label}: {comp}/{c['name']} without requests/limits")
            sc = c.get("securityContext", {})
            expect(sc.get("readOnlyRootFilesystem") and sc.get("allowPrivilegeEscalation") is False,
                   f"{label}: {comp}/{c['name']} securityContext")
        if comp not in COMPONENTS:
            continue
        main = spec["containers"][0]
        port = COMPONENTS[comp]["grpc"]
        probe = main.get("readinessProbe", {}).get("exec", {}).get("command", [])
        expect(probe[:1] == ["medctl"] and f"localhost:{port}" in probe,
               f"{label}: {comp} readiness is not medctl health on {port}: {probe}")
        live = " ".join(main.get("livenessProbe", {}).get("exec", {}).get("command", []))
        expect("NOT_)?SERVING" in live and f"localhost:{port}" in live,
               f"{label}: {comp} liveness must accept a draining (NOT_SERVING) pod: {live}")
        ports = {p["containerPort"] for p in main["ports"]}
        expect({port, COMPONENTS[comp]["metrics"]} <= ports, f"{label}: {comp} container ports {ports}")
        env = container_env(main)
        for k in ("MEDIUS_GRPC_TLS_CA", "MEDIUS_GRPC_TLS_CERT", "MEDIUS_GRPC_TLS_KEY"):
            expect(k in env, f"{label}: {comp} has no {k} (medctl probes need it)")
        cfg = config_of(docs, comp)
        svc = cfg.get("service", {})
        expect(svc.get("grpc_listen") == f"0.0.0.0:{port}", f"{label}: {comp} grpc_listen {svc.get('grpc_listen')}")
        expect(svc.get("metrics_listen") == f"0.0.0.0:{COMPONENTS[comp]['metrics']}", f"{label}: {comp} metrics_listen")
        expect(set(svc.get("grpc_tls", {})) >= {"ca", "cert", "key"}, f"{label}: {comp} without service.grpc_tls")
        mounts = {m["mountPath"] for m in main.get("volumeMounts", [])}
        expect("/etc/medius/tls" in mounts and f"/etc/medius/{COMPONENTS[comp]['file']}" in mounts,
               f"{label}: {comp} mounts {mounts}")
        if comp in ("signaling-gateway", "media-transcoder"):
            drain = int(env.get("MEDIUS_DRAIN_TIMEOUT_SECONDS") or 0)
            grace = spec.get("terminationGracePeriodSeconds", 30)
            expect(drain > 0 and grace > drain, f"{label}: {comp} grace {grace}s not above drain {drain}s")

    # Every called address is a rendered Service with that port.
    def called(address, what):
        host, _, port = address.removeprefix("dns:").rpartition(":")
        s = services.get(host)
        if expect(s is not None, f"{label}: {what} {address}: no Service {host}"):
            expect(int(port) in {p["port"] for p in s["spec"]["ports"]}, f"{label}: {what} {address}: no port {port}")
        return s
    gw = config_of(docs, "signaling-gateway")
    called(gw["registrar"]["address"], "gateway registrar.address")
    called(gw["routing"]["address"], "gateway routing.address")
    expect(len(gw["media"]["workers"]) == 1 and gw["media"]["workers"][0].startswith("dns:"),
           f"{label}: gateway media.workers {gw['media']['workers']}")
    media_svc = called(gw["media"]["workers"][0], "gateway media.workers")
    if media_svc:
        expect(media_svc["spec"].get("clusterIP") == "None" and media_svc["spec"].get("publishNotReadyAddresses"),
               f"{label}: the media workers' Service must be headless and publish not-ready (draining) workers")
    called(config_of(docs, "routing")["registrar"]["address"], "routing registrar.address")
    gw_env = container_env(deployments["signaling-gateway"]["spec"]["template"]["spec"]["containers"][0])
    expect(gw_env.get("MEDIUS_INTERNAL_LISTEN") == "sip:$(POD_IP):5062", f"{label}: gateway internal listen")
    expect(gw_env.get("MEDIUS_TRUNK_LISTEN") == "sip:$(POD_IP):5060", f"{label}: gateway trunk listen")
    media_env = {e["name"]: e for e in deployments["media-transcoder"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    expect("fieldRef" in media_env.get("MEDIUS_MEDIA_ADVERTISED_ADDRESS", {}).get("valueFrom", {}),
           f"{label}: media advertised address not from the downward API")

    # Kamailio's dispatcher list comes from the gateways' headless Service.
    kam = deployments["kamailio"]["spec"]["template"]["spec"]
    sync = [c for c in kam["containers"] + kam.get("initContainers", []) if "dispatcher-sync.sh" in c.get("command", [])]
    expect(len(sync) == 2, f"{label}: kamailio needs dispatcher-sync.sh as init container and sidecar")
    for c in sync:
        host = container_env(c).get("MEDIUS_GATEWAYS_HOST")
        s = services.get(host)
        expect(s is not None and s["spec"].get("clusterIP") == "None" and s["spec"].get("publishNotReadyAddresses"),
               f"{label}: MEDIUS_GATEWAYS_HOST {host} is not the gateways' headless Service")

    # HPA on the media workers.
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    if expect(len(hpas) == 1, f"{label}: {len(hpas)} HPAs"):
        h = hpas[0]["spec"]
        expect(h["scaleTargetRef"]["name"] == deployments["media-transcoder"]["metadata"]["name"], f"{label}: HPA target")
        kinds = {m["type"]: m for m in h["metrics"]}
        expect("Resource" in kinds, f"{label}: HPA without the CPU fallback")
        if not nondefault:
            expect(kinds.get("Pods", {}).get("pods", {}).get("metric", {}).get("name") == "medius_media_load_ratio",
                   f"{label}: HPA without the medius_media_load_ratio Pods metric")
        expect("replicas" not in deployments["media-transcoder"]["spec"], f"{label}: media replicas fight the HPA")

    # Prometheus job names: the Services' medius.io/job label (the ServiceMonitor's jobLabel).
    jobs = {component(s): s["metadata"]["labels"].get("medius.io/job") for s in services.values()
            if s["metadata"]["labels"].get("medius.io/job")}
    expect(jobs == JOBS, f"{label}: job labels {jobs}")
    for sm in by_kind(docs, "ServiceMonitor"):
        expect(sm["spec"]["jobLabel"] == "medius.io/job", f"{label}: ServiceMonitor jobLabel")
    expect(bool(by_kind(docs, "ServiceMonitor")) == nondefault, f"{label}: ServiceMonitor toggle")


def check_generated_certs(docs):
    """tls.mode generate: every component's certificate is signed by the CA and names the
    Service it is called at (what the gRPC clients verify)."""
    services = {component(s): s["metadata"]["name"] for s in by_kind(docs, "Service")}
    secrets = {component(s): s for s in by_kind(docs, "Secret") if s.get("type") == "kubernetes.io/tls"}
    tmp = tempfile.mkdtemp(prefix="medius-chart-certs-")
    try:
        for comp in COMPONENTS:
            s = secrets.get(comp)
            if not expect(s is not None, f"generate: no TLS Secret for {comp}"):
                continue
            files = {}
            for key in ("ca.crt", "tls.crt", "tls.key"):
                files[key] = os.path.join(tmp, f"{comp}-{key}")
                with open(files[key], "wb") as f:
                    f.write(base64.b64decode(s["data"][key]))
            r = run(["openssl", "verify", "-CAfile", files["ca.crt"], files["tls.crt"]])
            expect(r.returncode == 0, f"generate: {comp} certificate not signed by its CA: {r.stdout}{r.stderr}")
            r = run(["openssl", "x509", "-in", files["tls.crt"], "-noout", "-ext", "subjectAltName"])
            sans = r.stdout.strip()
            for name in (services[comp], f"{services[comp]}.medius.svc.cluster.local", "localhost"):
                expect(f"DNS:{name}," in sans + ",", f"generate: {comp} certificate lacks DNS:{name}: {sans}")
            expect("IP Address:127.0.0.1" in sans, f"generate: {comp} certificate lacks 127.0.0.1")
    finally:
        shutil.rmtree(tmp)


def check_notes(values):
    """NOTES.txt renders (helm template skips it: render it as a ConfigMap in a copy)."""
    tmp = tempfile.mkdtemp(prefix="medius-notes-")
    try:
        chart = os.path.join(tmp, "medius")
        shutil.copytree(CHART, chart)
        shutil.copy(os.path.join(chart, "templates", "NOTES.txt"), os.path.join(chart, "files", "NOTES.txt"))
        with open(os.path.join(chart, "templates", "notes-render.yaml"), "w") as f:
            f.write('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: |\n'
                    '{{ tpl (.Files.Get "files/NOTES.txt") . | indent 4 }}\n')
        out, docs = helm_template(*values, "--show-only", "templates/notes-render.yaml", chart=chart)
        if docs:
            notes = docs[0]["data"]["notes"]
            for words in ("Place a first call", "medctl", "kubectl", "SIP over TLS (sips:", "-sip-tls"):
                expect(words in notes, f"NOTES.txt lacks {words!r}")
    finally:
        shutil.rmtree(tmp)


def check_helm_render():
    need_tools()
    tmp = tempfile.mkdtemp(prefix="medius-render-")
    try:
        paths = []
        for label, args in (("default", []), ("nondefault", ["-f", NONDEFAULT]),
                            ("existing", ["-f", os.path.join(ROOT, "deploy", "k8s", "values.yaml")])):
            out, docs = helm_template(*args)
            if out is None:
                continue
            path = os.path.join(tmp, f"{label}.yaml")
            with open(path, "w") as f:
                f.write(out)
            paths.append(path)
            check_rendered_cluster(docs, label, nondefault=(label == "nondefault"))
            check_chart_sip_tls(docs, label)
            if label == "default":
                check_generated_certs(docs)
            if label == "nondefault":
                certs = by_kind(docs, "Certificate")
                grpc = [c for c in certs if c["metadata"]["name"].endswith("-grpc")]
                expect(len(grpc) == 4 and len(certs) == 5, f"certManager: {len(grpc)} gRPC Certificates of {len(certs)}")
            if label == "existing":
                expect(not by_kind(docs, "Secret") or all(s.get("type") != "kubernetes.io/tls" for s in by_kind(docs, "Secret")),
                       "existing: the chart rendered TLS Secrets")
        validate_files(paths + [os.path.join(ROOT, "deploy", "k8s", "medius.yaml")])
        check_notes([])
        check_notes(["-f", NONDEFAULT])
    finally:
        shutil.rmtree(tmp)


def check_k8s_render_current():
    need_tools()
    tmp = tempfile.mkdtemp(prefix="medius-k8s-")
    try:
        out = os.path.join(tmp, "medius.yaml")
        r = run([os.path.join(ROOT, "deploy", "k8s", "render.sh"), HELM, out], env=helm_env())
        if expect(r.returncode == 0, f"render.sh: {r.stderr}"):
            with open(out) as f, open(os.path.join(ROOT, "deploy", "k8s", "medius.yaml")) as g:
                expect(f.read() == g.read(), "deploy/k8s/medius.yaml is stale: run deploy/k8s/render.sh")
    finally:
        shutil.rmtree(tmp)


def compose_doc():
    r = run(["docker-compose", "-f", os.path.join(ROOT, "docker-compose.yml"), "config"], cwd=ROOT)
    if r.returncode != 0:
        fail(f"docker-compose config: {r.stderr}")
        return {}
    return yaml.safe_load(r.stdout)


def check_compose_config():
    r = run(["docker-compose", "-f", "docker-compose.yml", "config", "-q"], cwd=ROOT)
    expect(r.returncode == 0 and not r.stderr.strip(), f"docker-compose config -q: {r.stdout}{r.stderr}")
    doc = compose_doc()
    services = doc.get("services", {})
    expect(set(services) == set(COMPOSE_COMPONENT) | COMPOSE_ONLY, f"compose services {sorted(services)}")
    for name, s in services.items():
        for dep, cond in (s.get("depends_on") or {}).items():
            want = "service_completed_successfully" if dep in CERT_SERVICES else "service_healthy"
            if name != "grafana":
                expect(cond.get("condition") == want, f"compose {name} depends on {dep} with {cond}")
        for vol in volumes(s):
            if vol.get("type") == "bind" and "deploy" in vol.get("source", ""):
                expect(vol.get("read_only"), f"compose {name}: {vol['source']} not read-only")
    expect(doc.get("networks", {}).get("backend", {}).get("internal") is True, "compose backend network not internal")
    for name in ("registrar-1", "registrar-2", "routing", "redis"):
        expect(list(services.get(name, {}).get("networks", {})) == ["backend"], f"compose {name} must sit on backend only")


def check_dockerfile_lint():
    lint = os.path.join(TOOLS, "node_modules", ".bin", "dockerfile-utils")
    if not os.access(lint, os.X_OK):
        need_tools()
    ddir = os.path.join(ROOT, "deploy", "docker")
    files = sorted(f for f in os.listdir(ddir) if f.endswith(".Dockerfile"))
    expect(set(files) == {f"{c}.Dockerfile" for c in COMPONENTS} | {"build.Dockerfile", "kamailio.Dockerfile", "certs.Dockerfile"},
           f"Dockerfiles {files}")
    for f in files:
        path = os.path.join(ddir, f)
        r = run([lint, "lint", path])
        expect(r.returncode == 0 and "Error" not in r.stdout, f"dockerfile-utils lint {f}:\n{r.stdout}{r.stderr}")
        text = open(path).read()
        froms = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.M)
        expect(froms and froms[-1][0] == "debian:bookworm", f"{f}: the final stage is not debian:bookworm")
        if f == "build.Dockerfile":
            continue
        if f == "certs.Dockerfile":
            # Runs as root on purpose: it hands the keys to the services' uid 10001.
            expect('"--owner", "10001:10001"' in text, f"{f}: does not give the files to uid 10001")
            continue
        expect(re.search(r"^USER\s+1000[12]:1000[12]$", text, re.M), f"{f}: no numeric non-root USER")
        comp = f.removesuffix(".Dockerfile")
        if comp in COMPONENTS:
            info = COMPONENTS[comp]
            expect(froms[0] == ("medius-build", "build"), f"{f}: does not start FROM medius-build AS build")
            expect(len(froms) == 2, f"{f}: {len(froms)} stages")
            expect(f'"--target", "localhost:{info["grpc"]}"' in text and "HEALTHCHECK" in text, f"{f}: no medctl health check")
            expose = re.search(r"^EXPOSE\s+(.+)$", text, re.M)
            expect(expose and {str(info["grpc"]), str(info["metrics"])} <= set(expose.group(1).split()), f"{f}: EXPOSE")
            expect(f'ENTRYPOINT ["{info["binary"]}", "--config", "/etc/medius/{info["file"]}"]' in text, f"{f}: ENTRYPOINT")
            expect(f"medius/{comp}:{project_version()}" in text, f"{f}: image name medius/{comp}:{project_version()}")
        elif comp == "kamailio":
            expect("HEALTHCHECK" in text and "EXPOSE 5060/udp 5060/tcp" in text, f"{f}: health check / EXPOSE")


def apt_packages(text):
    """The packages of a Dockerfile's `apt-get install` lines."""
    pkgs = []
    for m in re.finditer(r"apt-get install -y --no-install-recommends(.*?)(?:&&|$)", text, re.S):
        pkgs += [w for w in m.group(1).replace("\\", " ").split() if not w.startswith("-")]
    return pkgs


def check_apt_packages():
    """Every package the images install exists in Debian 12 (apt-cache on this machine), and
    the build image installs every library -dev package ./medius deps does."""
    ddir = os.path.join(ROOT, "deploy", "docker")
    wanted = {}
    for f in sorted(os.listdir(ddir)):
        if f.endswith(".Dockerfile"):
            for p in apt_packages(open(os.path.join(ddir, f)).read()):
                wanted.setdefault(p, []).append(f)
    expect(len(wanted) > 20, f"apt packages parsed: {sorted(wanted)}")
    missing = [p for p in wanted if run(["apt-cache", "show", p]).returncode != 0]
    if len(missing) == len(wanted):
        print("apt-cache knows none of the packages (no package lists: apt-get update)")
        sys.exit(SKIP)
    for p in missing:
        fail(f"{', '.join(wanted[p])}: no Debian package {p}")
    script = open(os.path.join(ROOT, "medius")).read()
    deps = re.search(r"^DEB_PACKAGES=\((.*?)^\)", script, re.S | re.M).group(1).split()
    build = set(apt_packages(open(os.path.join(ddir, "build.Dockerfile")).read()))
    tests_only = {"libgtest-dev", "libgmock-dev", "libbenchmark-dev", "libfuzzer-14-dev"}
    for p in deps:
        if p.endswith("-dev") and p not in tests_only:
            expect(p in build, f"build.Dockerfile lacks {p} (in ./medius's DEB_PACKAGES)")


def project_version():
    m = re.search(r"project\(medius VERSION (\S+)", open(os.path.join(ROOT, "CMakeLists.txt")).read())
    return m.group(1)


def check_runtime_packages():
    """The runtime stage installs the Debian package of every library each binary needs."""
    build = os.environ.get("MEDIUS_BUILD_DIR", os.path.join(ROOT, "build"))
    base = {"libc6", "libgcc-s1"}  # in debian:bookworm itself
    missing_bins = 0
    for comp, info in COMPONENTS.items():
        text = open(os.path.join(ROOT, "deploy", "docker", f"{comp}.Dockerfile")).read()
        install = re.search(r"apt-get install -y --no-install-recommends\s+\\?\s*(.*?)\s*\\?\s*&&\s*rm", text, re.S)
        pkgs = set(install.group(1).replace("\\", " ").split()) if install else set()
        for binary in (info["binary"], "medctl"):
            path = os.path.join(build, "bin", binary)
            if not os.path.exists(path):
                missing_bins += 1
                continue
            r = run(["objdump", "-p", path])
            for lib in re.findall(r"NEEDED\s+(\S+)", r.stdout):
                owner = None
                for d in ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu"):
                    q = run(["dpkg", "-S", os.path.join(d, lib)])
                    if q.returncode == 0:
                        owner = q.stdout.split(":")[0]
                        break
                if expect(owner, f"{binary}: no Debian package owns {lib}"):
                    expect(owner in pkgs | base, f"{comp}.Dockerfile: {binary} needs {lib} from {owner}, not installed")
    if missing_bins == 2 * len(COMPONENTS):
        print(f"no binaries in {build}/bin: nothing to compare")
        sys.exit(SKIP)


def check_certs_script():
    script = os.path.join(ROOT, "deploy", "docker", "gen-grpc-certs.sh")
    tmp = tempfile.mkdtemp(prefix="medius-certs-")
    try:
        r = run([script, tmp])
        expect(r.returncode == 0, f"gen-grpc-certs.sh: {r.stderr}")
        compose = compose_doc().get("services", {})
        for comp, hosts in (("registrar", ["registrar"]), ("routing", ["routing"]),
                            ("media-transcoder", ["media-transcoder"]),
                            ("signaling-gateway", ["gateway-1", "gateway-2"])):
            crt = os.path.join(tmp, comp, "tls.crt")
            r = run(["openssl", "verify", "-CAfile", os.path.join(tmp, "ca.crt"), crt])
            expect(r.returncode == 0, f"{comp}: not signed by the CA")
            sans = run(["openssl", "x509", "-in", crt, "-noout", "-ext", "subjectAltName"]).stdout.strip()
            for h in hosts + ["localhost"]:
                expect(f"DNS:{h}," in sans + ",", f"{comp} certificate lacks DNS:{h}")
            # The compose services of this component read these very files.
            for name, c in COMPOSE_COMPONENT.items():
                if c == comp:
                    env = compose.get(name, {}).get("environment", {})
                    expect(env.get("MEDIUS_GRPC_TLS_CERT") == f"/etc/medius/tls/{comp}/tls.crt",
                           f"compose {name} MEDIUS_GRPC_TLS_CERT {env.get('MEDIUS_GRPC_TLS_CERT')}")
        before = open(os.path.join(tmp, "routing", "tls.crt")).read()
        run([script, tmp])
        expect(open(os.path.join(tmp, "routing", "tls.crt")).read() == before, "gen-grpc-certs.sh is not idempotent")
        kdir = os.path.join(tmp, "k8s")
        r = run([script, "--kubernetes", "medius", "medius", kdir])
        if expect(r.returncode == 0, f"gen-grpc-certs.sh --kubernetes: {r.stderr}"):
            secrets = [d for d in yaml.safe_load_all(r.stdout) if d]
            names = {s["metadata"]["name"] for s in secrets}
            # Exactly the Secrets the rendered deploy/k8s/medius.yaml mounts.
            with open(os.path.join(ROOT, "deploy", "k8s", "medius.yaml")) as f:
                mounted = {v["secret"]["secretName"] for d in yaml.safe_load_all(f) if d and d["kind"] == "Deployment"
                           for v in d["spec"]["template"]["spec"].get("volumes", []) if "secret" in v
                           and "grpc-tls" in v["secret"]["secretName"]}
            expect(names == mounted, f"--kubernetes Secrets {sorted(names)}, deploy/k8s mounts {sorted(mounted)}")
        # dispatcher-sync.sh --once: the list from a DNS name.
        lst = os.path.join(tmp, "dispatcher.list")
        env = dict(os.environ, MEDIUS_GATEWAYS_HOST="localhost", MEDIUS_GATEWAYS_PORT="5062", DISPATCHER_LIST=lst)
        r = run(["sh", os.path.join(ROOT, "deploy", "kamailio", "dispatcher-sync.sh"), "--once"], env=env)
        expect(r.returncode == 0 and "1 sip:127.0.0.1:5062\n" in open(lst).read(), f"dispatcher-sync.sh --once: {r.stderr}")
    finally:
        shutil.rmtree(tmp)


def wiring(cfg):
    """The keys of a config file that wire the cluster, host names taken out."""
    def port(addr):
        return addr.rpartition(":")[2]
    out = {}
    svc = cfg.get("service", {})
    out["grpc_listen"] = svc.get("grpc_listen")
    out["metrics_listen"] = svc.get("metrics_listen")
    out["grpc_tls"] = sorted(svc.get("grpc_tls", {}))
    for key in ("registrar", "routing"):
        if isinstance(cfg.get(key), dict) and "address" in cfg[key]:
            out[f"{key}.address port"] = port(cfg[key]["address"])
    if isinstance(cfg.get("media"), dict) and "workers" in cfg["media"]:
        out["media.workers"] = [w.split(":")[0] + ":" + port(w) for w in cfg["media"]["workers"]]
    if "store" in cfg:
        out["store.type"] = cfg["store"].get("type")
        out["store port"] = port(cfg["store"].get("address", ""))
    if "bind_address" in cfg:
        out["bind_address"] = cfg["bind_address"]
    for key in ("domain",):
        if key in cfg:
            out[key] = cfg[key]
    return out


def policy(routing):
    p = {k: v for k, v in routing.items() if k not in ("service", "registrar", "domain")}
    p = json.loads(json.dumps(p))
    for t in p.get("trunks", []):
        t.pop("address", None)
    return p


def check_consistency():
    """docker-compose.yml and the chart describe the same cluster."""
    need_tools()
    compose = compose_doc().get("services", {})
    _, docs = helm_template()
    deployments = {component(d): d for d in by_kind(docs, "Deployment")}
    version = project_version()
    chart = yaml.safe_load(open(os.path.join(CHART, "Chart.yaml")))
    expect(chart["appVersion"] == version == chart["version"], f"Chart {chart['version']}/{chart['appVersion']}, CMake {version}")

    # Same parts.
    expect(set(COMPOSE_COMPONENT.values()) == set(deployments), f"compose parts vs chart {sorted(deployments)}")
    for name, comp in COMPOSE_COMPONENT.items():
        s = compose.get(name)
        if not expect(s is not None, f"compose has no {name}"):
            continue
        main = deployments[comp]["spec"]["template"]["spec"]["containers"][0]
        if comp != "redis":
            expect(s["image"] == main["image"] == f"medius/{comp}:{version}", f"{name}: image {s['image']} vs chart {main['image']}")
        else:
            expect(s["image"] == main["image"], f"redis image {s['image']} vs {main['image']}")
        if comp not in COMPONENTS:
            continue
        # Same environment names (the chart adds only its log settings and POD_IP).
        cenv = {k for k in s.get("environment", {}) if k.startswith("MEDIUS_")}
        kenv = {e["name"] for e in main.get("env", []) if e["name"].startswith("MEDIUS_")} - {"MEDIUS_LOG_LEVEL", "MEDIUS_LOG_FORMAT"}
        expect(cenv == kenv, f"{name}: env compose-only {sorted(cenv - kenv)}, chart-only {sorted(kenv - cenv)}")
        # Same config file, same wiring keys.
        mount = [v for v in volumes(s) if v.get("target") == f"/etc/medius/{COMPONENTS[comp]['file']}"]
        if expect(mount, f"{name}: /etc/medius/{COMPONENTS[comp]['file']} not mounted"):
            ccfg = json.load(open(mount[0]["source"]))
            kcfg = config_of(docs, comp)
            expect(wiring(ccfg) == wiring(kcfg), f"{name}: wiring differs:\n compose {wiring(ccfg)}\n chart   {wiring(kcfg)}")
            expect(set(ccfg) >= set(kcfg),
                   f"{name}: chart config keys {sorted(set(kcfg) - set(ccfg))} not in compose")

    # Same routing policy and users as the reference topology.
    ref = json.load(open(os.path.join(ROOT, "examples", "local", "routing.json")))
    crouting = json.load(open(os.path.join(ROOT, "deploy", "compose", "routing.json")))
    kpolicy = json.load(open(os.path.join(CHART, "files", "routing-policy.json")))
    expect(policy(crouting) == policy(ref) == policy(kpolicy), "routing policy: compose, chart and examples/local differ")
    values = yaml.safe_load(open(os.path.join(CHART, "values.yaml")))
    creg = json.load(open(os.path.join(ROOT, "deploy", "compose", "registrar.json")))
    expect(creg["users"] == values["registrar"]["users"], "registrar users: compose and chart differ")
    expect(creg["domain"] == values["domain"] == crouting["domain"], "domain differs")

    # Same SIP entry: Kamailio on 5060 in front of the gateways' internal side 5062.
    kam_svc = [s for s in by_kind(docs, "Service") if component(s) == "kamailio"][0]
    expect({p["port"] for p in kam_svc["spec"]["ports"]} == {5060}, "chart Kamailio Service port")
    published = {int(str(p).split("/")[0].rpartition(":")[2]) if isinstance(p, str) else p["target"]
                 for p in compose["kamailio"]["ports"]}
    expect(published == {5060}, f"compose Kamailio ports {published}")
    kam = deployments["kamailio"]["spec"]["template"]["spec"]
    sync_port = container_env(kam["containers"][1]).get("MEDIUS_GATEWAYS_PORT")
    listed = re.findall(r"^1 sip:[\d.]+:(\d+)$", open(os.path.join(ROOT, "deploy", "compose", "dispatcher.list")).read(), re.M)
    expect(listed and set(listed) == {sync_port}, f"dispatcher ports compose {listed}, chart {sync_port}")
    for name in ("gateway-1", "gateway-2"):
        env = compose["gateway-1" if name == "gateway-1" else name]["environment"]
        expect(env["MEDIUS_INTERNAL_LISTEN"].endswith(":5062") and env["MEDIUS_TRUNK_LISTEN"].endswith(":5060"),
               f"compose {name} listen ports")
        ip = env["MEDIUS_INTERNAL_LISTEN"].removeprefix("sip:").rpartition(":")[0]
        expect(f"1 sip:{ip}:5062" in open(os.path.join(ROOT, "deploy", "compose", "dispatcher.list")).read(),
               f"compose {name} ({ip}) not in the dispatcher list")

    # Same scrape jobs and metrics ports.
    def jobs(path):
        conf = yaml.safe_load(open(path))
        return {j["job_name"]: {t.rpartition(":")[2] for sc in j["static_configs"] for t in sc["targets"]}
                for j in conf["scrape_configs"]}
    ref_jobs = jobs(os.path.join(ROOT, "deploy", "prometheus", "prometheus.yml"))
    expect(jobs(os.path.join(ROOT, "deploy", "compose", "prometheus.yml")) == ref_jobs, "compose Prometheus jobs differ")
    for comp, job in JOBS.items():
        expect(ref_jobs.get(job) == {str(COMPONENTS[comp]["metrics"])}, f"job {job} port")

    # Draining: both give the gateways and workers more time than their drain limit.
    def secs(v):
        m = re.fullmatch(r"(\d+)(s|m)", str(v))
        return int(m.group(1)) * (60 if m.group(2) == "m" else 1) if m else 10
    for name in ("gateway-1", "gateway-2", "media-1", "media-2"):
        s = compose[name]
        drain = int(s["environment"].get("MEDIUS_DRAIN_TIMEOUT_SECONDS", 0))
        expect(0 < drain < secs(s.get("stop_grace_period", "10s")), f"compose {name}: stop_grace_period vs drain {drain}")


def free_port(host):
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.bind((host, 0))
        return u.getsockname()[1]


def check_kamailio_sync():
    """The chart's Kamailio arguments and dispatcher-sync.sh, for real: Kamailio started with
    the rendered Deployment's args (the pod address and /run/kamailio replaced by a loopback
    address and a temporary directory), the init container's `--once`, then the sidecar
    loop, which must see the gateways' name resolve and get Kamailio to reload its list."""
    import time
    need_tools()
    kamailio, kamcmd = shutil.which("kamailio"), shutil.which("kamcmd")
    if not (kamailio and kamcmd):
        print("no kamailio/kamcmd")
        sys.exit(1)
    _, docs = helm_template()
    dep = [d for d in by_kind(docs, "Deployment") if component(d) == "kamailio"][0]["spec"]["template"]["spec"]
    tmp = tempfile.mkdtemp(prefix="medius-kamailio-")
    procs = []
    try:
        addr, port = "127.0.0.57", free_port("127.0.0.57")
        args = [a.replace("$(POD_IP)", addr).replace("/run/kamailio", tmp) for a in dep["containers"][0]["args"]]
        args = [f"LB_PORT={port}" if a == "LB_PORT=5060" else a for a in args]
        image = open(os.path.join(ROOT, "deploy", "docker", "kamailio.Dockerfile")).read()
        entry = json.loads(re.search(r"^ENTRYPOINT (\[.*?\])$", image, re.M | re.S).group(1).replace("\\\n", ""))
        entry = [a.replace("/etc/kamailio/medius/kamailio.cfg", os.path.join(ROOT, "deploy", "kamailio", "kamailio.cfg"))
                  .replace("/run/kamailio", tmp) for a in entry]
        ctl = f"unix:{tmp}/kamailio_ctl"
        env = dict(os.environ, MEDIUS_GATEWAYS_HOST="localhost", MEDIUS_GATEWAYS_PORT="5062",
                   DISPATCHER_LIST=f"{tmp}/dispatcher.list", CTL_SOCKET=ctl, SYNC_INTERVAL_SECONDS="1")
        sync_env = {e["name"]: e["value"] for e in dep["initContainers"][0]["env"]}
        expect(sync_env.get("DISPATCHER_LIST") == "/run/kamailio/dispatcher.list" and sync_env.get("CTL_SOCKET") ==
               "unix:/run/kamailio/kamailio_ctl", f"the sidecar's paths differ from Kamailio's: {sync_env}")
        script = os.path.join(ROOT, "deploy", "kamailio", "dispatcher-sync.sh")
        # The init container: a list before Kamailio starts. Here "localhost" plays the
        # headless Service and resolves to 127.0.0.1 (no SIP is sent but Kamailio's probes).
        r = run(["sh", script, "--once"], env=env)
        expect(r.returncode == 0, f"dispatcher-sync.sh --once: {r.stderr}")
        with open(f"{tmp}/dispatcher.list", "w") as f:
            f.write("1 sip:127.0.0.2:5062\n")  # a stale list, which the sidecar must replace
        log = open(f"{tmp}/kamailio.log", "w")
        procs.append(subprocess.Popen(entry + args, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.time() + 10
        while time.time() < deadline and run([kamcmd, "-s", ctl, "core.uptime"]).returncode != 0:
            time.sleep(0.2)
        if not expect(run([kamcmd, "-s", ctl, "core.uptime"]).returncode == 0,
                      f"Kamailio with the chart's args did not start: {open(f'{tmp}/kamailio.log').read()[-2000:]}"):
            return
        procs.append(subprocess.Popen(["sh", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        listed = ""
        deadline = time.time() + 15
        while time.time() < deadline:
            listed = run([kamcmd, "-s", ctl, "dispatcher.list"]).stdout
            if "sip:127.0.0.1:5062" in listed and "127.0.0.2" not in listed:
                break
            time.sleep(0.5)
        expect("sip:127.0.0.1:5062" in listed and "127.0.0.2" not in listed,
               f"the sidecar did not get Kamailio to load the resolved list: {listed}")
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def gateway_binary():
    build = os.environ.get("MEDIUS_BUILD_DIR", os.path.join(ROOT, "build"))
    path = os.path.join(build, "bin", "signaling-gateway")
    return path if os.access(path, os.X_OK) else None


def localize(cfg, mounts):
    """cfg with every path under a container directory of `mounts` ({container dir: local
    dir}) moved to the local copy of that directory."""
    def walk(v):
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, str):
            for inside, local in mounts.items():
                if v.startswith(inside.rstrip("/") + "/"):
                    return os.path.join(local, v[len(inside.rstrip("/")) + 1:])
        return v
    return walk(json.loads(json.dumps(cfg)))


def under(path, dirs):
    """The directory of `dirs` that holds `path`, or None."""
    for d in dirs:
        if path.startswith(d.rstrip("/") + "/"):
            return d
    return None


def write_secret(secret, directory):
    """A rendered Secret's files, as the kubelet writes them into a mounted directory."""
    os.makedirs(directory, exist_ok=True)
    for key, value in (secret.get("data") or {}).items():
        with open(os.path.join(directory, key), "wb") as f:
            f.write(base64.b64decode(value))


def gateway_check_config(cfg, env, label, tmp):
    """`signaling-gateway --check-config` on cfg (already localized) with env: what the
    gateway would say at start, without listening. Returns True when it was run."""
    binary = gateway_binary()
    if not binary:
        return False
    path = os.path.join(tmp, f"{label}-gateway.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MEDIUS_")}
    r = run([binary, "--config", path, "--check-config"], env=dict(clean, **env), timeout=30)
    expect(r.returncode == 0 and r.stdout.startswith("config ok: ") and "TLS sips:" in r.stdout,
           f"{label}: signaling-gateway --check-config refused the gateway config (exit {r.returncode}): "
           f"{r.stdout}{r.stderr}")
    return True


def cert_sans(path):
    out = run(["openssl", "x509", "-in", path, "-noout", "-ext", "subjectAltName"]).stdout
    return {n.strip().replace("IP Address:", "IP:") for n in out.split("\n", 1)[-1].split(",") if n.strip()}


def check_chart_sip_tls(docs, label):
    """The chart turns on the gateways' SIP over TLS (internal.tls): its files come from a
    Secret mounted as a directory (no subPath: renewals reach the pod), the container
    serves 5061 and a Service carries TCP 5061 to the gateway pods, the listen address is
    the pod's; generated certificates are signed by their CA and name the domain and the
    Service."""
    gw = config_of(docs, "signaling-gateway")
    tls = gw.get("internal", {}).get("tls")
    if not expect(tls, f"{label}: the gateway config has no internal.tls"):
        return
    dep = [d for d in by_kind(docs, "Deployment") if component(d) == "signaling-gateway"][0]
    spec = dep["spec"]["template"]["spec"]
    main = spec["containers"][0]
    mounts = {m["mountPath"]: m for m in main.get("volumeMounts", [])}
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    files = {k: tls.get(k) for k in ("cert", "key", "ca") if tls.get(k)}
    expect({"cert", "key"} <= set(files), f"{label}: internal.tls without cert/key: {tls}")
    secret_name = None
    for key, path in files.items():
        d = under(path, mounts)
        if not expect(d, f"{label}: internal.tls.{key} {path} is not in a mounted directory {sorted(mounts)}"):
            continue
        m = mounts[d]
        expect("subPath" not in m and m.get("readOnly"), f"{label}: {d} must be a read-only directory mount (no subPath)")
        vol = vols.get(m["name"], {})
        if expect("secret" in vol, f"{label}: {d} is not a Secret volume"):
            secret_name = vol["secret"]["secretName"]
            items = vol["secret"].get("items")
            expect(not items or os.path.basename(path) in {i["path"] for i in items},
                   f"{label}: {path} not among the Secret's items")
            expect(os.path.basename(path) in ("tls.crt", "tls.key", "ca.crt"),
                   f"{label}: {path} is not a kubernetes.io/tls Secret key")
    ports = {p.get("name"): p for p in main["ports"]}
    expect(ports.get("sips", {}).get("containerPort") == SIPS_PORT and ports["sips"].get("protocol") == "TCP",
           f"{label}: the gateway container does not declare TCP {SIPS_PORT} (sips)")
    env = container_env(main)
    expect(env.get("MEDIUS_INTERNAL_TLS_LISTEN") == f"sips:$(POD_IP):{SIPS_PORT}",
           f"{label}: MEDIUS_INTERNAL_TLS_LISTEN {env.get('MEDIUS_INTERNAL_TLS_LISTEN')}")
    selector = dep["spec"]["selector"]["matchLabels"]
    tls_services = [s for s in by_kind(docs, "Service")
                    if s["spec"].get("selector") == selector and s["spec"].get("clusterIP") != "None"
                    and any(p.get("targetPort") in ("sips", SIPS_PORT) for p in s["spec"]["ports"])]
    if expect(len(tls_services) == 1, f"{label}: {len(tls_services)} Services carry sips to the gateways"):
        svc = tls_services[0]["spec"]
        expect([(p["protocol"], p["targetPort"]) for p in svc["ports"]] == [("TCP", "sips")],
               f"{label}: the SIP TLS Service's ports {svc['ports']}")
        if svc.get("type") in ("LoadBalancer", "NodePort"):
            expect(svc.get("externalTrafficPolicy") == "Local",
                   f"{label}: the SIP TLS Service hides the clients' addresses")
    # Where the Secret comes from.
    mode = "existing"
    if any(s["metadata"]["name"] == secret_name for s in by_kind(docs, "Secret")):
        mode = "generate"
    elif any(c["spec"]["secretName"] == secret_name for c in by_kind(docs, "Certificate")):
        mode = "certManager"
    expect(mode == {"default": "generate", "nondefault": "certManager", "existing": "existing"}.get(label, mode),
           f"{label}: the SIP TLS Secret {secret_name} comes from {mode}")
    if mode == "existing":
        expect(secret_name == "medius-sip-tls", f"{label}: SIP TLS Secret {secret_name}")
    if mode == "certManager":
        cert = [c for c in by_kind(docs, "Certificate") if c["spec"]["secretName"] == secret_name][0]["spec"]
        expect("example.com" in cert["dnsNames"] and "sip.example.com" in cert["dnsNames"],
               f"{label}: SIP Certificate names {cert['dnsNames']}")
        expect(tls.get("require_client_cert") is True and tls.get("trusted_names") == ["pbx.example.com"],
               f"{label}: sipTls.requireClientCert/trustedNames not in the config: {tls}")
    if mode == "generate":
        secret = [s for s in by_kind(docs, "Secret") if s["metadata"]["name"] == secret_name][0]
        tmp = tempfile.mkdtemp(prefix="medius-chart-sip-")
        try:
            write_secret(secret, tmp)
            r = run(["openssl", "verify", "-CAfile", os.path.join(tmp, "ca.crt"), os.path.join(tmp, "tls.crt")])
            expect(r.returncode == 0, f"{label}: SIP certificate not signed by its CA: {r.stdout}{r.stderr}")
            sans = cert_sans(os.path.join(tmp, "tls.crt"))
            host = tls_services[0]["metadata"]["name"] if tls_services else "?"
            for name in ("DNS:example.com", f"DNS:{host}", f"DNS:{host}.medius.svc.cluster.local", "IP:127.0.0.1"):
                expect(name in sans, f"{label}: SIP certificate lacks {name}: {sorted(sans)}")
        finally:
            shutil.rmtree(tmp)


def chart_gateway_check(docs, label, tmp):
    """The chart's gateway config, with the files of the Secrets it mounts (generate mode),
    through the gateway's own loader (--check-config)."""
    dep = [d for d in by_kind(docs, "Deployment") if component(d) == "signaling-gateway"][0]
    spec = dep["spec"]["template"]["spec"]
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    secrets = {s["metadata"]["name"]: s for s in by_kind(docs, "Secret")}
    local = {}
    for m in spec["containers"][0].get("volumeMounts", []):
        secret = vols.get(m["name"], {}).get("secret", {}).get("secretName")
        if secret in secrets:
            local[m["mountPath"]] = os.path.join(tmp, label, m["name"])
            write_secret(secrets[secret], local[m["mountPath"]])
    env = {k: v.replace("$(POD_IP)", "127.0.0.1") for k, v in container_env(spec["containers"][0]).items()
           if k.startswith("MEDIUS_") and v is not None}
    env = localize(env, local)
    return gateway_check_config(localize(config_of(docs, "signaling-gateway"), local), env, label, tmp)


def check_sip_tls():
    """docker-compose and the chart turn on the gateways' SIP over TLS, with certificates
    that exist in the container and name what clients connect to, on a port clients reach,
    and configs the gateway's own loader accepts (signaling-gateway --check-config)."""
    need_tools()
    tmp = tempfile.mkdtemp(prefix="medius-sip-tls-")
    checked = 0
    try:
        # ---- docker-compose
        doc = compose_doc()
        services = doc.get("services", {})
        gen = services.get("sip-certs", {})
        vol_dirs = {}  # named volume -> local directory with what its one-shot service writes
        grpc_dir = os.path.join(tmp, "compose-grpc")
        r = run([os.path.join(ROOT, "deploy", "docker", "gen-grpc-certs.sh"), grpc_dir])
        expect(r.returncode == 0, f"gen-grpc-certs.sh: {r.stderr}")
        vol_dirs["grpc-tls"] = grpc_dir
        entry = gen.get("entrypoint") or []
        command = gen.get("command") or []
        expect(entry[:1] == ["make-certs.sh"], f"compose sip-certs does not run make-certs.sh: {entry}")
        gen_vols = {v["target"]: v["source"] for v in volumes(gen)}
        out_dir = command[0] if command else ""
        sip_volume = gen_vols.get(out_dir)
        expect(sip_volume, f"compose sip-certs writes {out_dir}, which is no volume: {gen_vols}")
        sip_dir = os.path.join(tmp, "compose-sip")
        args = [a for a in entry[1:] + command[1:]]
        if "--owner" in args:  # the test need not own the files as uid 10001
            i = args.index("--owner")
            del args[i:i + 2]
        r = run(["bash", os.path.join(ROOT, "deploy", "certs", "make-certs.sh"), sip_dir, *args])
        expect(r.returncode == 0, f"make-certs.sh {' '.join(args)}: {r.stdout}{r.stderr}")
        vol_dirs[sip_volume] = sip_dir
        dockerfile = open(os.path.join(ROOT, "deploy", "docker", "signaling-gateway.Dockerfile")).read()
        expose = re.search(r"^EXPOSE\s+(.+)$", dockerfile, re.M)
        expect(expose and f"{SIPS_PORT}/tcp" in expose.group(1).split(), "signaling-gateway.Dockerfile does not EXPOSE 5061/tcp")
        published = set()
        for name in ("gateway-1", "gateway-2"):
            s = services.get(name, {})
            expect(s.get("depends_on", {}).get("sip-certs", {}).get("condition") == "service_completed_successfully",
                   f"compose {name} does not wait for sip-certs")
            mount = [v for v in volumes(s) if v.get("target") == "/etc/medius/gateway.json"]
            if not expect(mount, f"compose {name}: no gateway.json"):
                continue
            cfg = json.load(open(mount[0]["source"]))
            tls = cfg.get("internal", {}).get("tls")
            if not expect(tls, f"compose {name}: gateway.json has no internal.tls"):
                continue
            mounted = {v["target"]: v for v in volumes(s) if v.get("type") == "volume"}
            local = {}
            for key in ("cert", "key", "ca"):
                path = tls.get(key, "")
                d = under(path, mounted)
                if expect(d, f"compose {name}: internal.tls.{key} {path} is not in a mounted volume {sorted(mounted)}"):
                    src = mounted[d]["source"]
                    expect(mounted[d].get("read_only"), f"compose {name}: {d} not read-only")
                    if expect(src in vol_dirs, f"compose {name}: {d} is volume {src}, which no one-shot service fills"):
                        local[d] = vol_dirs[src]
                        expect(os.path.exists(os.path.join(local[d], path[len(d) + 1:])),
                               f"compose {name}: internal.tls.{key} {path}: the certs service writes no such file")
            for d, v in mounted.items():
                if v["source"] in vol_dirs:
                    local[d] = vol_dirs[v["source"]]
            env = {k: str(v) for k, v in (s.get("environment") or {}).items() if k.startswith("MEDIUS_")}
            ip = (s.get("networks", {}).get("sip") or {}).get("ipv4_address")
            expect(env.get("MEDIUS_INTERNAL_TLS_LISTEN") == f"sips:{ip}:{SIPS_PORT}",
                   f"compose {name}: MEDIUS_INTERNAL_TLS_LISTEN {env.get('MEDIUS_INTERNAL_TLS_LISTEN')}, its address {ip}")
            sans = cert_sans(os.path.join(sip_dir, "gateway.pem"))
            expect(f"IP:{ip}" in sans and "DNS:example.com" in sans,
                   f"compose {name}: the SIP certificate does not name {ip}: {sorted(sans)}")
            ports = [p for p in s.get("ports", []) if (p.get("target") if isinstance(p, dict) else
                     int(str(p).split("/")[0].rpartition(":")[2])) == SIPS_PORT]
            if expect(ports, f"compose {name}: {SIPS_PORT}/tcp not published"):
                p = ports[0]
                host = p.get("host_ip") if isinstance(p, dict) else str(p).split(":")[0]
                expect(f"IP:{host}" in sans, f"compose {name}: published on {host}, which the certificate does not name")
                published.add(str(p.get("published")) if isinstance(p, dict) else str(p).split(":")[1])
            r = run(["openssl", "verify", "-CAfile", os.path.join(sip_dir, "ca.pem"), os.path.join(sip_dir, "gateway.pem")])
            expect(r.returncode == 0, f"compose: the SIP certificate is not signed by ca.pem: {r.stdout}{r.stderr}")
            env = localize(env, local)
            checked += gateway_check_config(localize(cfg, local), env, f"compose-{name}", tmp)
        expect(len(published) == 2, f"compose: the gateways' {SIPS_PORT} published on {published}")

        # ---- the chart: generate (default), existing (deploy/k8s) and off
        _, docs = helm_template()
        if docs:
            check_chart_sip_tls(docs, "default")
            checked += chart_gateway_check(docs, "default", tmp)
        _, docs = helm_template("--set", "sipTls.enabled=false")
        if docs:
            gw = config_of(docs, "signaling-gateway")
            expect("tls" not in gw.get("internal", {}), "sipTls.enabled=false: the gateway config still has internal.tls")
            expect(not [s for s in by_kind(docs, "Service") if component(s) == "sip-tls"],
                   "sipTls.enabled=false: the SIP TLS Service is still rendered")
        with open(os.path.join(ROOT, "deploy", "k8s", "medius.yaml")) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        check_chart_sip_tls(docs, "existing")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not checked and not failures:
        print("no signaling-gateway binary: the configs were not put through --check-config")
        sys.exit(SKIP)
    expect(checked == 3, f"--check-config ran on {checked} of 3 gateway configs")


def check_configs_load():
    """Every config file compose mounts and the chart renders is one the services accept
    (unknown keys, bad values and TLS settings are config errors: exit 2 naming the file).
    Each binary of the build starts on loopback with the file, certificates from
    gen-grpc-certs.sh and free ports given through its MEDIUS_* variables; a config error
    shows within a second, a good file leaves it running (it is then stopped)."""
    import time
    build = os.environ.get("MEDIUS_BUILD_DIR", os.path.join(ROOT, "build"))
    if not all(os.path.exists(os.path.join(build, "bin", c["binary"])) for c in COMPONENTS.values()):
        print(f"no service binaries in {build}/bin: nothing to start")
        sys.exit(SKIP)
    need_tools()
    _, docs = helm_template()
    tmp = tempfile.mkdtemp(prefix="medius-configs-")
    try:
        certs = os.path.join(tmp, "tls")
        r = run([os.path.join(ROOT, "deploy", "docker", "gen-grpc-certs.sh"), certs])
        expect(r.returncode == 0, f"gen-grpc-certs.sh: {r.stderr}")
        sip = os.path.join(tmp, "sip-tls")
        r = run(["bash", os.path.join(ROOT, "deploy", "certs", "make-certs.sh"), sip])
        expect(r.returncode == 0, f"make-certs.sh: {r.stderr}")
        for origin in ("compose", "chart"):
            for comp, info in COMPONENTS.items():
                if origin == "compose":
                    cfg = json.load(open(os.path.join(ROOT, "deploy", "compose", info["file"])))
                else:
                    cfg = config_of(docs, comp)
                tls = cfg["service"]["grpc_tls"]
                for key, name in (("ca", "ca.crt"), ("cert", "tls.crt"), ("key", "tls.key")):
                    tls[key] = os.path.join(certs, comp, name)
                sip_tls = cfg.get("internal", {}).get("tls")
                if sip_tls:  # SIP over TLS: the lab certificates (sip-tls checks the real ones)
                    for key, name in (("ca", "ca.pem"), ("cert", "gateway.pem"), ("key", "gateway.key")):
                        if key in sip_tls:
                            sip_tls[key] = os.path.join(sip, name)
                path = os.path.join(tmp, f"{origin}-{info['file']}")
                with open(path, "w") as f:
                    json.dump(cfg, f)
                host = "127.0.0.58"
                env = dict(os.environ, MEDIUS_GRPC_LISTEN=f"{host}:{free_port(host)}",
                           MEDIUS_METRICS_LISTEN=f"{host}:{free_port(host)}",
                           MEDIUS_REDIS_ADDRESS=f"{host}:{free_port(host)}",
                           MEDIUS_MEDIA_BIND_ADDRESS=host, MEDIUS_MEDIA_ADVERTISED_ADDRESS=host,
                           MEDIUS_INTERNAL_LISTEN=f"sip:{host}:{free_port(host)}",
                           MEDIUS_TRUNK_LISTEN=f"sip:{host}:{free_port(host)}",
                           MEDIUS_INTERNAL_TLS_LISTEN=f"sips:{host}:{free_port(host)}",
                           MEDIUS_GATEWAY_ID="gw-test")
                log = os.path.join(tmp, f"{origin}-{comp}.log")
                with open(log, "w") as out:
                    p = subprocess.Popen([os.path.join(build, "bin", info["binary"]), "--config", path],
                                         env=env, stdout=out, stderr=subprocess.STDOUT)
                deadline = time.time() + 1.5
                while time.time() < deadline and p.poll() is None:
                    time.sleep(0.1)
                if p.poll() is None:
                    p.terminate()
                    try:
                        p.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()
                    continue
                text = open(log).read()
                expect(p.returncode != 2 and "config error" not in text,
                       f"{origin} {info['file']}: {info['binary']} refused it (exit {p.returncode}): {text[-600:]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


CHECKS = {
    "apt-packages": check_apt_packages,
    "configs-load": check_configs_load,
    "kamailio-sync": check_kamailio_sync,
    "helm-lint": check_helm_lint,
    "helm-render": check_helm_render,
    "k8s-render-current": check_k8s_render_current,
    "compose-config": check_compose_config,
    "dockerfile-lint": check_dockerfile_lint,
    "runtime-packages": check_runtime_packages,
    "certs-scripts": check_certs_script,
    "consistency": check_consistency,
    "sip-tls": check_sip_tls,
}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in CHECKS:
        sys.exit(f"usage: test_deploy_artifacts.py {{{','.join(CHECKS)}}}")
    CHECKS[sys.argv[1]]()
    print(f"{sys.argv[1]}: {len(failures)} failures")
    sys.exit(1 if failures else 0)
