#!/usr/bin/env bash
# make-certs.sh OUTDIR [--force]: a THROWAWAY certificate authority and certificates for the
# reference topology's SIP over TLS (gateway.json internal.tls, port 5061) and for tests.
#
#   OUTDIR/ca.pem, ca.key            the lab CA (CN "Medius lab CA (throwaway)")
#   OUTDIR/gateway.pem, gateway.key  the gateway's server certificate: SAN DNS example.com,
#                                    gateway.example.com, localhost, IP 127.0.0.1
#   OUTDIR/client.pem, client.key    a client certificate (CN and SAN DNS
#                                    client.example.com) for mutual TLS and trusted_names
#
# EC P-256 keys, SHA-256, 90 days. Keys are written 0600 into OUTDIR (0700), which must
# never be committed (./medius uses .medius/certs, gitignored). Existing files are kept
# unless --force, or unless a certificate expires within a day or a file is missing: then
# everything is made anew. These certificates prove nothing about anyone: a deployment
# uses its own CA and certificates (docs/security.md).
set -euo pipefail

out="${1:?usage: make-certs.sh OUTDIR [--force]}"
force="${2:-}"
days=90

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
  if ((ok)); then
    echo "make-certs: certificates in $out are present and valid"
    exit 0
  fi
fi

umask 077
tmp="$(mktemp -d "$out/.make-certs.XXXXXX")"
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
leaf gateway gateway.example.com "DNS:gateway.example.com,DNS:example.com,DNS:localhost,IP:127.0.0.1" \
  serverAuth,clientAuth
leaf client client.example.com "DNS:client.example.com" clientAuth,serverAuth

for f in ca gateway client; do
  mv -f "$tmp/$f.key" "$f.key"
  mv -f "$tmp/$f.pem" "$f.pem"
done
chmod 0600 ./*.key
chmod 0644 ./*.pem
echo "make-certs: new throwaway CA and certificates in $out (valid $days days)"
