#!/usr/bin/env bash
# run.sh runs the benchmarks (-count 6) and the fairness experiment and
# writes the results to bench/results/. It takes several minutes.
#
#	./run.sh                # from bench/ or from anywhere
#	COUNT=10 ./run.sh       # more samples per benchmark
#	BENCH=Contended ./run.sh
set -euo pipefail

cd "$(dirname "$0")"
count=${COUNT:-6}
bench=${BENCH:-.}
mkdir -p results

benchstat=$(command -v benchstat || true)
if [ -z "$benchstat" ]; then
	gobin=$(go env GOBIN)
	[ -n "$gobin" ] || gobin=$(go env GOPATH)/bin
	if [ ! -x "$gobin/benchstat" ]; then
		echo "installing benchstat into $gobin" >&2
		GOWORK=off go install golang.org/x/perf/cmd/benchstat@latest
	fi
	benchstat=$gobin/benchstat
fi

{
	echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(git -C .. describe --always --dirty 2>/dev/null || echo unknown) $(go version)"
	echo "# load: $(cat /proc/loadavg 2>/dev/null || uptime)"
} >results/header.txt

echo "benchmarks: go test -run '^\$' -bench '$bench' -count $count" >&2
go test -run '^$' -bench "$bench" -count "$count" . | tee results/bench.tmp
mv results/bench.tmp results/bench.txt

"$benchstat" -col /pool results/bench.txt | tee results/benchstat.txt

echo "fairness: FAIRPOOL_FAIRNESS=1 go test -run '^TestFairnessRun\$' -v" >&2
status=0
FAIRPOOL_FAIRNESS=1 go test -run '^TestFairnessRun$' -count 1 -v . >results/fairness.tmp 2>&1 || status=$?
mv results/fairness.tmp results/fairness.txt
cat results/fairness.txt
exit $status
