#!/usr/bin/env bash
# Installs the Debian packages the platform's tests and benchmarks run for real, only where missing:
# PostgreSQL (throwaway server per test run), Mosquitto (MQTT broker), Chromium (browser tests), wrk, and a
# Java runtime for Apache Spark in local mode (analytics).
set -euo pipefail

need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
fc-list 2>/dev/null | grep -qi "noto.*cjk" || need+=(fonts-noto-cjk)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "installing Debian packages: ${need[*]}"
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${need[@]}" >/dev/null
# The packaged services are not wanted running: tests start their own servers on free ports.
for svc in postgresql mosquitto; do
  if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
  $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
