{{/* Names and labels. */}}
{{- define "evosip.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "evosip.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: evosip
{{- end -}}

{{/* Selector of one role's pods: (dict "ctx" $ "role" "edge"). */}}
{{- define "evosip.selector" -}}
app.kubernetes.io/name: {{ .ctx.Chart.Name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{/* Selector of every pod of this release (the platform). */}}
{{- define "evosip.platformSelector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "evosip.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "evosip.secretName" -}}
{{ .Values.secrets.existingSecret | default (printf "%s-secrets" (include "evosip.fullname" .)) }}
{{- end -}}

{{- define "evosip.redisHost" -}}
{{- if .Values.redis.enabled -}}
{{ include "evosip.fullname" . }}-redis
{{- else -}}
{{ required "redis.external.host is required when redis.enabled is false" .Values.redis.external.host }}
{{- end -}}
{{- end -}}

{{- define "evosip.redisPort" -}}
{{- if .Values.redis.enabled -}}6379{{- else -}}{{ .Values.redis.external.port }}{{- end -}}
{{- end -}}

{{/* The drain budget: preStop sleep + drain + margin. */}}
{{- define "evosip.gracePeriod" -}}
{{ add .Values.drain.preStopSleepSeconds .Values.drain.timeoutSeconds .Values.drain.extraGraceSeconds }}
{{- end -}}

{{/* Keys common to every role's configuration: (dict "ctx" $ "port" 8060). */}}
{{- define "evosip.commonConfig" -}}
control:
  listen: "0.0.0.0:{{ .port }}"
  token: "file:/run/secrets/evosip/control_token"
log:
  level: {{ .ctx.Values.log.level }}
  format: {{ .ctx.Values.log.format }}
{{- end -}}
