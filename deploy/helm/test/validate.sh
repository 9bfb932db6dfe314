#!/usr/bin/env bash
# Validates the evosip Helm chart offline:
#   deploy/helm/test/validate.sh [CHART_DIR]
# For the default values and each examples/*.yaml: `helm lint --strict`, `helm template`, and
# every rendered object checked by validate-objects.mjs (Kubernetes schemas, unknown fields,
# Multus NetworkAttachmentDefinitions, references between objects, probes and drain timing).
# Rendered manifests are kept in EVOSIP_RENDER_DIR (default: a temporary folder) as
# <values name>.yaml, and as a JSON array of objects in <values name>.json. An example's line "# validate: external-secret=NAME" names a Secret the
# example expects to exist beforehand. Exit status 1 when anything fails.
# Tools: deploy/helm/test/install-tools (run by `make deps`).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
chart=$(cd "${1:-$here/../evosip}" && pwd)
tools=${EVOSIP_K8S_TOOLS:-$HOME/.cache/evosip-k8s-tools}
helm=$tools/bin/helm
if [[ ! -x $helm || ! -d $tools/node_modules/kubernetes-models ]]; then
  echo "validate: helm or kubernetes-models missing in $tools: run deploy/helm/test/install-tools (make deps)" >&2
  exit 2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=${EVOSIP_RENDER_DIR:-$work/rendered}
mkdir -p "$out"
# helm wants writable config, cache and data folders; none of them is read for a local chart.
export HELM_CONFIG_HOME=$work/helm/config HELM_CACHE_HOME=$work/helm/cache HELM_DATA_HOME=$work/helm/data

failed=0
check() {
  local name=$1 values=$2 args=() external=""
  if [[ -n $values ]]; then
    args=(-f "$values")
    external=$(sed -n 's/^# validate: external-secret=\([A-Za-z0-9.-]*\).*/\1/p' "$values")
  fi
  echo "== $name"
  if ! "$helm" lint --strict "$chart" "${args[@]}" >"$work/lint.log" 2>&1; then
    cat "$work/lint.log" >&2
    echo "FAIL $name: helm lint --strict" >&2
    failed=1
    return
  fi
  if ! "$helm" template evosip "$chart" --namespace voice "${args[@]}" >"$out/$name.yaml" 2>"$work/template.log"; then
    cat "$work/template.log" >&2
    echo "FAIL $name: helm template" >&2
    failed=1
    return
  fi
  if ! EVOSIP_K8S_TOOLS=$tools EVOSIP_EXTERNAL_SECRET=$external node "$here/validate-objects.mjs" "$out/$name.yaml" "$out/$name.json"; then
    echo "FAIL $name: rendered objects" >&2
    failed=1
  fi
}

check default ""
for values in "$chart"/examples/*.yaml; do
  [[ -e $values ]] || continue
  check "$(basename "$values" .yaml)" "$values"
done
if ((failed)); then
  echo "validate: the chart has errors" >&2
  exit 1
fi
echo "validate: chart $chart is valid"
