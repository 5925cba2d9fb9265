{{/* The chart name, or nameOverride. */}}
{{- define "mgo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name of the release's objects. */}}
{{- define "mgo.fullname" -}}
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

{{- define "mgo.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mgo.labels" -}}
helm.sh/chart: {{ include "mgo.chart" . }}
{{ include "mgo.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mgo
{{- end }}

{{- define "mgo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mgo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mgo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mgo.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: repository:tag, or repository@digest. */}}
{{- define "mgo.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* Checks of values the schema cannot express. */}}
{{- define "mgo.validate" -}}
{{- if not .Values.git.url }}
{{- fail "git.url is required: the gitops repository mgo serves (https:// or ssh://)" }}
{{- end }}
{{- if and (not .Values.auth.tokensSecret) (not .Values.auth.insecureNoAuth) }}
{{- fail "auth.tokensSecret is required: an existing Secret holding the API tokens file (or auth.insecureNoAuth=true for a local demo)" }}
{{- end }}
{{- if and .Values.git.sshKeyKey (not .Values.git.knownHostsKey) }}
{{- fail "git.knownHostsKey is required with git.sshKeyKey: mgo checks the SSH server's host key" }}
{{- end }}
{{- if and (or .Values.git.sshKeyKey .Values.git.bearerTokenKey .Values.git.caKey .Values.git.knownHostsKey) (not .Values.git.existingSecret) }}
{{- fail "git.existingSecret is required when a git credential key is set" }}
{{- end }}
{{- if and .Values.rbac.create (not .Values.rbac.clusterWide) (not .Values.rbac.namespaces) }}
{{- fail "rbac.namespaces must list at least one namespace when rbac.clusterWide is false" }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (ne .Values.state.type "kubernetes") }}
{{- fail "replicaCount > 1 needs state.type kubernetes: with bolt one replica keeps the deployment records in its own file" }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) .Values.persistence.enabled }}
{{- fail "persistence.enabled with replicaCount > 1: each replica needs its own data directory (with state.type kubernetes the records are in the API; leave persistence off)" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.serviceMonitor.tokenSecret.name) (not .Values.auth.insecureNoAuth) }}
{{- fail "metrics.serviceMonitor.tokenSecret.name is required: /metrics needs a token (routes: [metrics])" }}
{{- end }}
{{- end }}

{{/* The base URL for links in notifications: externalURL, else the first Ingress host. */}}
{{- define "mgo.externalURL" -}}
{{- if .Values.externalURL -}}
{{- trimSuffix "/" .Values.externalURL -}}
{{- else if and .Values.ingress.enabled .Values.ingress.hosts -}}
{{- $host := (index .Values.ingress.hosts 0).host -}}
{{- if $host -}}
{{- if .Values.ingress.tls }}https{{ else }}http{{ end }}://{{ $host }}
{{- end -}}
{{- end -}}
{{- end -}}
