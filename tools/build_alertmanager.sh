#!/usr/bin/env bash
# Build Prometheus Alertmanager from its Go module source into the git-ignored cache, once.
#
#   tools/build_alertmanager.sh            # prints the path of the binary
#
# `go install github.com/prometheus/alertmanager/cmd/alertmanager@VERSION` fails: the module does
# not ship the built web UI that ui/web.go embeds (//go:embed app/dist). Its v2 API works without
# the UI, so we copy the module source out of the Go module cache, create the two UI folders
# (with a placeholder file each) and build ./cmd/alertmanager there. About 45 s on 2 cores; later calls return at once.
# The integration tests call this (tests/support/alertmanager.py), so `make test` on a fresh
# machine builds it once. Needs Go >= the module's go directive (1.26 for v0.35.0).
set -euo pipefail

VERSION="${ALERTMANAGER_VERSION:-0.35.0}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${SENTINEL_CACHE_DIR:-$REPO/.cache}"
OUT_DIR="$CACHE/alertmanager-$VERSION"
BIN="$OUT_DIR/alertmanager"

if [[ -x "$BIN" ]]; then
    echo "$BIN"
    exit 0
fi
command -v go >/dev/null || { echo "go is not installed (needed to build Alertmanager)" >&2; exit 3; }

MODULE="github.com/prometheus/alertmanager@v$VERSION"
SRC_DIR="$(go mod download -json "$MODULE" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')"
[[ -d "$SRC_DIR" ]] || { echo "go mod download $MODULE gave no source directory" >&2; exit 3; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/alertmanager-build.XXXXXX")"
trap 'chmod -R u+w "$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT
cp -R "$SRC_DIR/." "$WORK/src"
chmod -R u+w "$WORK/src"  # the module cache is read-only
mkdir -p "$WORK/src/ui/app/dist/elm" "$WORK/src/ui/app/dist/mantine"
# embed refuses a directory with no embeddable files (names starting with "." do not count);
# one placeholder file each is enough: the v2 API does not need the UI.
echo "web UI not built" > "$WORK/src/ui/app/dist/elm/index.html"
echo "web UI not built" > "$WORK/src/ui/app/dist/mantine/index.html"
mkdir -p "$OUT_DIR"
(cd "$WORK/src" && GOFLAGS="${GOFLAGS:-} -mod=mod" go build \
    -ldflags "-X github.com/prometheus/common/version.Version=$VERSION" \
    -o "$WORK/alertmanager" ./cmd/alertmanager) >&2
mv "$WORK/alertmanager" "$BIN"  # appears whole or not at all
echo "$BIN"
