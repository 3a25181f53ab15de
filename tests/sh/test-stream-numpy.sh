#!/usr/bin/env bash
# Both directions: NumPy reads what fz writes (file and pipe), and fz reads what NumPy wrote
# (several structured arrays saved one after another).
. "$(dirname "$0")/lib.sh"
[ -x "$PY" ] && "$PY" -c 'import numpy' 2>/dev/null || skip "python3-numpy is not installed"
HERE="$FZ_ROOT/tests/sh"

"$FZ_TESTS/test_stream" write "$T/fz.npy" 2>/dev/null || fail "could not write the sample stream"
"$PY" "$HERE/stream_numpy.py" read-file "$T/fz.npy" || fail "NumPy could not read an fz stream file"
cat "$T/fz.npy" | "$PY" "$HERE/stream_numpy.py" read-pipe || fail "NumPy could not read an fz stream from a pipe"

read -r n stats < <("$PY" "$HERE/stream_numpy.py" write "$T/np.npy") || fail "NumPy writer failed"
[ "$n" = 12 ] || fail "NumPy wrote $n rows, expected 12"
cat "$T/np.npy" | fz-info -n 2 >"$T/info" || fail "fz-info could not read NumPy's stream"
grep -q '^rows: *12$' "$T/info" || fail "row count: $(cat "$T/info")"
grep -q 'metadata: {"classes": \["no", "yes"\]}' "$T/info" || fail "metadata lost: $(cat "$T/info")"
read -r mn mx mean < <(awk '$1 == "x" && $2 == "f4" { print $4, $5, $6 }' "$T/info")
"$PY" - "$stats" "$mn $mx $mean" <<'PY' || fail "x statistics differ: numpy '$stats', fz-info '$mn $mx $mean'"
import sys
a = [float(v) for v in sys.argv[1].split()]
b = [float(v) for v in sys.argv[2].split()]
assert all(abs(x - y) <= 1e-5 * max(1, abs(x)) for x, y in zip(a, b)), (a, b)
PY
grep -q "name='n0'" "$T/info" || fail "byte-string field not shown: $(cat "$T/info")"
exit 0
