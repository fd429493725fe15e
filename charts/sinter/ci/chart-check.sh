#!/usr/bin/env bash
# The chart's checks that need tools `cargo test` does not: `helm lint` and
# `helm template` when helm is installed, and an install into a throw-away kind or k3d
# cluster when one of them (and a running Docker) is there. A missing tool skips its
# step with a line that says so; a step that runs and fails fails the check.
#
# Settings (environment):
#   CHART_IMAGE         image with the Sinter binaries, loaded into the cluster when the
#                       local Docker has it (default ghcr.io/sinter/sinter:0.1.0)
#   CHART_CLUSTER       name of the throw-away cluster (default sinter-chart-check)
#   CHART_TIMEOUT       how long to wait for each step of the install (default 300s)
#   CHART_KEEP_CLUSTER  1: leave the cluster running afterwards, for a look around
set -euo pipefail
cd "$(dirname "$0")/../../.."

CHART=charts/sinter
IMAGE="${CHART_IMAGE:-ghcr.io/sinter/sinter:0.1.0}"
CLUSTER="${CHART_CLUSTER:-sinter-chart-check}"
TIMEOUT="${CHART_TIMEOUT:-300s}"
RELEASE=sinter
RELEASE_NAMESPACE=sinter-system
SOLUTION=examples/demo/solution.yaml
SOLUTION_NAMESPACE=demo
SOLUTION_NAME=pump-health

say() { echo "chart-check: $*"; }
have() { command -v "$1" >/dev/null 2>&1; }

# --- helm lint and helm template -------------------------------------------------------

if ! have helm; then
  say "helm not found, skipped helm lint"
  say "helm not found, skipped helm template"
  say "helm not found, skipped the end-to-end install"
  exit 0
fi

helm lint --strict "$CHART"
helm lint --strict "$CHART" --set serviceMonitor.enabled=true \
  --set auth.tokenSecret=sinter-tokens --set otel.endpoint=http://otel-collector:4317
say "helm lint passed"

rendered="$(mktemp)"
trap 'rm -f "$rendered"' EXIT
helm template "$RELEASE" "$CHART" --namespace "$RELEASE_NAMESPACE" >"$rendered"
for kind in ServiceAccount Deployment Service ClusterRole ClusterRoleBinding Role RoleBinding ConfigMap; do
  grep -q "^kind: $kind\$" "$rendered" || { say "helm template rendered no $kind"; exit 1; }
done
helm template "$RELEASE" "$CHART" --set serviceMonitor.enabled=true | grep -q '^kind: ServiceMonitor$' \
  || { say "helm template rendered no ServiceMonitor with serviceMonitor.enabled=true"; exit 1; }
if helm template "$RELEASE" "$CHART" --set logFormat=xml >/dev/null 2>&1; then
  say "helm template accepted logFormat=xml; values.schema.json is not applied"
  exit 1
fi
say "helm template passed"

# --- end to end in a throw-away cluster --------------------------------------------------

if have kind; then
  tool=kind
elif have k3d; then
  tool=k3d
else
  say "kind and k3d not found, skipped the end-to-end install"
  exit 0
fi
if ! have kubectl; then
  say "kubectl not found, skipped the end-to-end install"
  exit 0
fi
if ! have docker || ! docker info >/dev/null 2>&1; then
  say "no running Docker for $tool, skipped the end-to-end install"
  exit 0
fi
if ! ls "$CHART"/crds/*.yaml >/dev/null 2>&1; then
  say "no CRD in $CHART/crds (make crd writes it), skipped the end-to-end install"
  exit 0
fi

case "$tool" in
  kind) context="kind-$CLUSTER" ;;
  k3d) context="k3d-$CLUSTER" ;;
esac
k() { kubectl --context "$context" "$@"; }

cleanup() {
  rm -f "$rendered"
  if [ "${CHART_KEEP_CLUSTER:-0}" = 1 ]; then
    say "left the $tool cluster $CLUSTER running (context $context)"
    return
  fi
  case "$tool" in
    kind) kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true ;;
    k3d) k3d cluster delete "$CLUSTER" >/dev/null 2>&1 || true ;;
  esac
}
trap cleanup EXIT

diagnose() {
  say "end-to-end install failed; what the cluster shows:"
  k get solutions -A -o yaml || true
  k get pods -A -o wide || true
  k -n "$RELEASE_NAMESPACE" logs -l app.kubernetes.io/name=sinter-operator --tail=100 --prefix || true
  k -n "$SOLUTION_NAMESPACE" get events --sort-by=.lastTimestamp || true
}

say "creating the $tool cluster $CLUSTER"
case "$tool" in
  kind) kind create cluster --name "$CLUSTER" --wait 180s ;;
  k3d) k3d cluster create "$CLUSTER" --wait ;;
esac

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  case "$tool" in
    kind) kind load docker-image "$IMAGE" --name "$CLUSTER" ;;
    k3d) k3d image import "$IMAGE" --cluster "$CLUSTER" ;;
  esac
  say "loaded $IMAGE into the cluster"
else
  say "$IMAGE is not in the local Docker; the cluster pulls it"
fi
# repository:tag, where the repository may hold a registry's host:port.
repository="${IMAGE%:*}"
tag="${IMAGE##*:}"
if [ "$repository" = "$IMAGE" ] || [[ "$tag" == */* ]]; then
  repository="$IMAGE"
  tag=latest
fi

trap diagnose ERR

say "installing Kafka and PostgreSQL for the test"
k apply -f "$CHART/ci/e2e-fixtures.yaml"
k -n sinter-e2e rollout status deployment/kafka --timeout="$TIMEOUT"
k -n sinter-e2e rollout status deployment/postgres --timeout="$TIMEOUT"

k create namespace "$SOLUTION_NAMESPACE"
database=postgres://sinter:sinter@postgres.sinter-e2e.svc.cluster.local:5432
k -n "$SOLUTION_NAMESPACE" create secret generic sinter-database \
  --from-literal=analytics="$database/sinter_analytics" \
  --from-literal=context="$database/sinter_context" \
  --from-literal=orchestrator="$database/sinter_orchestrator"

say "installing the chart"
helm --kube-context "$context" install "$RELEASE" "$CHART" \
  --namespace "$RELEASE_NAMESPACE" --create-namespace \
  --set-string image.repository="$repository" --set-string image.tag="$tag" \
  --set kafka.brokers=kafka.sinter-e2e.svc.cluster.local:9092 \
  --set database.secretName=sinter-database \
  --wait --timeout "$TIMEOUT"

say "applying $SOLUTION"
k apply -f "$SOLUTION"
k -n "$SOLUTION_NAMESPACE" wait "solution/$SOLUTION_NAME" --for=condition=Ready --timeout="$TIMEOUT"
k -n "$SOLUTION_NAMESPACE" get configmap "$SOLUTION_NAME-config" >/dev/null
for service in ingest analytics context orchestrator; do
  k -n "$SOLUTION_NAMESPACE" rollout status "deployment/$SOLUTION_NAME-$service" --timeout="$TIMEOUT"
  k -n "$SOLUTION_NAMESPACE" get service "$SOLUTION_NAME-$service" >/dev/null
done
say "the Solution is Ready and its four workloads are available"

say "deleting the Solution"
k -n "$SOLUTION_NAMESPACE" delete "solution/$SOLUTION_NAME" --wait --timeout="$TIMEOUT"
k -n "$SOLUTION_NAMESPACE" wait "deployment/$SOLUTION_NAME-ingest" --for=delete --timeout="$TIMEOUT"
say "the Solution's workloads are gone with it"

trap - ERR
say "end-to-end install passed on $tool"
