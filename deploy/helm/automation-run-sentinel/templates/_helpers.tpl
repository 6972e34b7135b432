{{/* Chart name, release-scoped full name, labels. */}}
{{- define "sentinel.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sentinel.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "sentinel.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "sentinel.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: automation-run-sentinel
{{- end -}}

{{- define "sentinel.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sentinel.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* A component's name: the values key in kebab case (k8sWatch -> k8s-watch). */}}
{{- define "sentinel.componentName" -}}
{{- regexReplaceAll "([a-z0-9])([A-Z])" . "${1}-${2}" | lower -}}
{{- end -}}

{{- define "sentinel.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The service account without API access (every component but the Kubernetes readers). */}}
{{- define "sentinel.serviceAccountName" -}}
{{- include "sentinel.fullname" . -}}
{{- end -}}

{{/* The service account of k8s-watch and log-stream, bound to the RBAC rules. */}}
{{- define "sentinel.kubeServiceAccountName" -}}
{{- printf "%s-kube-reader" (include "sentinel.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sentinel.partitions" -}}
{{- (.Values.config.topics | default dict).partitions | default 3 | int -}}
{{- end -}}

{{/* config.yaml as every component reads it; required keys checked here. */}}
{{- define "sentinel.configYaml" -}}
{{- $kafka := .Values.config.kafka | default dict -}}
{{- $store := .Values.config.store | default dict -}}
{{- if not $kafka.bootstrap_servers -}}
{{- fail "config.kafka.bootstrap_servers is required: the chart runs against your Kafka cluster" -}}
{{- end -}}
{{- if not $store.dsn -}}
{{- fail "config.store.dsn is required (http(s)://user@host:8123): the image has no embedded ClickHouse engine" -}}
{{- end -}}
{{- toYaml .Values.config -}}
{{- end -}}

{{/* Environment shared by every container: config file, pod identity, secrets by reference. */}}
{{- define "sentinel.env" -}}
- name: SENTINEL_CONFIG
  value: /etc/sentinel/config.yaml
- name: SENTINEL_EMBEDDED__DATA_DIR
  value: {{ .Values.dataDir.path | quote }}
- name: SENTINEL_OPS__HOST
  value: "0.0.0.0"
- name: SENTINEL_OPS__PORT
  value: {{ .Values.opsPort | quote }}
- name: POD_NAME
  valueFrom:
    fieldRef: {fieldPath: metadata.name}
- name: POD_NAMESPACE
  valueFrom:
    fieldRef: {fieldPath: metadata.namespace}
{{- range .Values.secretEnv }}
- name: {{ required "secretEnv[].name is required" .name }}
  valueFrom:
    secretKeyRef:
      name: {{ required "secretEnv[].secretName is required" .secretName }}
      key: {{ required "secretEnv[].key is required" .key }}
      {{- if hasKey . "optional" }}
      optional: {{ .optional }}
      {{- end }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "sentinel.volumes" -}}
- name: config
  configMap:
    name: {{ include "sentinel.fullname" . }}
- name: data
  emptyDir:
    sizeLimit: {{ .Values.dataDir.sizeLimit }}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- end -}}

{{- define "sentinel.volumeMounts" -}}
- name: config
  mountPath: /etc/sentinel
  readOnly: true
- name: data
  mountPath: {{ .Values.dataDir.path }}
- name: tmp
  mountPath: /tmp
{{- end -}}


{{- /* What the watcher and log streamer read: exactly these rules, nothing else. */ -}}
{{- define "sentinel.readRules" -}}
- apiGroups: [""]
  resources: [pods, services, events]
  verbs: [get, list, watch]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
{{- end -}}
