#!/bin/sh
# PostgreSQL's archive_command: pg-archive-wal %p %f. Any failure exits 1, so
# PostgreSQL keeps the WAL file and retries (an exit of 126 or more would
# stop the archiver). A file is in the archive only once its compressed copy
# and checksum were written, tested and synced, and then renamed into place.
# APPSTACK_BACKUP_DIR (the server's environment) says where; without it,
# nothing is archived and PostgreSQL keeps the file. No library: the
# archiver runs this for every segment.
archive() {
  set -eu
  wal=$APPSTACK_BACKUP_DIR/wal
  mkdir -p "$wal"
  dst="$wal/$2.gz"
  if [ -f "$dst" ]; then
    # Archived before (a retry after a crash): fine only when identical.
    gzip -dc "$dst" | cmp -s - "$1" && return 0
    echo "pg-archive-wal: $dst exists with other content; not overwritten" >&2
    return 1
  fi
  tmp="$wal/.$2.tmp"
  gzip -1 -c "$1" > "$tmp"
  gzip -t "$tmp"
  sha256sum "$tmp" | cut -d' ' -f1 > "$tmp.sha256"
  sync "$tmp" "$tmp.sha256"
  mv "$tmp.sha256" "$dst.sha256"
  mv "$tmp" "$dst"
  sync "$wal"
}
( archive "$1" "$2" ) || exit 1
