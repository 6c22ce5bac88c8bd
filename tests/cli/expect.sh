#!/usr/bin/env bash
# expect.sh EXIT_CODE EXPECTED_TEXT -- COMMAND...: runs COMMAND, passes when it exits with
# EXIT_CODE and its stdout+stderr contains EXPECTED_TEXT (empty text: any output).
set -u
want_rc=$1; want_text=$2; shift 3
out=$("$@" 2>&1); rc=$?
if [[ $rc -ne $want_rc ]]; then
  printf 'exit %d, expected %d\n--- output ---\n%s\n' "$rc" "$want_rc" "$out"; exit 1
fi
if [[ -n $want_text && $out != *"$want_text"* ]]; then
  printf 'output lacks "%s"\n--- output ---\n%s\n' "$want_text" "$out"; exit 1
fi
exit 0
