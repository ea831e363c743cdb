# shellcheck shell=sh
# The library of every AppStack script that runs in a store's image
# (Debian's dash or the image's sh: POSIX only). The builders put it before
# the store pods' scripts (src/build/store.rs); the backup scripts source
# it from the scripts ConfigMap, where it is `lib`.

# Kubernetes reads a container's last words from here into the pod's status.
termination_log=${APPSTACK_TERMINATION_LOG:-/dev/termination-log}

# Scratch files (what a tool said before it failed), for the scripts.
# shellcheck disable=SC2034
scratch=${TMPDIR:-/tmp}

# Ends the script with the reason as the container's termination message,
# which the operator shows in the stack's status.
fail() {
  printf '%s\n' "$*" > "$termination_log"
  printf '%s\n' "$*" >&2
  exit 1
}

# Ends the script successfully with what it did as the termination message.
finish() {
  printf '%s\n' "$*" > "$termination_log"
  printf '%s\n' "$*"
  exit 0
}

# Sleeps in the background and waits for it, so that a trapped SIGTERM is
# handled at once rather than after the sleep (the scripts run as PID 1).
pause() {
  sleep "$1" &
  wait $!
}

# retry TRIES SECONDS COMMAND...: runs COMMAND until it succeeds, at most
# TRIES times, SECONDS apart; fails (status 1) when it never did.
retry() {
  _tries=$1 _every=$2
  shift 2
  until "$@"; do
    _tries=$((_tries - 1))
    [ "$_tries" -gt 0 ] || return 1
    pause "$_every"
  done
}

# The RFC 3339 time (UTC) of a Unix time.
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }

# The Unix time of a backup's label (YYYYMMDDTHHMMSSZ, UTC).
label_epoch() {
  date -u -d "$(printf '%s' "$1" | sed -E 's/^(....)(..)(..)T(..)(..)(..)Z$/\1-\2-\3 \4:\5:\6Z/')" +%s
}

# labels DIR [SUFFIX]: the labels of the backups in DIR (named
# YYYYMMDDTHHMMSSZ, then SUFFIX), newest first. A half-written backup
# (.partial) or a marker has another name and is never listed.
labels() {
  for _f in "$1"/*"${2:-}"; do
    _l=${_f##*/}
    _l=${_l%"${2:-}"}
    case $_l in
      [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z) printf '%s\n' "$_l" ;;
    esac
  done | sort -r
}

# summary FILE LABEL COMPLETED SIZE COUNT TOTAL FIRST LAST: a finished
# backup's summary (times as Unix times), written to FILE, the termination
# message and the log. Its one reader is the Rust type BackupSummary
# (src/api/backup_summary.rs), which the backup agent and the operator
# check it against: change both together.
summary() {
  _json=$(printf '{"label":"%s","completed":"%s","sizeBytes":%s,"count":%s,"totalBytes":%s,"firstRecoverable":"%s","lastRecoverable":"%s"}' \
    "$2" "$(iso "$3")" "$4" "$5" "$6" "$(iso "$7")" "$(iso "$8")")
  printf '%s\n' "$_json" > "$1"
  printf '%s\n' "$_json" > "$termination_log"
  printf '%s\n' "$_json"
}
