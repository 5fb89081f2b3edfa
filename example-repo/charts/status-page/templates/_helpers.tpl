{{- define "status-page.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: guestbook
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}
