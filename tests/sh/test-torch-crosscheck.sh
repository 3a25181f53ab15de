# One training step of fz against the same step in PyTorch (python3-torch): for the presets
# vae-mlp and vae-conv, with the same weights (fz's model file), batch, dropout masks and
# sampling noise, the forward values, loss parts, every gradient, the Adam/AdamW step, the
# optimiser moments and the BatchNorm running statistics agree per tensor within
# max|fz - torch| <= 1e-4 * max|torch| (tests/sh/torch_crosscheck.py prints the table).
# Under SAN=1 only vae-mlp runs (vae-conv has 11.7 M parameters).
. "$FZ_ROOT/tests/sh/lib.sh"

XC="$FZ_TESTS/test_crosscheck"
[ -x "$XC" ] || fail "$XC not built"
$PY -c 'import numpy' 2>/dev/null || skip "python3 numpy not installed"
$PY -c 'import torch' 2>/dev/null || skip "python3 torch not installed (Debian: python3-torch)"

presets="vae-mlp:16 vae-conv:4"
[ "${SAN:-}" = 1 ] && presets="vae-mlp:16"
# shellcheck disable=SC2086 # one argument per preset
if ! $PY "$FZ_ROOT/tests/sh/torch_crosscheck.py" "$XC" "$T" $presets >"$T/log" 2>&1; then
    cat "$T/log"
    fail "fz and torch disagree (table above)"
fi
grep -E '^(worst|note|vae)' "$T/log"
for pb in $presets; do
    grep -q "^${pb%:*}: all [0-9]* tensors agree" "$T/log" || fail "${pb%:*}: no verdict"
done
exit 0
