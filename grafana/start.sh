#!/bin/sh
# Grafana's entrypoint in the lab: set the admin password, then start Grafana as its image does (/run.sh).
#
# The password is GRAFANA_ADMIN_PASSWORD when set. Otherwise one is generated on the first start, kept in the
# data volume (so a restart keeps it) and printed once: the lab never ships a default password. Grafana only
# applies it when it creates its database; to change it later, `docker compose down -v` or use the admin UI.
set -eu
data=${GF_PATHS_DATA:-/var/lib/grafana}
saved="$data/lab-admin-password"

if [ -n "${GRAFANA_ADMIN_PASSWORD:-}" ]; then
  GF_SECURITY_ADMIN_PASSWORD=$GRAFANA_ADMIN_PASSWORD
elif [ -s "$saved" ]; then
  GF_SECURITY_ADMIN_PASSWORD=$(cat "$saved")
else
  GF_SECURITY_ADMIN_PASSWORD=$(LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 20)
  (umask 077 && printf '%s\n' "$GF_SECURITY_ADMIN_PASSWORD" >"$saved")
  echo "lab: Grafana admin password generated: $GF_SECURITY_ADMIN_PASSWORD (kept in $saved;" \
    "set GRAFANA_ADMIN_PASSWORD to choose one). Viewing needs no login."
fi
export GF_SECURITY_ADMIN_PASSWORD
exec "${GRAFANA_RUN:-/run.sh}" "$@"
