#!/bin/sh
# As the official haproxy image's entrypoint: `haproxy ...` runs in master-worker mode (-W), in the
# foreground (-db), so that SIGUSR2 to PID 1 reloads the configuration and SIGUSR1 stops gracefully.
set -e
if [ "${1#-}" != "$1" ]; then
    set -- haproxy "$@"
fi
if [ "$1" = 'haproxy' ]; then
    shift
    set -- haproxy -W -db "$@"
fi
exec "$@"
