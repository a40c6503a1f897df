#!/bin/sh
# Periodic nginx reload, so that certificates renewed by the certbot service are served
# without a restart. compose.prod.yaml mounts this file into the official nginx image's
# /docker-entrypoint.d/, whose entrypoint runs it just before starting nginx; it leaves
# a background loop behind and returns.
#
# A reload is graceful: new connections go to new workers, in-flight requests finish on
# the old ones. WebSockets held by old workers are closed after worker_shutdown_timeout
# (set on the nginx command line in compose.yaml); clients reconnect and resume by event id.
set -eu

interval="${PARLEY_NGINX_RELOAD_SECONDS:-43200}"

(
    while :; do
        sleep "$interval"
        nginx -s reload || true
    done
) </dev/null >/dev/null 2>&1 &

echo "$0: reloading nginx every ${interval}s to pick up renewed certificates"
