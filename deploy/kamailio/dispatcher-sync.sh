#!/bin/sh
# Keeps Kamailio's dispatcher list equal to the gateways DNS names: on Kubernetes, the
# addresses of the gateways' headless Service (one A record per pod); anywhere, any name
# that resolves to the gateways. Kamailio itself never resolves names in the SIP path
# (kamailio.cfg sets dns=no), so this script does it beside it and reloads the list.
#
#   dispatcher-sync.sh [--once]
#
# Environment:
#   MEDIUS_GATEWAYS_HOST   name to resolve (required), e.g. medius-signaling-gateway-headless
#   MEDIUS_GATEWAYS_PORT   the gateways' internal SIP port                    default 5062
#   DISPATCHER_LIST        file to write (kamailio.cfg's DISPATCHER_LIST)     default /run/kamailio/dispatcher.list
#   CTL_SOCKET             kamcmd socket (kamailio.cfg's CTL_SOCKET)          default unix:/run/kamailio/kamailio_ctl
#   SYNC_INTERVAL_SECONDS  how often to resolve                               default 5
#
# --once: write the list and exit without reloading (an init container, before Kamailio
# starts). Otherwise: every interval, resolve, and when the set of addresses changed, write
# the list atomically and `kamcmd dispatcher.reload`; a failed reload (Kamailio not up yet,
# or its "ongoing reload" guard) is retried at the next round. When the name resolves to
# nothing the last list is kept: the OPTIONS probes already take dead gateways out of the
# set, and an empty list would turn every call away.
set -eu

host="${MEDIUS_GATEWAYS_HOST:?set MEDIUS_GATEWAYS_HOST to the gateways DNS name}"
port="${MEDIUS_GATEWAYS_PORT:-5062}"
list="${DISPATCHER_LIST:-/run/kamailio/dispatcher.list}"
ctl="${CTL_SOCKET:-unix:/run/kamailio/kamailio_ctl}"
interval="${SYNC_INTERVAL_SECONDS:-5}"

render() {  # the dispatcher.list for the current DNS answer; empty output: nothing resolved
  getent ahostsv4 "$host" 2>/dev/null | awk '{print $1}' | sort -u -t . -k1,1n -k2,2n -k3,3n -k4,4n |
    while read -r addr; do
      printf '1 sip:%s:%s\n' "$addr" "$port"
    done
}

write() {  # content -> $list, atomically (Kamailio may read it at any moment)
  tmp="$list.tmp.$$"
  printf '# written by dispatcher-sync.sh from %s\n%s\n' "$host" "$1" > "$tmp"
  mv -f "$tmp" "$list"
}

if [ "${1:-}" = "--once" ]; then
  current="$(render)"
  [ -n "$current" ] || echo "dispatcher-sync: $host resolves to nothing yet: empty list" >&2
  write "$current"
  exit 0
fi

applied=""
while :; do
  current="$(render)"
  if [ -n "$current" ] && [ "$current" != "$applied" ]; then
    write "$current"
    if kamcmd -s "$ctl" dispatcher.reload >/dev/null 2>&1; then
      applied="$current"
      echo "dispatcher-sync: gateways now $(echo "$current" | awk '{print $2}' | tr '\n' ' ')"
    fi
  fi
  sleep "$interval"
done
