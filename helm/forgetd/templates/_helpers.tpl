{{/* Names ----------------------------------------------------------------------------------- */}}

{{- define "forgetd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-forgetd, or the release name when it already holds the chart name; 63 characters at most. */}}
{{- define "forgetd.fullname" -}}
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

{{/* A component's resource name: <fullname>-<component>, within 63 characters. */}}
{{- define "forgetd.componentName" -}}
{{- printf "%s-%s" (include "forgetd.fullname" .root | trunc (int (sub 62 (len .component))) | trimSuffix "-") .component }}
{{- end }}

{{- define "forgetd.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels -------------------------------------------------------------------------------------- */}}

{{- define "forgetd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "forgetd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "forgetd.labels" -}}
helm.sh/chart: {{ include "forgetd.chart" . }}
{{ include "forgetd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: forgetd
{{- end }}

{{/* Labels of one component: include "forgetd.componentLabels" (dict "root" $ "component" "api") */}}
{{- define "forgetd.componentLabels" -}}
{{ include "forgetd.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "forgetd.componentSelectorLabels" -}}
{{ include "forgetd.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Names of shared resources --------------------------------------------------------------------- */}}

{{- define "forgetd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "forgetd.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "forgetd.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "forgetd.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "forgetd.componentName" (dict "root" . "component" "secrets")) }}
{{- end }}

{{- define "forgetd.redisName" -}}
{{- include "forgetd.componentName" (dict "root" . "component" "redis") }}
{{- end }}

{{- define "forgetd.storeClaimName" -}}
{{- .Values.store.pvc.existingClaim | default (include "forgetd.componentName" (dict "root" . "component" "store")) }}
{{- end }}

{{/* Checks: combinations the chart refuses, each with the reason ----------------------------------- */}}

{{- define "forgetd.validate" -}}
{{- if and (eq .Values.store.type "s3") (not .Values.store.s3.bucket) }}
{{- fail "store.type=s3 needs store.s3.bucket (and, for a server other than AWS S3, store.s3.endpoint); see docs/operations.md, \"Adapter store\"." }}
{{- end }}
{{- include "forgetd.validateDelivery" . }}
{{- if le (float64 .Values.worker.terminationGracePeriodSeconds) (float64 .Values.config.shutdown_grace_s) }}
{{- fail (printf "worker.terminationGracePeriodSeconds (%v) must be longer than config.shutdown_grace_s (%v): a stopped worker needs that long to finish or hand back its job before Kubernetes kills it." .Values.worker.terminationGracePeriodSeconds .Values.config.shutdown_grace_s) }}
{{- end }}
{{- if not (or .Values.redis.internal.enabled .Values.redis.external.existingSecret .Values.redis.external.url) }}
{{- fail "redis: set redis.external.existingSecret (a Secret with the Redis URL), redis.external.url, or redis.internal.enabled=true." }}
{{- end }}
{{- end }}

{{/* Pod parts shared by every forgetd container ----------------------------------------------------- */}}

{{/* A setting's value as text: whole numbers without an exponent (YAML numbers arrive as floats). */}}
{{- define "forgetd.settingValue" -}}
{{- if and (kindIs "float64" .) (eq . (floor .)) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- end }}

{{- define "forgetd.redisEnv" -}}
{{- if .Values.redis.internal.enabled }}
- name: FORGETD_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "forgetd.redisName" . }}
      key: redis-url
{{- else if .Values.redis.external.existingSecret }}
- name: FORGETD_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.external.existingSecret }}
      key: {{ .Values.redis.external.urlKey }}
{{- if .Values.redis.external.brokerUrlKey }}
- name: FORGETD_BROKER_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.external.existingSecret }}
      key: {{ .Values.redis.external.brokerUrlKey }}
{{- end }}
{{- else }}
- name: FORGETD_REDIS_URL
  value: {{ .Values.redis.external.url | quote }}
{{- end }}
{{- end }}

{{/* Where the adapter store is: the claim's mount path, or the bucket (credentials from an existing
Secret, else the pod's own identity, e.g. IRSA through serviceAccount.annotations). */}}
{{- define "forgetd.storeEnv" -}}
{{- if eq .Values.store.type "pvc" }}
- name: FORGETD_STORE_DIR
  value: {{ .Values.store.pvc.mountPath | quote }}
{{- else }}
{{- $s3 := .Values.store.s3 }}
- name: FORGETD_STORE_URL
  value: {{ printf "s3://%s/%s" $s3.bucket (trimAll "/" $s3.prefix) | trimSuffix "/" | quote }}
{{- if $s3.endpoint }}
- name: FORGETD_STORE_ENDPOINT_URL
  value: {{ $s3.endpoint | quote }}
{{- end }}
{{- if $s3.region }}
- name: AWS_DEFAULT_REGION
  value: {{ $s3.region | quote }}
{{- end }}
{{- if $s3.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $s3.existingSecret }}
      key: {{ $s3.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $s3.existingSecret }}
      key: {{ $s3.secretAccessKeyKey }}
{{- end }}
{{- end }}
{{- end }}

{{/* env and envFrom of a forgetd container: include "forgetd.env" (dict "root" $ "extra" .Values.api.env) */}}
{{- define "forgetd.env" -}}
{{- $root := .root -}}
env:
  - name: FORGETD_MODE
    value: production
  - name: FORGETD_DATA_DIR
    value: /data
  {{- include "forgetd.storeEnv" $root | trim | nindent 2 }}
  - name: FORGETD_API_HOST
    value: 0.0.0.0
  - name: FORGETD_SERVE_HOST
    value: 0.0.0.0
  - name: FORGETD_API_PORT
    value: {{ $root.Values.api.port | quote }}
  - name: FORGETD_SERVE_PORT
    value: {{ $root.Values.serving.port | quote }}
  - name: FORGETD_WORKER_METRICS_PORT
    value: {{ $root.Values.worker.metricsPort | quote }}
  # Caches of torch and Hugging Face libraries go to the writable scratch volume.
  - name: HOME
    value: /data
  - name: HF_HOME
    value: /data/huggingface
  {{- include "forgetd.redisEnv" $root | trim | nindent 2 }}
  {{- with $root.Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- with .extra }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
envFrom:
  - configMapRef:
      name: {{ include "forgetd.componentName" (dict "root" $root "component" "config") }}
  - secretRef:
      name: {{ include "forgetd.secretName" $root }}
{{- end }}

{{/* Volumes of a forgetd pod: include "forgetd.volumes" (dict "root" $ "sizeLimit" "20Gi" "model" true) */}}
{{- define "forgetd.volumes" -}}
{{- $root := .root -}}
- name: data
  emptyDir:
    {{- if .sizeLimit }}
    sizeLimit: {{ .sizeLimit }}
    {{- else }} {}
    {{- end }}
- name: tmp
  emptyDir: {}
{{- if eq $root.Values.store.type "pvc" }}
- name: store
  persistentVolumeClaim:
    claimName: {{ include "forgetd.storeClaimName" $root }}
{{- end }}
{{- if and .model $root.Values.model.existingClaim }}
- name: models
  persistentVolumeClaim:
    claimName: {{ $root.Values.model.existingClaim }}
    readOnly: true
{{- end }}
{{- with $root.Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "forgetd.volumeMounts" -}}
{{- $root := .root -}}
- name: data
  mountPath: /data
- name: tmp
  mountPath: /tmp
{{- if eq $root.Values.store.type "pvc" }}
- name: store
  mountPath: {{ $root.Values.store.pvc.mountPath }}
{{- end }}
{{- if and .model $root.Values.model.existingClaim }}
- name: models
  mountPath: {{ $root.Values.model.mountPath }}
  readOnly: true
{{- end }}
{{- with $root.Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod metadata annotations: the config checksum rolls pods when a setting changes. */}}
{{- define "forgetd.podAnnotations" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}
