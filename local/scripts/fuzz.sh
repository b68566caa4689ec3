#!/usr/bin/env bash
# Runs every Go fuzz target in the repo for FUZZTIME each (default 100000x
# executions). `go test -fuzz` takes one target in one package per call,
# hence the loop. Budgets are execution counts, not durations: a duration
# races Go's fuzz coordinator at the deadline and fails with a spurious
# "context deadline exceeded" on a busy machine (golang/go#75804, fixed in
# Go 1.27). `make test` runs it briefly (FUZZTIME=2000x); `make fuzz` longer. A crash
# writes its input under the package's testdata/fuzz/<Target>/: commit it
# with the fix so it stays a regression seed.
set -euo pipefail
cd "$(dirname "$0")/../.."
fuzztime="${FUZZTIME:-100000x}"
targets=$(grep -rl --include='*_test.go' '^func Fuzz' shared local functions 2>/dev/null |
	xargs grep -H '^func Fuzz' | sed -E 's#^(.*)/[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]+).*#\1 \2#' | sort -u)
[ -n "$targets" ] || { echo "fuzz.sh: no fuzz targets found" >&2; exit 1; }
n=0
while read -r dir name; do
	n=$((n + 1))
	echo "fuzz ${dir} ${name} (${fuzztime})"
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "./${dir}" >/tmp/threadline-fuzz.$$ 2>&1 || {
		cat /tmp/threadline-fuzz.$$; rm -f /tmp/threadline-fuzz.$$; exit 1
	}
done <<<"$targets"
rm -f /tmp/threadline-fuzz.$$
echo "fuzz: ${n} targets ran ${fuzztime} each without a failure"
