{{/* Delivery of published versions to what serves them (forgetd.serving.sinks, docs/operations.md
"Serving with vLLM"): the GPU workers run the job, so they alone get these. FORGETD_SERVING_URL is the
serving Service: each swap is then seen in /v1/models and the canary asked through the lineage alias. */}}
{{- define "forgetd.deliveryEnv" -}}
{{- if .Values.serving.enabled }}
- name: FORGETD_SERVING_URL
  value: {{ printf "http://%s.%s.svc:%v" (include "forgetd.componentName" (dict "root" . "component" "serve")) .Release.Namespace .Values.serving.service.port | quote }}
{{- end }}
{{- with .Values.serving.vllm }}
{{- if .url }}
- name: FORGETD_VLLM_URL
  value: {{ .url | quote }}
{{- end }}
{{- if .apiKeySecret }}
- name: FORGETD_VLLM_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .apiKeySecret }}
      key: {{ .apiKeyKey }}
{{- end }}
{{- end }}
{{- end }}

{{/* Delivery settings the chart refuses, each with the reason. */}}
{{- define "forgetd.validateDelivery" -}}
{{- if and .Values.config.vllm_resolver_dir (not .Values.config.vllm_served_base) }}
{{- fail "config.vllm_resolver_dir needs config.vllm_served_base: vLLM's resolver loads only adapters whose config names its served base model." }}
{{- end }}
{{- if and .Values.serving.vllm.url (eq .Values.store.type "s3") (not .Values.config.vllm_resolver_dir) }}
{{- fail "serving.vllm.url with store.type=s3: vLLM reads lora_path from its own filesystem, not the bucket. Set config.vllm_resolver_dir to a folder on a volume the workers and vLLM both mount; see docs/operations.md, \"Serving with vLLM\"." }}
{{- end }}
{{- end }}
