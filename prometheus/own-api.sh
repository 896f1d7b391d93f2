#!/bin/sh
# Prometheus for own-api.yaml: writes where your service is (LAB_TARGET, and LAB_TARGET_METRICS_PATH) as the
# target job's file discovery, then runs Prometheus with prometheus/own-api.yml.
set -eu
target=${LAB_TARGET:?own-api.yaml sets it: the URL of your service}
case "$target" in
  http://* | https://*) ;;
  *) echo "LAB_TARGET=$target: give a URL, http://host:port or https://host:port" >&2; exit 2 ;;
esac
scheme=${target%%://*}
address=${target#*://}
address=${address%%/*}
mkdir -p /prometheus/own-api
printf '[{"targets": ["%s"], "labels": {"__scheme__": "%s", "__metrics_path__": "%s"}}]\n' \
  "$address" "$scheme" "${LAB_TARGET_METRICS_PATH:-/metrics}" > /prometheus/own-api/target.json
exec /bin/prometheus --config.file=/etc/prometheus/own-api.yml --storage.tsdb.path=/prometheus \
  --storage.tsdb.retention.time=7d "$@"
