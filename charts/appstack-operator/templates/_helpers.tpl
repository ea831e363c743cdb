{{/* Chart name, overridable. */}}
{{- define "appstack-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of every object: the release name, plus the chart name unless the
release name already contains it (so `helm install appstack-operator` gives
plain "appstack-operator").
*/}}
{{- define "appstack-operator.fullname" -}}
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

{{- define "appstack-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable for the life of a release (Deployment selectors are immutable). */}}
{{- define "appstack-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "appstack-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "appstack-operator.labels" -}}
helm.sh/chart: {{ include "appstack-operator.chart" . }}
{{ include "appstack-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "appstack-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "appstack-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "appstack-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "appstack-operator.leaseName" -}}
{{- default (include "appstack-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{- define "appstack-operator.leaseNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.leaseNamespace }}
{{- end }}

{{/*
What the operator does to AppStacks and their children, and nothing more
(interfaces: field manager appstack-operator, Server-Side Apply). `create`:
a new child is created with one POST (and the metadata `patch` of its
managedFields moves the create's fields under the apply's entry).
No wildcards: every kind and verb is spelled out.
*/}}
{{- define "appstack-operator.rules" -}}
- apiGroups: ["appstack.dev"]
  resources: ["appstacks"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["appstack.dev"]
  resources: ["appstacks/status"]
  verbs: ["patch"]
{{- /* blockOwnerDeletion on the children's owner references needs this where
the OwnerReferencesPermissionEnforcement admission plugin runs (OpenShift). */}}
- apiGroups: ["appstack.dev"]
  resources: ["appstacks/finalizers"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services", "secrets", "configmaps"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- /* Read only: a store pod, to say why it is not ready; a stack's backup
pods (those its backup Jobs control), whose termination messages say what a
backup holds, found through the Jobs its backup CronJobs control. Watched:
the pods labelled with a store role (appstack.dev/role, metadata only), so a
role label someone changed is put back at once. */}}
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
{{- /* A store with replicas: the operator labels its pods appstack.dev/role
(what its Services select: PostgreSQL's primary/replica, the Redis master a
Sentinel majority names), and deletes an old PostgreSQL primary's pod to
fence it, or a replica's that cannot follow the new timeline. Only pods its
own StatefulSets control (checked by uid). */}}
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["patch", "delete"]
{{- /* The last lines of a failed migration's pod, for status: read with
tailLines and limitBytes (a few lines, at most 2 KiB), only while a
migration Job has failed. */}}
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
{{- /* Jobs: the components' migrations are the stack's own (created once,
pruned when superseded); backup Jobs are only listed and watched. */}}
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- /* Backup volumes are created once and never changed or deleted: they
outlive the stack. */}}
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "create"]
- apiGroups: ["batch"]
  resources: ["cronjobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- /* Routes: a component's Ingress, or its HTTPRoute (Gateway API; without
its CRDs the operator reports the routes that need them and the rest
converges). */}}
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
