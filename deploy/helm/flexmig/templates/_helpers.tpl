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

{{/* Labels of one component's objects. Call with (dict "root" $ "component" "inventory"). */}}
{{- define "flexmig.componentLabels" -}}
{{ include "flexmig.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Selector labels of one component. Call with (dict "root" $ "component" "inventory"). */}}
{{- define "flexmig.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flexmig.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The image of the control services. */}}
{{- define "flexmig.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The agent's image: agent.image, else the image above with "-qemu" appended to the tag for driver=qemu (the Dockerfile's agent-qemu stage). */}}
{{- define "flexmig.agentImage" -}}
{{- $repo := default .Values.image.repository .Values.agent.image.repository }}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if eq .Values.agent.driver "qemu" }}{{ $tag = printf "%s-qemu" $tag }}{{ end }}
{{- printf "%s:%s" $repo (default $tag .Values.agent.image.tag) }}
{{- end }}

{{- define "flexmig.configMapName" -}}
{{- printf "%s-env" (include "flexmig.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
A Secret's name: the operator's existingSecret, else the chart's <fullname>-<suffix>.
Call with (dict "root" $ "existing" .Values.database.existingSecret "suffix" "database").
*/}}
{{- define "flexmig.secretName" -}}
{{- if .existing }}{{ .existing }}{{ else }}{{ printf "%s-%s" (include "flexmig.fullname" .root) .suffix | trunc 63 | trimSuffix "-" }}{{ end }}
{{- end }}

{{- define "flexmig.databaseSecretName" -}}
{{- include "flexmig.secretName" (dict "root" . "existing" .Values.database.existingSecret "suffix" "database") }}
{{- end }}

{{- define "flexmig.databaseSecretKey" -}}
{{- if .Values.database.existingSecret }}{{ .Values.database.existingSecretKey }}{{ else }}DATABASE_URL{{ end }}
{{- end }}

{{/* True (non-empty) when the services have NATS credentials: an existing Secret or files given to the chart. */}}
{{- define "flexmig.natsCredentials" -}}
{{- $c := .Values.nats.credentials }}
{{- if or $c.existingSecret $c.files.inventory $c.files.scheduler $c.files.cpuCompat $c.files.console }}true{{ end }}
{{- end }}

{{- define "flexmig.natsTls" -}}
{{- if or .Values.nats.tls.existingSecret .Values.nats.tls.ca }}true{{ end }}
{{- end }}

{{- define "flexmig.jwtSecret" -}}
{{- if or .Values.auth.jwtSecret.existingSecret .Values.auth.jwtSecret.value }}true{{ end }}
{{- end }}

{{/*
Pod annotations of one component: Prometheus scraping of /metrics on its port (unless a ServiceMonitor or
PodMonitor does it), a checksum of the common environment (so pods restart when it changes), and podAnnotations.
Call with (dict "root" $ "port" 3001).
*/}}
{{- define "flexmig.podAnnotations" -}}
{{- if .root.Values.metrics.annotations }}
prometheus.io/scrape: "true"
prometheus.io/path: /metrics
prometheus.io/port: {{ .port | quote }}
{{- end }}
checksum/env: {{ include (print .root.Template.BasePath "/configmap.yaml") .root | sha256sum }}
checksum/secrets: {{ include (print .root.Template.BasePath "/secrets.yaml") .root | sha256sum }}
{{- with .root.Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Startup, liveness and readiness probes on a service's named port "http" (libs/service-kit/src/health.ts):
/health/live answers as soon as the process serves HTTP; /health/ready once NATS (and PostgreSQL) answer.
The startupProbe gives a first start (database creation, schema migrations) its time before liveness counts.
*/}}
{{- define "flexmig.probes" -}}
startupProbe:
  httpGet:
    path: /health/live
    port: http
  {{- toYaml .Values.probes.startup | nindent 2 }}
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

{{/* Topology spread of a replicated service over nodes (and zones when they are labelled). Call with (dict "root" $ "component" "inventory"). */}}
{{- define "flexmig.topologySpread" -}}
{{- if .root.Values.topologySpread.enabled }}
topologySpreadConstraints:
  {{- range .root.Values.topologySpread.topologyKeys }}
  - maxSkew: {{ $.root.Values.topologySpread.maxSkew }}
    topologyKey: {{ . }}
    whenUnsatisfiable: {{ $.root.Values.topologySpread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "flexmig.selectorLabels" (dict "root" $.root "component" $.component) | nindent 8 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* The pod-level settings every control service shares. Call with (dict "root" $ "values" .Values.inventory "component" "inventory"). */}}
{{- define "flexmig.podCommon" -}}
serviceAccountName: {{ include "flexmig.componentName" (dict "root" .root "component" .component) }}
automountServiceAccountToken: false
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- include "flexmig.topologySpread" . }}
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
  {{- with include "flexmig.natsVolumes" (dict "root" .root "creds" .component) }}{{ . | trim | nindent 2 }}{{ end }}
  {{- if ne .component "cpu-compat" }}{{ if ne .component "console" }}
  {{- with include "flexmig.databaseVolumes" .root }}{{ . | trim | nindent 2 }}{{ end }}
  {{- end }}{{ end }}
  {{- with include "flexmig.httpVolumes" .root }}{{ . | trim | nindent 2 }}{{ end }}
{{- end }}

{{/* NATS_CREDS and NATS_TLS_CA as files. Call with (dict "root" $ "creds" "inventory"): the key <creds>.creds of the credentials Secret. */}}
{{- define "flexmig.natsEnv" -}}
{{- if include "flexmig.natsCredentials" .root }}
- name: NATS_CREDS
  value: /var/run/secrets/flexmig/nats/{{ .creds }}.creds
{{- end }}
{{- if include "flexmig.natsTls" .root }}
- name: NATS_TLS_CA
  value: /var/run/secrets/flexmig/nats-tls/ca.pem
{{- end }}
{{- end }}

{{- define "flexmig.natsVolumeMounts" -}}
{{- if include "flexmig.natsCredentials" .root }}
- name: nats-creds
  mountPath: /var/run/secrets/flexmig/nats
  readOnly: true
{{- end }}
{{- if include "flexmig.natsTls" .root }}
- name: nats-tls
  mountPath: /var/run/secrets/flexmig/nats-tls
  readOnly: true
{{- end }}
{{- end }}

{{/* Each service mounts its own identity only (one key of the Secret), never another service's. */}}
{{- define "flexmig.natsVolumes" -}}
{{- if include "flexmig.natsCredentials" .root }}
- name: nats-creds
  secret:
    secretName: {{ include "flexmig.secretName" (dict "root" .root "existing" .root.Values.nats.credentials.existingSecret "suffix" "nats-creds") }}
    defaultMode: 0400
    items:
      - key: {{ .creds }}.creds
        path: {{ .creds }}.creds
{{- end }}
{{- if include "flexmig.natsTls" .root }}
- name: nats-tls
  secret:
    secretName: {{ include "flexmig.secretName" (dict "root" .root "existing" .root.Values.nats.tls.existingSecret "suffix" "nats-tls") }}
    items:
      - key: ca.pem
        path: ca.pem
{{- end }}
{{- end }}

{{/* DATABASE_URL from its Secret; with database.tls the CA that sslrootcert=/var/run/secrets/flexmig/postgresql/ca.pem in the URL names. */}}
{{- define "flexmig.databaseEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "flexmig.databaseSecretName" . }}
      key: {{ include "flexmig.databaseSecretKey" . }}
{{- end }}

{{- define "flexmig.databaseVolumeMounts" -}}
{{- if .Values.database.tls.caSecret }}
- name: postgresql-ca
  mountPath: /var/run/secrets/flexmig/postgresql
  readOnly: true
{{- end }}
{{- end }}

{{- define "flexmig.databaseVolumes" -}}
{{- if .Values.database.tls.caSecret }}
- name: postgresql-ca
  secret:
    secretName: {{ .Values.database.tls.caSecret }}
    items:
      - key: {{ .Values.database.tls.caKey }}
        path: ca.pem
{{- end }}
{{- end }}

{{/*
The environment of the services with an HTTP API (inventory, scheduler, cpu-compat, console): who may call
them (docs/security.md, "HTTP") and the body limit. Secure by default: with auth on, a chart that has neither
a token secret nor an OIDC issuer does not render (the services would refuse to start).
*/}}
{{- define "flexmig.httpEnv" -}}
{{- $auth := .Values.auth }}
{{- if and $auth.enabled (not (include "flexmig.jwtSecret" .)) (not $auth.oidc.issuer) }}
{{- fail "auth: set auth.jwtSecret.existingSecret (a Secret holding the token secret: kubectl create secret generic flexmig-jwt --from-file=jwt.secret=.flexmig/auth/jwt.secret) or auth.jwtSecret.value (--set-file auth.jwtSecret.value=.flexmig/auth/jwt.secret) or auth.oidc.issuer and auth.oidc.jwksUrl, or auth.enabled=false (a developer loop only)" }}
{{- end }}
- name: AUTH
  value: {{ ternary "on" "off" $auth.enabled | quote }}
{{- if include "flexmig.jwtSecret" . }}
- name: AUTH_JWT_SECRET_FILE
  value: /var/run/secrets/flexmig/jwt/jwt.secret
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
{{- if include "flexmig.jwtSecret" . }}
- name: jwt-secret
  mountPath: /var/run/secrets/flexmig/jwt
  readOnly: true
{{- end }}
{{- end }}

{{- define "flexmig.httpVolumes" -}}
{{- if include "flexmig.jwtSecret" . }}
- name: jwt-secret
  secret:
    secretName: {{ include "flexmig.secretName" (dict "root" . "existing" .Values.auth.jwtSecret.existingSecret "suffix" "jwt") }}
    defaultMode: 0400
    items:
      - key: {{ ternary .Values.auth.jwtSecret.key "jwt.secret" (not (empty .Values.auth.jwtSecret.existingSecret)) }}
        path: jwt.secret
{{- end }}
{{- end }}

{{/* The container settings every control service shares: image, security context, probes, mounts. Call with (dict "root" $ "values" .Values.inventory "component" "inventory"). */}}
{{- define "flexmig.containerCommon" -}}
image: {{ include "flexmig.image" .root }}
imagePullPolicy: {{ .root.Values.image.pullPolicy }}
command: ["node", "dist/apps/{{ .component }}/main.js"]
envFrom:
  - configMapRef:
      name: {{ include "flexmig.configMapName" .root }}
ports:
  - name: http
    containerPort: {{ .values.port }}
    protocol: TCP
{{ include "flexmig.probes" .root }}
resources:
  {{- toYaml .values.resources | nindent 2 }}
securityContext:
  {{- toYaml .root.Values.securityContext | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
  {{- with include "flexmig.natsVolumeMounts" (dict "root" .root) }}{{ . | trim | nindent 2 }}{{ end }}
  {{- if ne .component "cpu-compat" }}{{ if ne .component "console" }}
  {{- with include "flexmig.databaseVolumeMounts" .root }}{{ . | trim | nindent 2 }}{{ end }}
  {{- end }}{{ end }}
  {{- with include "flexmig.httpVolumeMounts" .root }}{{ . | trim | nindent 2 }}{{ end }}
{{- end }}

{{/* A control service's Deployment, Service, ServiceAccount and PodDisruptionBudget. Call with (dict "root" $ "values" .Values.inventory "component" "inventory" "env" <its own env list as YAML>). */}}
{{- define "flexmig.controlService" -}}
{{- $name := include "flexmig.componentName" (dict "root" .root "component" .component) }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $name }}
  labels:
    {{- include "flexmig.componentLabels" . | nindent 4 }}
# No flexmig service calls the Kubernetes API: no token in its pods.
automountServiceAccountToken: false
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  labels:
    {{- include "flexmig.componentLabels" . | nindent 4 }}
spec:
  replicas: {{ .values.replicas }}
  selector:
    matchLabels:
      {{- include "flexmig.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "flexmig.selectorLabels" . | nindent 8 }}
        {{- with .root.Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        {{- include "flexmig.podAnnotations" (dict "root" .root "port" .values.port) | trim | nindent 8 }}
    spec:
      {{- include "flexmig.podCommon" . | nindent 6 }}
      containers:
        - name: {{ .component }}
          {{- include "flexmig.containerCommon" . | nindent 10 }}
          env:
            {{- with include "flexmig.natsEnv" (dict "root" .root "creds" .component) }}{{ . | trim | nindent 12 }}{{ end }}
            {{- include "flexmig.httpEnv" .root | trim | nindent 12 }}
            - name: PORT
              value: {{ .values.port | quote }}
            {{- .env | nindent 12 }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  labels:
    {{- include "flexmig.componentLabels" . | nindent 4 }}
spec:
  type: {{ .values.service.type }}
  selector:
    {{- include "flexmig.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ .values.service.port }}
      targetPort: http
      protocol: TCP
{{- if and .root.Values.podDisruptionBudget.enabled (gt (int .values.replicas) 1) }}
---
# Voluntary disruptions (node drains, cluster upgrades) leave at least one replica serving.
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  labels:
    {{- include "flexmig.componentLabels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .root.Values.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "flexmig.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}

{{/* The agents' migration ports: the qemu driver's QEMU_MIGRATION_PORT_RANGE, the sim driver's one port. */}}
{{- define "flexmig.migrationPorts" -}}
{{- if eq .Values.agent.driver "qemu" }}
{{- $range := splitList "-" .Values.agent.qemu.migrationPortRange }}
- port: {{ index $range 0 | int }}
  endPort: {{ index $range 1 | int }}
  protocol: TCP
{{- else }}
- port: {{ .Values.agent.migrationPort }}
  protocol: TCP
{{- end }}
{{- end }}
