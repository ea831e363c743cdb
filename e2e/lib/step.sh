#!/usr/bin/env bash
# step.sh "what" command...: runs a command, printing what it does and how long it took.
set -uo pipefail
what=$1; shift
printf '==> %s\n' "$what"
start=$SECONDS
"$@"
rc=$?
if ((rc == 0)); then
  printf '<== %s: ok (%ss)\n' "$what" $((SECONDS - start))
else
  printf '<== %s: FAILED after %ss (exit %d)\n' "$what" $((SECONDS - start)) "$rc" >&2
fi
exit $rc
