#!/bin/sh
# run.sh BINDIR SECONDS: run every built harness for SECONDS each, on a
# scratch corpus seeded from t/fuzz/corpus/NAME when it exists.  Prints
# TAP so that t/runtests (or a human) can read the outcome.
bindir=${1:-t/fuzz/bin}
secs=${2:-10}
src=$(dirname "$0")
n=0; failed=0
for f in "$bindir"/fuzz_*; do
	[ -x "$f" ] || continue
	name=$(basename "$f")
	n=$((n + 1))
	work=$(mktemp -d /tmp/hermod-fuzz-XXXXXX)
	[ -d "$src/corpus/$name" ] && cp "$src/corpus/$name"/* "$work"/ 2>/dev/null
	if "$f" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$work/" "$work" >"$work.log" 2>&1; then
		echo "ok $n - $name ran ${secs}s clean"
	else
		failed=$((failed + 1))
		echo "not ok $n - $name found a crash"
		tail -40 "$work.log" | sed 's/^/#   /'
		ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* 2>/dev/null | sed 's/^/#   artifact: /'
	fi
	rm -rf "$work" "$work.log"
done
echo "1..$n"
[ $failed -eq 0 ]
