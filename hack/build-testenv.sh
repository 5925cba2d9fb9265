#!/usr/bin/env bash
# Builds the binaries of the local Kubernetes control plane used by the tests,
# the dev cluster and `make demo`: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kwok (and kubectl, for people), all from their Go modules at
# pinned versions.
#
# Output goes to a cache directory outside the repository (printed at the end):
#   ${MGO_TESTENV_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mgo/testenv/v<kube-version>}
#     bin/    the binaries
#     stages/ kwok Stage definitions for nodes, pods and volumes (kwok --config)
#
# Idempotent: a binary whose stamp matches its pinned version is not rebuilt.
# Usage: hack/build-testenv.sh [--print-dir]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kube_mod="$here/testenv/kube"
etcd_mod="$here/testenv/etcd"

modversion() { # module dir, module path
	awk -v m="$2" '$1 == m || ($1 == "require" && $2 == m) { print $NF; exit }' "$1/go.mod"
}

KUBE_VERSION="$(modversion "$kube_mod" k8s.io/kubernetes)"
ETCD_VERSION="$(modversion "$etcd_mod" go.etcd.io/etcd/server/v3)"
KWOK_VERSION="v0.8.0"
[[ -n "$KUBE_VERSION" && -n "$ETCD_VERSION" ]] || { echo "build-testenv: cannot read pinned versions from hack/testenv/*/go.mod" >&2; exit 1; }

dir="${MGO_TESTENV_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mgo/testenv/$KUBE_VERSION}"
if [[ "${1:-}" == "--print-dir" ]]; then
	echo "$dir"
	exit 0
fi

bin="$dir/bin"
mkdir -p "$bin" "$dir/stages"

log() { printf 'build-testenv: %s\n' "$*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

# fresh NAME STAMP: true when bin/NAME exists and was built for STAMP.
fresh() { [[ -x "$bin/$1" && "$(cat "$bin/.$1.stamp" 2>/dev/null)" == "$2" ]]; }
stamp() { printf '%s' "$2" >"$bin/.$1.stamp"; }

export CGO_ENABLED=0

# Kubernetes control plane.
kube_stamp="kubernetes $KUBE_VERSION"
kube_bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
need=()
for b in "${kube_bins[@]}"; do fresh "$b" "$kube_stamp" || need+=("$b"); done
if ((${#need[@]})); then
	log "building ${need[*]} $KUBE_VERSION (a cold build takes about 10 minutes on 2 cores)"
	minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
	ldflags="-s -w"
	for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
	done
	tmp="$(mktemp -d "$dir/build.XXXXXX")"
	trap 'rm -rf "$tmp"' EXIT
	pkgs=()
	for b in "${need[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
	start=$SECONDS
	(cd "$kube_mod" && go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}") ||
		fail "go build of ${need[*]} in $kube_mod"
	for b in "${need[@]}"; do mv -f "$tmp/$b" "$bin/$b"; stamp "$b" "$kube_stamp"; done
	log "built ${need[*]} in $((SECONDS - start))s"
else
	log "${kube_bins[*]} $KUBE_VERSION: cached"
fi

# etcd, from a three-line main in hack/testenv/etcd.
etcd_stamp="etcd $ETCD_VERSION"
if ! fresh etcd "$etcd_stamp"; then
	log "building etcd $ETCD_VERSION"
	start=$SECONDS
	(cd "$etcd_mod" && go build -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" .) || fail "go build of etcd in $etcd_mod"
	mv -f "$bin/etcd.tmp" "$bin/etcd"; stamp etcd "$etcd_stamp"
	log "built etcd in $((SECONDS - start))s"
else
	log "etcd $ETCD_VERSION: cached"
fi

# kwok plays the kubelet for fake nodes.
kwok_stamp="kwok $KWOK_VERSION"
if ! fresh kwok "$kwok_stamp"; then
	log "building kwok $KWOK_VERSION"
	start=$SECONDS
	gobin="$(mktemp -d "$dir/kwok.XXXXXX")"
	GOBIN="$gobin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" || fail "go install sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
	mv -f "$gobin/kwok" "$bin/kwok"; rm -rf "$gobin"; stamp kwok "$kwok_stamp"
	log "built kwok in $((SECONDS - start))s"
else
	log "kwok $KWOK_VERSION: cached"
fi

# kwok's Stage definitions ship in its module under kustomize/stage. The
# "fast" pod stages make pods Ready as soon as they are scheduled (the
# "general" ones add seconds of random delay per pod, which only slows tests).
kwok_dir="$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -d "$kwok_dir/kustomize/stage" ]] || fail "kwok module has no kustomize/stage (looked in '$kwok_dir')"
rm -f "$dir/stages/"*.yaml
for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
	pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml \
	volume/fast/pvc-provision.yaml volume/fast/pv-bind.yaml volume/fast/pv-delete.yaml \
	volume/fast/pvc-delete.yaml; do
	[[ -f "$kwok_dir/kustomize/stage/$f" ]] || fail "kwok stage $f missing in $kwok_dir"
	install -m 0644 "$kwok_dir/kustomize/stage/$f" "$dir/stages/$(basename "$f")"
done

log "ready in $dir"
echo "$dir"
