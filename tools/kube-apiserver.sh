#!/usr/bin/env bash
# Builds kube-apiserver v1.20.2 once per machine, from Debian bookworm's `kubernetes` source package (the full
# upstream tree with vendor/, so the build downloads nothing), into a cache outside the repository, and prints
# the binary's path on stdout. The tests that need a real API server (libs/testing startKubeApiServer) use it.
#   tools/kube-apiserver.sh              build when missing (about 4 min on 2 cores, 1.3 GB of memory), print the path
#   tools/kube-apiserver.sh --print-path print the path if built, fail otherwise (never builds)
# Needs (Debian, as root; .ci/run installs them): deb-src entries for bookworm, golang-go (Go 1.19), etcd-server.
# See /work/shared/reference/kube-apiserver.md for the why of each step.
set -euo pipefail

VERSION=1.20.2
DEB_VERSION=1.20.5+really1.20.2-1.1+deb12u1
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/flexmig/kube-apiserver-$VERSION"
BIN="$CACHE/kube-apiserver"

say() { printf '[flexmig] %s\n' "$*" >&2; }

if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi
if [ "${1:-}" = "--print-path" ]; then
  say "kube-apiserver $VERSION is not built on this machine ($BIN is missing): run tools/kube-apiserver.sh"
  exit 1
fi

command -v go >/dev/null || { say "go is missing: apt-get install golang-go (Debian's Go 1.19 builds kubernetes 1.20)"; exit 1; }
mkdir -p "$CACHE"
# one build at a time per machine: a second caller waits for the first, then finds the binary
exec 9>"$CACHE/.lock"
say "waiting for the build lock $CACHE/.lock (another build may be running)"
flock 9
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi

W="$CACHE/build"
rm -rf "$W"; mkdir -p "$W"
cd "$W"
say "fetching Debian's kubernetes source package $DEB_VERSION (apt-get source; needs deb-src entries)"
if ! apt-get source --download-only "kubernetes=$DEB_VERSION" >&2; then
  say "apt-get source failed: add deb-src entries for bookworm (see .ci/run) and run apt-get update"
  exit 1
fi
tar xzf "kubernetes_${DEB_VERSION%%-*}.orig.tar.gz"
SRC="$W/kubernetes-$VERSION"
printf "KUBE_GIT_VERSION='v%s'\nKUBE_GIT_MAJOR='1'\nKUBE_GIT_MINOR='20'\nKUBE_GIT_TREE_STATE='clean'\n" "$VERSION" > "$W/version.env"
export GOPATH="$SRC/.go" GOCACHE="$W/gocache" GOPROXY=off GOFLAGS= CGO_ENABLED=0 HOME="$W/home" KUBE_GIT_VERSION_FILE="$W/version.env"
mkdir -p "$GOPATH/src/k8s.io" "$HOME"
ln -sfn ../../.. "$GOPATH/src/k8s.io/kubernetes"
say "building kube-apiserver v$VERSION with $(go version) (make WHAT=cmd/kube-apiserver; about 4 min on 2 cores)"
started=$(date +%s)
(cd "$SRC" && make WHAT=cmd/kube-apiserver) >&2
"$SRC/_output/bin/kube-apiserver" --version >&2
install -m 0755 "$SRC/_output/bin/kube-apiserver" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
say "built in $(( $(date +%s) - started )) s; removing the build tree (about 1.8 GB)"
cd "$CACHE" && rm -rf "$W"
echo "$BIN"
