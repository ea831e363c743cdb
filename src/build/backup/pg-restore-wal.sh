#!/bin/sh
# PostgreSQL's restore_command during a restore: pg-restore-wal %f %p.
# Exit 1 means "not archived" (the end of the archive: recovery ends there).
# A file whose checksum does not match exits 126, which stops recovery:
# never skip a damaged file and promote early with silently lost commits.
src=/var/lib/appstack/restore/postgres/wal/$1.gz
[ -f "$src" ] || exit 1
want=$(cat "$src.sha256" 2>/dev/null)
got=$(sha256sum "$src" | cut -d' ' -f1)
if [ -z "$want" ] || [ "$got" != "$want" ]; then
  echo "pg-restore-wal: $src does not match its checksum ($got, recorded '$want'): recovery stops here" >&2
  exit 126
fi
gzip -dc "$src" > "$2.tmp" && mv "$2.tmp" "$2" || exit 126
