#!/bin/sh
# The process exporter for own-api.yaml: exporters/process-exporter.yml with LAB_TARGET_PROCESS in place (a single
# quote doubled, as YAML's single-quoted strings want), then the exporter on the host's processes.
set -eu
: "${LAB_TARGET_PROCESS:?own-api.yaml sets it: a regular expression of your service's command lines}"
python3 -c '
import os, sys
pattern = os.environ["LAB_TARGET_PROCESS"].replace("'"'"'", "'"'"''"'"'")
sys.stdout.write(open("/etc/exporters/process-exporter.yml").read().replace("@LAB_TARGET_PROCESS@", pattern))
' > /tmp/process-exporter.yml
exec prometheus-process-exporter -config.path /tmp/process-exporter.yml -threads=false
