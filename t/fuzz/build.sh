#!/bin/sh
# build.sh SRCDIR OUTDIR: build every libFuzzer harness t/fuzz/fuzz_*.c
# with clang against all of lib/*.c (ASan + UBSan + libFuzzer).
set -e
src=${1:-.}
out=${2:-t/fuzz/bin}
CLANG=${CLANG:-clang}
command -v "$CLANG" >/dev/null 2>&1 || { echo "build.sh: clang not found (apt-get install clang)" >&2; exit 1; }
mkdir -p "$out"
flags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE -I$src/lib -I$src/t/fuzz"
libs="-ldb-5.3 -lcrypt -lssl -lcrypto -lcares"
# lib objects once, without the fuzzer main
objdir="$out/obj"
mkdir -p "$objdir"
for c in "$src"/lib/*.c; do
	o="$objdir/$(basename "$c" .c).o"
	if [ ! -f "$o" ] || [ "$c" -nt "$o" ]; then
		$CLANG -g -O1 -fsanitize=fuzzer-no-link,address,undefined -D_GNU_SOURCE -I"$src/lib" -c "$c" -o "$o"
	fi
done
for h in "$src"/t/fuzz/fuzz_*.c; do
	[ -f "$h" ] || continue
	n=$(basename "$h" .c)
	echo "  FUZZ     $n"
	$CLANG $flags "$h" "$objdir"/*.o $libs -o "$out/$n"
done
