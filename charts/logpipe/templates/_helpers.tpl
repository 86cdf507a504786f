{{- define "logpipe.labels" -}}
app.kubernetes.io/name: logpipe
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "logpipe.credentials" -}}
{{- if .Values.elasticsearch.existingSecret }}
env:
  {{- range $key, $var := dict "username" "LOGPIPE_ELASTICSEARCH_USERNAME" "password" "LOGPIPE_ELASTICSEARCH_PASSWORD" "api_key" "LOGPIPE_ELASTICSEARCH_API_KEY" }}
  - name: {{ $var }}
    valueFrom:
      secretKeyRef: {name: {{ $.Values.elasticsearch.existingSecret | quote }}, key: {{ $key }}, optional: true}
  {{- end }}
{{- end }}
{{- end -}}
