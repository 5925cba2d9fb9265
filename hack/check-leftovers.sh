#!/usr/bin/env bash
# Fails when a process started from the test control plane's binaries is still
# running for a test (its working directory is a mgo-testenv-* temporary
# directory; a dev cluster is not counted): after `make test` none may be left.
# Usage: hack/check-leftovers.sh TESTENV_DIR
set -euo pipefail
dir="${1:?usage: check-leftovers.sh TESTENV_DIR}"
# Zombies are dead already (waiting to be reaped), so they do not count.
left="$(ps -eo pid=,stat=,args= | awk -v d="$dir/bin/" '$2 !~ /^Z/ && $3 != "awk" && index($0, d) && index($0, "/mgo-testenv-") { print }' || true)"
if [[ -n "$left" ]]; then
	echo "check-leftovers: control plane processes outlived the tests:" >&2
	echo "$left" >&2
	exit 1
fi
echo "check-leftovers: no control plane process left running"
