{{/* The name of one service's objects: <release>-<service>. */}}
{{- define "sinter.name" -}}
{{- printf "%s-%s" .root.Release.Name .service | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels shared by every object of one service. */}}
{{- define "sinter.labels" -}}
app.kubernetes.io/name: sinter-{{ .service }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/part-of: sinter
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{- end -}}
