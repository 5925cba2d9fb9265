#!/usr/bin/env bash
# Installs the system packages mgo's build, tests and demo need on a Debian
# machine, with apt-get, when they are missing. Go itself must be 1.26 or newer
# (with GOTOOLCHAIN=auto an older go fetches the right toolchain on its own).
set -euo pipefail

# command -> Debian package
declare -A pkgs=(
	[make]=make
	[git]=git
	[gcc]=gcc         # cgo, needed by the race detector
	[ps]=procps       # hack/check-leftovers.sh
	[curl]=curl       # the demo talks to mgo like a CI job does
	[update-ca-certificates]=ca-certificates # the image's CA bundle
	[unshare]=util-linux # the chart test runs mgo as a pod would see itself
	[/usr/bin/chromium]=chromium # the dashboard's tests drive it headless (internal/ui)
)
missing=()
for cmd in "${!pkgs[@]}"; do
	command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkgs[$cmd]}")
done
if ! command -v go >/dev/null 2>&1 && [[ ! -x /usr/local/go/bin/go ]]; then
	echo "install-deps: Go is not installed; install Go 1.26 or newer (https://go.dev/dl/) and put it on PATH" >&2
	exit 1
fi
((${#missing[@]})) || exit 0

echo "install-deps: installing ${missing[*]}" >&2
sudo=()
if [[ $(id -u) -ne 0 ]]; then
	command -v sudo >/dev/null 2>&1 || { echo "install-deps: need root or sudo to install ${missing[*]}" >&2; exit 1; }
	sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
