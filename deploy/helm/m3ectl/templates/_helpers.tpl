{{/* Chart name, truncated to the 63 characters a label value may hold. */}}
{{- define "m3ectl.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, with the chart's unless it already holds it. */}}
{{- define "m3ectl.fullname" -}}
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

{{- define "m3ectl.selectorLabels" -}}
app.kubernetes.io/name: {{ include "m3ectl.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "m3ectl.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "m3ectl.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "m3ectl.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "m3ectl.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image: repository:tag, the CUDA variant tagged "<version>-cuda". */}}
{{- define "m3ectl.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if eq .Values.image.variant "cuda" }}
{{- $tag = printf "%s-cuda" $tag }}
{{- else if ne .Values.image.variant "cpu" }}
{{- fail (printf "image.variant must be cpu or cuda, not %q" .Values.image.variant) }}
{{- end }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}

{{/*
Seconds the kubelet waits between preStop and SIGKILL: preStop's sleep, the
server's drain timeout and a margin. An explicit value shorter than preStop
plus drain would cut the drain short, so it is refused.
*/}}
{{- define "m3ectl.gracePeriod" -}}
{{- $need := add .Values.lifecycle.preStopSleepSeconds .Values.serve.drainTimeoutSeconds }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $need .Values.lifecycle.graceMarginSeconds }}
{{- else if le (int .Values.terminationGracePeriodSeconds) (int $need) }}
{{- fail (printf "terminationGracePeriodSeconds %v must exceed lifecycle.preStopSleepSeconds + serve.drainTimeoutSeconds (%v), or the drain is cut short" .Values.terminationGracePeriodSeconds $need) }}
{{- else }}
{{- .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/* The container's arguments: `m3ectl serve` and its flags (ENTRYPOINT is m3ectl). */}}
{{- define "m3ectl.args" -}}
- serve
{{- if eq .Values.model.layout "repository" }}
- --model-repository={{ .Values.model.mountPath }}
{{- else if eq .Values.model.layout "single" }}
- --model={{ if .Values.model.path }}{{ printf "%s/%s" .Values.model.mountPath .Values.model.path }}{{ else }}{{ .Values.model.mountPath }}{{ end }}
{{- with .Values.model.name }}
- --name={{ . }}
{{- end }}
{{- else }}
{{- fail (printf "model.layout must be repository or single, not %q" .Values.model.layout) }}
{{- end }}
{{- if eq .Values.model.layout "repository" }}
- --model-control-mode={{ .Values.serve.controlMode }}
{{- range .Values.serve.loadModels }}
- --load-model={{ . }}
{{- end }}
{{- if eq .Values.serve.controlMode "poll" }}
- --repository-poll-secs={{ .Values.serve.pollSeconds }}
{{- end }}
{{- end }}
- --engine={{ .Values.serve.engine }}
- --http-port={{ .Values.ports.http }}
- --grpc-port={{ .Values.ports.grpc }}
- --metrics-port={{ .Values.ports.metrics }}
{{- if .Values.serve.threads }}
- --threads={{ .Values.serve.threads }}
{{- end }}
{{- if .Values.serve.maxBatchTokens }}
- --max-batch-tokens={{ .Values.serve.maxBatchTokens }}
{{- end }}
- --max-length={{ .Values.serve.maxLength }}
{{- if not .Values.serve.truncate }}
- --no-truncate
{{- end }}
- --drain-timeout={{ .Values.serve.drainTimeoutSeconds }}s
{{- range .Values.serve.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}
