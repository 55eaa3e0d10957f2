{{/* Names: <release>-medius-<component>, or <release>-<component> when the release is called medius... */}}
{{- define "medius.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "medius.name" -}}
{{- printf "%s-%s" (include "medius.fullname" .root) .component -}}
{{- end -}}

{{- define "medius.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "medius.labels" -}}
{{ include "medius.selectorLabels" . }}
app.kubernetes.io/part-of: medius
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* The image of a component: <registry>medius/<component>:<tag> */}}
{{- define "medius.image" -}}
{{- printf "%smedius/%s:%s" .root.Values.image.registry .component (.root.Values.image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}

{{/* The Service names the services call each other at (their certificates name them). */}}
{{- define "medius.registrarHost" -}}{{ include "medius.fullname" . }}-registrar{{- end -}}
{{- define "medius.routingHost" -}}{{ include "medius.fullname" . }}-routing{{- end -}}
{{- define "medius.mediaHost" -}}{{ include "medius.fullname" . }}-media-transcoder-headless{{- end -}}
{{- define "medius.gatewayHost" -}}{{ include "medius.fullname" . }}-signaling-gateway-headless{{- end -}}

{{/* DNS subjectAltNames of a component's certificate: its Service, qualified three ways. */}}
{{- define "medius.certDnsNames" -}}
{{- $host := .host -}}
{{- $ns := .root.Release.Namespace -}}
{{- list "localhost" $host (printf "%s.%s" $host $ns) (printf "%s.%s.svc" $host $ns) (printf "%s.%s.svc.%s" $host $ns .root.Values.clusterDomain) | toJson -}}
{{- end -}}

{{/* The Secret with a component's ca.crt, tls.crt and tls.key. */}}
{{- define "medius.tlsSecret" -}}
{{- if eq .root.Values.tls.mode "existing" -}}
{{- printf "%s-%s" .root.Values.tls.existingSecretPrefix .component -}}
{{- else -}}
{{- printf "%s-%s-grpc-tls" (include "medius.fullname" .root) .component -}}
{{- end -}}
{{- end -}}

{{/* service.grpc_tls of a component's config file (the Secret is mounted at /etc/medius/tls). */}}
{{- define "medius.grpcTls" -}}
{"ca": "/etc/medius/tls/ca.crt", "cert": "/etc/medius/tls/tls.crt", "key": "/etc/medius/tls/tls.key"}
{{- end -}}

{{/* Environment every Medius container gets: medctl (probes, kubectl exec) uses the
     component's own certificate as its client certificate. */}}
{{- define "medius.commonEnv" -}}
- name: MEDIUS_GRPC_TLS_CA
  value: /etc/medius/tls/ca.crt
- name: MEDIUS_GRPC_TLS_CERT
  value: /etc/medius/tls/tls.crt
- name: MEDIUS_GRPC_TLS_KEY
  value: /etc/medius/tls/tls.key
- name: MEDIUS_LOG_LEVEL
  value: {{ .root.Values.log.level | quote }}
- name: MEDIUS_LOG_FORMAT
  value: {{ .root.Values.log.format | quote }}
{{- end -}}

{{/* Probes: readiness is grpc.health.v1 SERVING through medctl (an exec probe: Kubernetes'
     native grpc probe cannot present a client certificate, and the services require one).
     Liveness is "the gRPC server answers the health check at all": SERVING or NOT_SERVING,
     so a draining pod (NOT_SERVING while its calls last) leaves the Services but is never
     restarted, while a hung server is. */}}
{{- define "medius.probes" -}}
readinessProbe:
  exec:
    command: ["medctl", "--timeout-ms", "2000", "health", "-q", "--target", "localhost:{{ .port }}"]
  initialDelaySeconds: 2
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
livenessProbe:
  exec:
    command: ["sh", "-c", "medctl --timeout-ms 2000 health --target localhost:{{ .port }} | grep -qE ': (NOT_)?SERVING$'"]
  initialDelaySeconds: 10
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
{{- end -}}

{{- define "medius.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* Volumes: the config (ConfigMap or Secret) at /etc/medius/<file>, TLS at /etc/medius/tls. */}}
{{- define "medius.volumeMounts" -}}
- name: config
  mountPath: /etc/medius/{{ .file }}
  subPath: {{ .file }}
  readOnly: true
- name: grpc-tls
  mountPath: /etc/medius/tls
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* The TLS Secret, and a small /tmp (the root filesystem is read-only). */}}
{{- define "medius.volumes" -}}
- name: grpc-tls
  secret:
    secretName: {{ include "medius.tlsSecret" . }}
    defaultMode: 0440
- name: tmp
  emptyDir: {sizeLimit: 64Mi}
{{- end -}}

{{- define "medius.podCommon" -}}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* A PodDisruptionBudget: at most one pod of the component down for a voluntary disruption. */}}
{{- define "medius.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "medius.name" . }}
  labels:
    {{- include "medius.labels" . | nindent 4 }}
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      {{- include "medius.selectorLabels" . | nindent 6 }}
{{- end -}}

{{/* SIP over TLS (sipTls): the Service clients connect to, the Secret the gateways mount
     at /etc/medius/sip-tls (tls.crt, tls.key, ca.crt), and the certificate's names. */}}
{{- define "medius.sipTlsHost" -}}{{ include "medius.fullname" . }}-sip-tls{{- end -}}
{{- define "medius.sipTlsSecret" -}}
{{- if eq .Values.sipTls.mode "existing" -}}
{{- .Values.sipTls.existingSecret -}}
{{- else -}}
{{- printf "%s-sip-tls" (include "medius.fullname" .) -}}
{{- end -}}
{{- end -}}
{{/* The certificate's names: the SIP domain and sipTls.dnsNames/ipAddresses (what clients
     connect to); for a generated certificate also the Service's cluster names, localhost
     and 127.0.0.1 (a public ACME issuer would refuse those, so certManager gets only the
     names given). Argument: dict "root" . "internal" bool. */}}
{{- define "medius.sipTlsDnsNames" -}}
{{- $names := concat (list .root.Values.domain) .root.Values.sipTls.dnsNames -}}
{{- if .internal -}}
{{- $names = concat $names (include "medius.certDnsNames" (dict "root" .root "host" (include "medius.sipTlsHost" .root)) | fromJsonArray) -}}
{{- end -}}
{{- $names | uniq | toJson -}}
{{- end -}}
{{- define "medius.sipTlsIpAddresses" -}}
{{- $ips := .root.Values.sipTls.ipAddresses -}}
{{- if .internal -}}{{- $ips = prepend $ips "127.0.0.1" -}}{{- end -}}
{{- $ips | uniq | toJson -}}
{{- end -}}
{{/* internal.tls of gateway.json. */}}
{{- define "medius.sipTlsConfig" -}}
{{- $t := .Values.sipTls -}}
{{- if and (or $t.requireClientCert $t.trustedNames) (not $t.verifyClientCerts) -}}
{{- fail "sipTls.requireClientCert and sipTls.trustedNames need sipTls.verifyClientCerts (the CA that verifies client certificates)" -}}
{{- end -}}
{{- $c := dict "listen" "sips:0.0.0.0:5061" "cert" "/etc/medius/sip-tls/tls.crt" "key" "/etc/medius/sip-tls/tls.key"
      "require_client_cert" $t.requireClientCert "trusted_names" $t.trustedNames
      "reload_interval_s" $t.reloadIntervalSeconds -}}
{{- if $t.verifyClientCerts -}}{{- $_ := set $c "ca" "/etc/medius/sip-tls/ca.crt" -}}{{- end -}}
{{- if $t.ciphers -}}{{- $_ := set $c "ciphers" $t.ciphers -}}{{- end -}}
{{- $c | toJson -}}
{{- end -}}
