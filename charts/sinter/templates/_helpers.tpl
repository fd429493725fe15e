{{/* The base name of the chart's objects: the release name, with "-sinter" unless the
release name already holds it. */}}
{{- define "sinter.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The operator's objects: Deployment, Service, ServiceAccount, RBAC. */}}
{{- define "sinter.operator.name" -}}
{{- printf "%s-operator" (include "sinter.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object of the chart. */}}
{{- define "sinter.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: sinter
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* What selects the operator's pods; never changes across upgrades. */}}
{{- define "sinter.operator.selectorLabels" -}}
app.kubernetes.io/name: sinter-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Every label of the operator's objects: the chart's and the selector's. */}}
{{- define "sinter.operator.labels" -}}
{{ include "sinter.labels" . }}
app.kubernetes.io/name: sinter-operator
app.kubernetes.io/component: operator
{{- end -}}

{{/* The image the operator puts into the workloads it creates. */}}
{{- define "sinter.serviceImage" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* The operator's own image: its overrides, else the service image. */}}
{{- define "sinter.operatorImage" -}}
{{- $repository := .Values.operator.image.repository | default .Values.image.repository -}}
{{- $tag := .Values.operator.image.tag | default .Values.image.tag | default .Chart.AppVersion -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "sinter.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- .Values.operator.serviceAccount.name | default (include "sinter.operator.name" .) -}}
{{- else -}}
{{- .Values.operator.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}
