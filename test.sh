#!/usr/bin/env bash
# Tests every module of the workspace (go.work) with -race, after gofmt and
# go vet. `go test ./...` from the root reaches only the root module.
# Extra arguments go to every `go test`, e.g. ./test.sh -short or -run Storm.
set -euo pipefail
cd "$(dirname "$0")"

mapfile -t modules < <(go list -m -f '{{.Dir}}')
status=0
for dir in "${modules[@]}"; do
	rel=${dir#"$PWD"}
	echo "== module .${rel}"
	(
		cd "$dir"
		unformatted=$(gofmt -l .)
		if [ -n "$unformatted" ]; then
			echo "gofmt would change:"; echo "$unformatted"; exit 1
		fi
		go vet ./...
		go test -race -count=1 "$@" ./...
	) || status=1
done
exit $status
