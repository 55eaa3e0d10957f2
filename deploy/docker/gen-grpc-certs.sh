#!/bin/sh
# Mutual-TLS material for gRPC between the Medius services: one cluster CA and one
# certificate per component, whose subjectAltNames name the addresses it is called at.
#
#   gen-grpc-certs.sh [--owner UID:GID] [--days N] OUTDIR [NAME=SAN,SAN,... ...]
#   gen-grpc-certs.sh --kubernetes RELEASE NAMESPACE [--secret-prefix P] [--cluster-domain D] OUTDIR
#
# Writes OUTDIR/ca.crt (+ ca.key) and, per NAME, OUTDIR/NAME/{ca.crt,tls.crt,tls.key}
# (the layout every service mounts at /etc/medius/tls and Kubernetes' kubernetes.io/tls
# Secrets use). A SAN is a DNS name, or an IPv4 address. localhost and 127.0.0.1 are added to
# every certificate: the health check (medctl health --target localhost:PORT) verifies them.
# Without NAME arguments: docker-compose.yml's components (registrar, routing,
# media-transcoder, signaling-gateway) and a client certificate for medctl.
#
# --kubernetes: the Helm chart's components (helm/medius, or deploy/k8s/medius.yaml) for a
# release in a namespace (names <release>-medius-..., or <release>-... when the release name
# contains "medius"), each SAN in its four Kubernetes forms; then prints one kubernetes.io/tls
# Secret per component, <secret-prefix>-<component> (default medius-grpc-tls: the chart's
# tls.mode=existing), on stdout for `kubectl -n NAMESPACE apply -f -`.
#
# Idempotent: an existing CA and existing certificates are kept (delete OUTDIR to renew), so
# docker-compose's one-shot `certs` service can run at every `up`. Needs the openssl CLI.
set -eu

owner=""
days=825
k8s_release=""
k8s_namespace=""
secret_prefix="medius-grpc-tls"
cluster_domain="cluster.local"
while [ $# -gt 0 ]; do
  case "$1" in
    --owner) owner="$2"; shift 2 ;;
    --days) days="$2"; shift 2 ;;
    --kubernetes) k8s_release="$2"; k8s_namespace="$3"; shift 3 ;;
    --secret-prefix) secret_prefix="$2"; shift 2 ;;
    --cluster-domain) cluster_domain="$2"; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    --) shift; break ;;
    -*) echo "gen-grpc-certs.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || { echo "usage: gen-grpc-certs.sh [--owner UID:GID] [--days N] OUTDIR [NAME=SAN,...]" >&2; exit 2; }
out="$1"; shift
command -v openssl >/dev/null 2>&1 || { echo "gen-grpc-certs.sh: the openssl CLI is missing" >&2; exit 1; }

k8s_names() {  # host -> its four names in the namespace
  printf '%s,%s.%s,%s.%s.svc,%s.%s.svc.%s' "$1" "$1" "$k8s_namespace" "$1" "$k8s_namespace" \
    "$1" "$k8s_namespace" "$cluster_domain"
}
if [ -n "$k8s_release" ]; then
  # The chart's medius.fullname: the release name when it contains "medius".
  case "$k8s_release" in
    *medius*) full="$k8s_release" ;;
    *) full="$k8s_release-medius" ;;
  esac
  set -- registrar="$(k8s_names "$full-registrar")" \
         routing="$(k8s_names "$full-routing")" \
         media-transcoder="$(k8s_names "$full-media-transcoder-headless")" \
         signaling-gateway="$(k8s_names "$full-signaling-gateway-headless")"
elif [ $# -eq 0 ]; then
  # docker-compose.yml: the service names and network aliases the services call each other by.
  set -- registrar=registrar,registrar-1,registrar-2 \
         routing=routing \
         media-transcoder=media-transcoder,media-1,media-2 \
         signaling-gateway=signaling-gateway,gateway-1,gateway-2 \
         medctl=medctl
fi

umask 077
mkdir -p "$out"
if [ ! -s "$out/ca.crt" ] || [ ! -s "$out/ca.key" ]; then
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$out/ca.key" -out "$out/ca.crt" -days "$days" -subj "/CN=Medius gRPC CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null
  echo "gen-grpc-certs.sh: new CA $out/ca.crt" >&2
fi

for spec in "$@"; do
  name="${spec%%=*}"
  sans="${spec#*=}"
  [ "$name" != "$spec" ] && [ -n "$name" ] || { echo "gen-grpc-certs.sh: expected NAME=SAN,..., got $spec" >&2; exit 2; }
  dir="$out/$name"
  mkdir -p "$dir"
  cp "$out/ca.crt" "$dir/ca.crt"
  if [ -s "$dir/tls.crt" ] && [ -s "$dir/tls.key" ] \
     && openssl verify -CAfile "$out/ca.crt" "$dir/tls.crt" >/dev/null 2>&1; then
    continue
  fi
  alt="DNS:localhost,IP:127.0.0.1"
  old_ifs="$IFS"; IFS=,
  for san in $sans; do
    case "$san" in
      *[!0-9.]*) alt="$alt,DNS:$san" ;;
      *) alt="$alt,IP:$san" ;;
    esac
  done
  IFS="$old_ifs"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$dir/tls.key" -out "$dir/tls.csr" -subj "/CN=$name" 2>/dev/null
  printf 'subjectAltName=%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n' \
    "$alt" > "$dir/ext.cnf"
  openssl x509 -req -in "$dir/tls.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
    -days "$days" -extfile "$dir/ext.cnf" -out "$dir/tls.crt" 2>/dev/null
  rm -f "$dir/tls.csr" "$dir/ext.cnf"
  echo "gen-grpc-certs.sh: $dir/tls.crt for $alt" >&2
done
rm -f "$out/ca.srl"

chmod 0755 "$out" "$out"/*/
chmod 0644 "$out/ca.crt" "$out"/*/ca.crt "$out"/*/tls.crt
chmod 0600 "$out/ca.key" "$out"/*/tls.key
if [ -n "$owner" ]; then
  # The services run as an unprivileged user: they must read their key.
  chown -R "$owner" "$out"
fi

if [ -n "$k8s_release" ]; then
  for spec in "$@"; do
    name="${spec%%=*}"
    printf -- '---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: %s-%s\n  namespace: %s\ntype: kubernetes.io/tls\ndata:\n' \
      "$secret_prefix" "$name" "$k8s_namespace"
    for f in ca.crt tls.crt tls.key; do
      printf '  %s: %s\n' "$f" "$(base64 < "$out/$name/$f" | tr -d '\n')"
    done
  done
fi
