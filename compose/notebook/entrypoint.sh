#!/bin/sh
# Runs as root, once per container start: run the notebook processes as a user
# whose uid/gid are those of the host's notebooks folder (so nothing root-owned
# lands there), hand that user the per-project secrets, then start supervisor.
set -eu

NB_UID="${NB_UID:-1000}"
NB_GID="${NB_GID:-$NB_UID}"
if [ "$NB_UID" = 0 ]; then
    NB_USER=root
    NB_HOME=/root
else
    NB_USER=notebook
    NB_HOME=/home/notebook
    getent group "$NB_GID" >/dev/null || groupadd -g "$NB_GID" notebook
    id -u "$NB_USER" >/dev/null 2>&1 || useradd -o -u "$NB_UID" -g "$NB_GID" -d "$NB_HOME" -m -s /bin/bash "$NB_USER"
fi

# Without a bind mount /notebooks is the image's own folder: give it to the user.
# A mounted folder is the host's and is never chowned.
if ! mountpoint -q /notebooks && [ "$(stat -c %u /notebooks)" != "$NB_UID" ]; then
    chown "$NB_UID:$NB_GID" /notebooks
fi

# Secrets arrive read-only from the host (never as environment variables or
# image layers); copies readable by the notebook user only.
runtime=/run/devstack
mkdir -p "$runtime"
chmod 0711 "$runtime"
if [ -d "${DEVSTACK_SECRETS_DIR:-/nonexistent}" ]; then
    for secret in "$DEVSTACK_SECRETS_DIR"/*; do
        if [ -f "$secret" ]; then
            install -m 0400 -o "$NB_UID" -g "$NB_GID" "$secret" "$runtime/$(basename "$secret")"
        fi
    done
fi

export NB_USER NB_HOME
export JUPYTER_TOKEN_FILE="$runtime/jupyter_token" SIFU_SECRET_FILE="$runtime/sifu_secret"
exec "$@"
