# medius/kamailio:0.1.0: the SIP load balancer (Debian's Kamailio 5.6 with
# deploy/kamailio/kamailio.cfg, and dispatcher-sync.sh for lists fed from DNS).
#
#   docker build -f deploy/docker/kamailio.Dockerfile -t medius/kamailio:0.1.0 .
#
# Kamailio runs in the foreground as uid 10002, its runtime directory (pid file, kamcmd
# socket, a generated dispatcher list) in /run/kamailio. Give -A defines as the command, e.g.
#   docker run medius/kamailio:0.1.0 -A LB_ADVERTISE=192.0.2.10:5060
# The default dispatcher list is /etc/kamailio/medius/dispatcher.list (mount yours there, or
# point DISPATCHER_LIST at the file dispatcher-sync.sh writes). Health: kamcmd answers on the
# control socket.
FROM debian:bookworm

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends kamailio \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10002 medius-lb \
 && useradd --system --uid 10002 --gid 10002 --no-create-home --shell /usr/sbin/nologin medius-lb \
 && install -d -o 10002 -g 10002 -m 0755 /run/kamailio
COPY deploy/kamailio/kamailio.cfg deploy/kamailio/dispatcher.list /etc/kamailio/medius/
COPY deploy/kamailio/dispatcher-sync.sh /usr/local/bin/dispatcher-sync.sh

USER 10002:10002
EXPOSE 5060/udp 5060/tcp
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 \
  CMD ["kamcmd", "-s", "unix:/run/kamailio/kamailio_ctl", "core.uptime"]
ENTRYPOINT ["kamailio", "-f", "/etc/kamailio/medius/kamailio.cfg", "-DD", "-E", \
            "-P", "/run/kamailio/kamailio.pid", "-w", "/run/kamailio", "-Y", "/run/kamailio"]
CMD []
