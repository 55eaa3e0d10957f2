#!/usr/bin/env bash
# make-certs.sh OUTDIR [--force] [--owner UID:GID] [--san SAN ...]: a THROWAWAY certificate
# authority and certificates for SIP over TLS (gateway.json internal.tls, port 5061) in the
# reference topology, docker-compose and tests.
#
#   OUTDIR/ca.pem, ca.key            the lab CA (CN "Medius lab CA (throwaway)")
#   OUTDIR/gateway.pem, gateway.key  the gateway's server certificate: SAN DNS example.com,
#                                    gateway.example.com, localhost, IP 127.0.0.1, and every
#                                    --san (DNS:name or IP:address: what clients connect to)
#   OUTDIR/client.pem, client.key    a client certificate (CN and SAN DNS
#                                    client.example.com) for mutual TLS and trusted_names
#
# EC P-256 keys, SHA-256, 90 days. Keys are written 0600 into OUTDIR (0700), which must
# never be committed (./medius uses .medius/certs, gitignored). --owner hands OUTDIR, the
# certificates and gateway.key to that user (docker-compose's `sip-certs` service: the gateway
# runs as 10001; ca.key and client.key stay the caller's).
# Existing files are kept unless --force, or unless a certificate expires within a day, a
# file is missing or the gateway certificate lacks one of the --san names: then everything
# is made anew. These certificates prove nothing about anyone: a deployment uses its own CA
# and certificates (docs/security.md).
set -euo pipefail

usage="usage: make-certs.sh OUTDIR [--force] [--owner UID:GID] [--san DNS:name|IP:address ...]"
out=""
force=""
owner=""
extra_sans=()
while (($#)); do
  case "$1" in
    --force) force=--force; shift ;;
    --owner) owner="${2:?$usage}"; shift 2 ;;
    --san)
      case "${2:-}" in
        DNS:?*|IP:?*) extra_sans+=("$2") ;;
        *) echo "make-certs: --san takes DNS:name or IP:address, got \"${2:-}\"" >&2; exit 2 ;;
      esac
      shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) echo "make-certs: unknown option $1; $usage" >&2; exit 2 ;;
    *) [[ -z "$out" ]] || { echo "$usage" >&2; exit 2; }; out="$1"; shift ;;
  esac
done
[[ -n "$out" ]] || { echo "$usage" >&2; exit 2; }
days=90
gateway_sans="DNS:gateway.example.com,DNS:example.com,DNS:localhost,IP:127.0.0.1"
for san in ${extra_sans[@]+"${extra_sans[@]}"}; do
  gateway_sans="$gateway_sans,$san"
done

mkdir -p "$out"
chmod 0700 "$out"
cd "$out"

fresh=1
for f in ca.pem ca.key gateway.pem gateway.key client.pem client.key; do
  [[ -s "$f" ]] || fresh=0
done
if ((fresh)) && [[ "$force" != --force ]]; then
  ok=1
  for c in ca.pem gateway.pem client.pem; do
    openssl x509 -in "$c" -noout -checkend 86400 >/dev/null 2>&1 || ok=0
  done
  # openssl prints "DNS:a, IP Address:1.2.3.4": each requested name must be there.
  have="$(openssl x509 -in gateway.pem -noout -ext subjectAltName 2>/dev/null | tail -n +2 | tr -d ' ')"
  have=",${have//IPAddress:/IP:},"
  for san in ${extra_sans[@]+"${extra_sans[@]}"}; do
    [[ "$have" == *",$san,"* ]] || ok=0
  done
  if ((ok)); then
    [[ -z "$owner" ]] || chown "$owner" . gateway.key ./*.pem
    echo "make-certs: certificates in $out are present and valid"
    exit 0
  fi
fi

umask 077
tmp="$(mktemp -d "$PWD/.make-certs.XXXXXX")"  # in OUTDIR (relative or not)
trap 'rm -rf "$tmp"' EXIT

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key "$tmp/ca.key"
openssl req -x509 -new -key "$tmp/ca.key" -sha256 -days "$days" -subj "/O=Medius lab/CN=Medius lab CA (throwaway)" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out "$tmp/ca.pem"

leaf() {  # name CN SAN extendedKeyUsage
  key "$tmp/$1.key"
  openssl req -new -key "$tmp/$1.key" -subj "/O=Medius lab/CN=$2" -out "$tmp/$1.csr"
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' \
    "$4" "$3" >"$tmp/$1.ext"
  openssl x509 -req -in "$tmp/$1.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -sha256 -days "$days" \
    -set_serial "0x$(openssl rand -hex 16)" -extfile "$tmp/$1.ext" -out "$tmp/$1.pem" 2>/dev/null
}
leaf gateway gateway.example.com "$gateway_sans" serverAuth,clientAuth
leaf client client.example.com "DNS:client.example.com" clientAuth,serverAuth

for f in ca gateway client; do
  mv -f "$tmp/$f.key" "$f.key"
  mv -f "$tmp/$f.pem" "$f.pem"
done
chmod 0600 ./*.key
chmod 0644 ./*.pem
if [[ -n "$owner" ]]; then
  # The gateway runs as another user (10001 in the images): it must read its key.
  chown "$owner" . gateway.key ./*.pem
fi
echo "make-certs: new throwaway CA and certificates in $out (valid $days days)"
