{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "flexmig.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name: <release>-flexmig, or the release name when it already contains the chart name. */}}
{{- define "flexmig.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of one component's objects: <fullname>-<component>. Call with (dict "root" $ "component" "inventory"). */}}
{{- define "flexmig.componentName" -}}
{{- printf "%s-%s" (include "flexmig.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "flexmig.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "flexmig.labels" -}}
helm.sh/chart: {{ include "flexmig.chart" . }}
app.kubernetes.io/name: {{ include "flexmig.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: flexmig
{{- end }}

{{/* Selector labels of one component. Call with (dict "root" $ "component" "inventory"). */}}
{{- define "flexmig.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flexmig.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The image of the control services (and of the agent unless agent.image overrides it). */}}
{{- define "flexmig.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "flexmig.agentImage" -}}
{{- $repo := default .Values.image.repository .Values.agent.image.repository }}
{{- $tag := default (default .Chart.AppVersion .Values.image.tag) .Values.agent.image.tag }}
{{- printf "%s:%s" $repo $tag }}
{{- end }}

{{/* Names of the ConfigMap with the common environment and of the Secret holding DATABASE_URL. */}}
{{- define "flexmig.configMapName" -}}
{{- printf "%s-env" (include "flexmig.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "flexmig.databaseSecretName" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecret }}
{{- else }}
{{- printf "%s-database" (include "flexmig.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
Pod annotations of one component: Prometheus scraping of /metrics on its port, a checksum of the common
environment (so pods restart when it changes), and podAnnotations.
Call with (dict "root" $ "port" 3001).
*/}}
{{- define "flexmig.podAnnotations" -}}
{{- if .root.Values.metrics.annotations }}
prometheus.io/scrape: "true"
prometheus.io/path: /metrics
prometheus.io/port: {{ .port | quote }}
{{- end }}
checksum/env: {{ include (print .root.Template.BasePath "/configmap.yaml") .root | sha256sum }}
{{- with .root.Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Liveness and readiness probes on a service's named port "http". */}}
{{- define "flexmig.probes" -}}
livenessProbe:
  httpGet:
    path: /health/live
    port: http
  {{- toYaml .Values.probes.liveness | nindent 2 }}
readinessProbe:
  httpGet:
    path: /health/ready
    port: http
  {{- toYaml .Values.probes.readiness | nindent 2 }}
{{- end }}

{{- define "flexmig.databaseSecretKey" -}}
{{- if .Values.database.existingSecret }}{{ .Values.database.existingSecretKey }}{{ else }}DATABASE_URL{{ end }}
{{- end }}

{{/* The pod-level settings every control service shares. Call with (dict "root" $ "values" .Values.inventory). */}}
{{- define "flexmig.podCommon" -}}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  # The root filesystem is read-only; Node and its libraries may still want a scratch /tmp.
  - name: tmp
    emptyDir: {}
  {{- include "flexmig.httpVolumes" .root | nindent 2 }}
{{- end }}

{{/*
The environment of the services with an HTTP API (inventory, scheduler, cpu-compat): who may call them
(docs/security.md, "HTTP") and the body limit. Secure by default: with auth on, a chart that names neither
a Secret with the token secret nor an OIDC issuer does not render (the services would refuse to start).
*/}}
{{- define "flexmig.httpEnv" -}}
{{- $auth := .Values.auth }}
{{- if and $auth.enabled (not $auth.jwtSecret.existingSecret) (not $auth.oidc.issuer) }}
{{- fail "auth: set auth.jwtSecret.existingSecret (a Secret holding the token secret: kubectl create secret generic flexmig-jwt --from-file=jwt.secret=.flexmig/auth/jwt.secret) or auth.oidc.issuer and auth.oidc.jwksUrl, or auth.enabled=false (a developer loop only)" }}
{{- end }}
- name: AUTH
  value: {{ ternary "on" "off" $auth.enabled | quote }}
{{- if $auth.jwtSecret.existingSecret }}
- name: AUTH_JWT_SECRET_FILE
  value: /var/run/secrets/flexmig/jwt.secret
{{- end }}
{{- if $auth.oidc.issuer }}
- name: AUTH_OIDC_ISSUER
  value: {{ $auth.oidc.issuer | quote }}
- name: AUTH_JWKS_URL
  value: {{ required "auth.oidc.jwksUrl: the URL of the issuer's signing keys (JWKS)" $auth.oidc.jwksUrl | quote }}
- name: AUTH_AUDIENCE
  value: {{ $auth.oidc.audience | quote }}
{{- end }}
- name: HTTP_BODY_LIMIT
  value: {{ .Values.httpBodyLimit | quote }}
{{- end }}

{{/* The token secret as a read-only file (never an environment variable: those leak into logs and crash dumps). */}}
{{- define "flexmig.httpVolumeMounts" -}}
{{- if .Values.auth.jwtSecret.existingSecret }}
- name: jwt-secret
  mountPath: /var/run/secrets/flexmig
  readOnly: true
{{- end }}
{{- end }}

{{- define "flexmig.httpVolumes" -}}
{{- if .Values.auth.jwtSecret.existingSecret }}
- name: jwt-secret
  secret:
    secretName: {{ .Values.auth.jwtSecret.existingSecret }}
    items:
      - key: {{ .Values.auth.jwtSecret.key }}
        path: jwt.secret
{{- end }}
{{- end }}
