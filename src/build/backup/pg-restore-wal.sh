#!/bin/sh
# PostgreSQL's restore_command during a restore: pg-restore-wal %f %p.
# Exit 1 means "not archived" (the end of the archive: recovery ends there).
# A file whose checksum does not match exits 126, which stops recovery:
# never skip a damaged file and promote early with silently lost commits.
# APPSTACK_RESTORE_DIR (the server's environment) says where the archive
# is; without it (a pod older than these scripts) recovery stops too rather
# than end early. No library: a failure to read it would exit 2, "not
# archived".
if [ -z "${APPSTACK_RESTORE_DIR:-}" ]; then
  echo "pg-restore-wal: APPSTACK_RESTORE_DIR is not set: recovery stops here" >&2
  exit 126
fi
src=$APPSTACK_RESTORE_DIR/wal/$1.gz
[ -f "$src" ] || exit 1
want=$(cat "$src.sha256" 2>/dev/null)
got=$(sha256sum "$src" | cut -d' ' -f1)
if [ -z "$want" ] || [ "$got" != "$want" ]; then
  echo "pg-restore-wal: $src does not match its checksum ($got, recorded '$want'): recovery stops here" >&2
  exit 126
fi
gzip -dc "$src" > "$2.tmp" && mv "$2.tmp" "$2" || exit 126
