{{/* ------------------------------------------------------------------ names */}}

{{- define "parley.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's base name; components append -api, -worker-<name>, ... to it. */}}
{{- define "parley.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "parley.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "parley.labels" -}}
helm.sh/chart: {{ include "parley.chart" . }}
{{ include "parley.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: parley
{{- end }}

{{/* The labels that select the release; each component adds its own to them. */}}
{{- define "parley.selectorLabels" -}}
app.kubernetes.io/name: {{ include "parley.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "parley.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret the pods read: the operator's, or the chart's. */}}
{{- define "parley.secretName" -}}
{{- default (include "parley.fullname" .) .Values.existingSecret }}
{{- end }}

{{/* -------------------------------------------------------------- settings */}}

{{/* The ConfigMap's data: every non-secret PARLEY_* setting. */}}
{{- define "parley.configData" -}}
{{- $c := .Values.config -}}
PARLEY_ENV: {{ $c.env | quote }}
# The migration Job owns migrations: serve must not race it.
PARLEY_AUTO_MIGRATE: "false"
PARLEY_LOG_FORMAT: {{ $c.logFormat | quote }}
PARLEY_LOG_LEVEL: {{ $c.logLevel | quote }}
PARLEY_TRUSTED_PROXIES: {{ $c.trustedProxies | quote }}
PARLEY_REDIS_CLUSTER: {{ $c.redisCluster | toString | quote }}
PARLEY_CORS_ORIGINS: {{ $c.corsOrigins | quote }}
PARLEY_FETCH_ALLOW_PRIVATE: {{ $c.fetchAllowPrivate | toString | quote }}
PARLEY_MAX_BODY_BYTES: {{ int64 $c.maxBodyBytes | toString | quote }}
PARLEY_DATABASE_POOL_SIZE: {{ int64 $c.databasePoolSize | toString | quote }}
PARLEY_DATABASE_MAX_OVERFLOW: {{ int64 $c.databaseMaxOverflow | toString | quote }}
{{- with $c.stripePriceId }}
PARLEY_STRIPE_PRICE_ID: {{ . | quote }}
{{- end }}
{{- range $key, $value := $c.extra }}
{{- /* Whole numbers as integers: Helm reads every number as a float (1e+06). */}}
{{- if and (kindIs "float64" $value) (eq $value (float64 (int64 $value))) }}
{{- $value = int64 $value }}
{{- end }}
{{ $key }}: {{ toString $value | quote }}
{{- end }}
{{- end }}

{{/*
The token-signing key: secrets.secretKey, or else the key of the release's Secret already
in the cluster (upgrades must not sign everybody out), or else a new random one. A new key
is kept in .Values.generatedSecretKey for the rest of this render, so that every template
(the release's Secret and the migration hook's copy) gets the same one.
*/}}
{{- define "parley.secretKey" -}}
{{- if .Values.secrets.secretKey }}
{{- .Values.secrets.secretKey }}
{{- else }}
{{- if not (hasKey .Values "generatedSecretKey") }}
{{- $key := randAlphaNum 64 }}
{{- $current := lookup "v1" "Secret" .Release.Namespace (include "parley.fullname" .) }}
{{- if and $current $current.data }}
{{- with index $current.data "PARLEY_SECRET_KEY" }}
{{- $key = b64dec . }}
{{- end }}
{{- end }}
{{- $_ := set .Values "generatedSecretKey" $key }}
{{- end }}
{{- .Values.generatedSecretKey }}
{{- end }}
{{- end }}

{{/* The chart-made Secret's data (base64). */}}
{{- define "parley.secretData" -}}
{{- $s := .Values.secrets -}}
PARLEY_SECRET_KEY: {{ include "parley.secretKey" . | b64enc | quote }}
PARLEY_DATABASE_URL: {{ $s.databaseUrl | b64enc | quote }}
PARLEY_REDIS_URL: {{ $s.redisUrl | b64enc | quote }}
{{- with $s.brokerUrl }}
PARLEY_BROKER_URL: {{ . | b64enc | quote }}
{{- end }}
{{- with $s.stripeSecretKey }}
PARLEY_STRIPE_SECRET_KEY: {{ . | b64enc | quote }}
{{- end }}
{{- with $s.stripeWebhookSecret }}
PARLEY_STRIPE_WEBHOOK_SECRET: {{ . | b64enc | quote }}
{{- end }}
{{- end }}

{{/*
Pod annotations that change when the settings do, so that `helm upgrade` restarts the
pods on a configuration change. An existing Secret is outside the chart: restart after
changing it (kubectl rollout restart).
*/}}
{{- define "parley.configChecksums" -}}
checksum/config: {{ include "parley.configData" . | sha256sum }}
{{- if not .Values.existingSecret }}
checksum/secret: {{ include "parley.secretData" . | sha256sum }}
{{- end }}
{{- end }}

{{/* ------------------------------------------------------------------ pods */}}

{{/*
The parts of a pod spec every component shares: service account, security context,
scheduling. Call with (dict "root" $ "component" <the component's values>).
*/}}
{{- define "parley.podSpecCommon" -}}
{{- $root := .root }}
{{- $c := .component -}}
automountServiceAccountToken: false
{{- with $root.Values.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
# No <SERVICE>_HOST/_PORT variables: those of Services named parley-* would look like
# PARLEY_* settings.
enableServiceLinks: false
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
{{- with (default $root.Values.nodeSelector $c.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default $root.Values.tolerations $c.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default $root.Values.affinity $c.affinity) }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The settings, as the environment of a Parley container. */}}
{{- define "parley.envFrom" -}}
envFrom:
  - configMapRef:
      name: {{ include "parley.fullname" . }}
  - secretRef:
      name: {{ include "parley.secretName" . }}
{{- end }}

{{/* A container's security context, image, and its writable /tmp. */}}
{{- define "parley.containerCommon" -}}
image: {{ include "parley.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- end }}

{{- define "parley.tmpVolume" -}}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}

{{/*
A HorizontalPodAutoscaler on CPU. Call with (dict "root" $ "name" <Deployment name>
"component" <component label> "autoscaling" <values>).
*/}}
{{- define "parley.hpa" -}}
{{- $a := .autoscaling -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ .name }}
  labels:
    {{- include "parley.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ .name }}
  minReplicas: {{ $a.minReplicas }}
  maxReplicas: {{ $a.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $a.targetCPUUtilizationPercentage }}
  {{- with $a.scaleDownPodsPerMinute }}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 300
      policies:
        - type: Pods
          value: {{ . }}
          periodSeconds: 60
  {{- end }}
{{- end }}

{{/*
One entry of `workers` with its defaults, as YAML: each key of the entry replaces the
workerDefaults value of that key as a whole. Call with (dict "root" $ "entry" <entry>).
*/}}
{{- define "parley.worker" -}}
{{- $w := deepCopy .root.Values.workerDefaults }}
{{- range $key, $value := .entry }}
{{- $_ := set $w $key $value }}
{{- end }}
{{- toYaml $w }}
{{- end }}

{{/* ---------------------------------------------------------------- sizing */}}

{{/* Replicas of a Deployment at its largest: the HPA's maximum, or the fixed count. */}}
{{- define "parley.maxReplicas" -}}
{{- if .autoscaling.enabled }}{{ int64 .autoscaling.maxReplicas }}{{ else }}{{ int64 .replicas }}{{ end }}
{{- end }}

{{/*
The most database connections the release's pods can hold at once: every api and hooks
process at pool + overflow, every worker pool process at 2 + 4 (parley.worker), each
Deployment at its largest replica count.
*/}}
{{- define "parley.maxDatabaseConnections" -}}
{{- $perProcess := add .Values.config.databasePoolSize .Values.config.databaseMaxOverflow }}
{{- $total := mul (include "parley.maxReplicas" .Values.api) .Values.api.workers $perProcess }}
{{- if .Values.hooks.enabled }}
{{- $total = add $total (mul (include "parley.maxReplicas" .Values.hooks) $perProcess) }}
{{- end }}
{{- range $entry := .Values.workers }}
{{- $w := include "parley.worker" (dict "root" $ "entry" $entry) | fromYaml }}
{{- $total = add $total (mul (include "parley.maxReplicas" $w) $w.concurrency 6) }}
{{- end }}
{{- $total }}
{{- end }}
