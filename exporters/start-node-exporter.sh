#!/bin/sh
# The node exporter for own-api.yaml: the host's CPU, memory and load, and, when LAB_TARGET_CPUS is set (the cores
# your service may use: its container's --cpus, or its taskset), that limit as lab_target_cpu_limit_cores, which
# prometheus/rules/servers.yml judges its CPU against instead of the host's cores.
set -eu
mkdir -p /tmp/textfile
if [ -n "${LAB_TARGET_CPUS:-}" ]; then
  printf '# HELP lab_target_cpu_limit_cores The cores the service under test may use (LAB_TARGET_CPUS).\n# TYPE lab_target_cpu_limit_cores gauge\nlab_target_cpu_limit_cores %s\n' \
    "$LAB_TARGET_CPUS" > /tmp/textfile/lab_target.prom
fi
exec prometheus-node-exporter --collector.disable-defaults --collector.cpu --collector.meminfo --collector.loadavg \
  --collector.textfile --collector.textfile.directory=/tmp/textfile
