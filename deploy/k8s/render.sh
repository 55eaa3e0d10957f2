#!/bin/sh
# Renders helm/medius into deploy/k8s/medius.yaml: the same cluster as plain manifests, for
# `kubectl apply` without Helm. tests/deploy checks that the committed file is up to date.
#
#   deploy/k8s/render.sh [HELM [OUT]]   (HELM: a helm binary, default `helm` on PATH;
#                                        OUT: default deploy/k8s/medius.yaml)
#
# Before applying it, create the namespace, the gRPC TLS Secrets it mounts (docs/deploy.md,
# "gRPC TLS material") and the gateways' SIP over TLS Secret medius-sip-tls (docs/deploy.md,
# "SIP over TLS"):
#   kubectl create namespace medius
#   deploy/docker/gen-grpc-certs.sh --kubernetes medius medius tls/ | kubectl apply -f -
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
helm="${1:-helm}"
out="${2:-$here/medius.yaml}"
{
  echo "# Rendered from helm/medius by deploy/k8s/render.sh with deploy/k8s/values.yaml: do not edit."
  "$helm" template medius "$here/../../helm/medius" --namespace medius -f "$here/values.yaml"
} > "$out.tmp"
mv "$out.tmp" "$out"
