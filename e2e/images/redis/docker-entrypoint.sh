#!/bin/bash
# Entrypoint of appstack.local/redis:7, redis:8 and valkey:8, with the official
# redis image's contract: arguments that are options or a .conf file go to the
# server (valkey-server where it is the image's, else redis-server); started as
# root it hands /data to the server's user (uid 999) and drops to it; as any other
# uid it just runs.
set -euo pipefail

server=redis-server
command -v valkey-server >/dev/null && server=valkey-server

if [[ ${1:-} == -* || ${1:-} == *.conf ]]; then
  set -- "$server" "$@"
fi

if [[ ${1:-} == redis-server || ${1:-} == valkey-server ]]; then
  if [[ $(id -u) == 0 ]]; then
    find . \! -user 999 -exec chown 999:999 '{}' +
    exec setpriv --reuid=999 --regid=999 --init-groups -- "$0" "$@"
  fi
  # The official image compiles protected mode off, since the container's network is
  # the boundary; Debian's binary has it on, so switch it off unless an option or
  # the config file sets it.
  conf=""
  [[ ${2:-} == *.conf ]] && conf=$2
  if [[ " $* " != *" --protected-mode "* ]] \
    && ! { [[ -r $conf ]] && grep -qiE '^[[:space:]]*protected-mode[[:space:]]' "$conf"; }; then
    set -- "$@" --protected-mode no
  fi
  # Files the server writes (AOF, RDB) are private unless the caller chose a umask.
  [[ $(umask) == 0022 ]] && umask 0077
fi

exec "$@"
