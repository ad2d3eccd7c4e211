#!/usr/bin/env bash
# System packages the project needs: Redis (the local stack's store), a Java runtime (Spark and the Kafka broker,
# which needs Java 17+), Maven (fetches the Kafka broker and Spark's Kafka connector from Maven Central) and
# Chromium (the dashboard's browser test drives it headless; a test tool's own browser download fails offline) and
# wrk (the HTTP load generator behind `tone bench api`) and promtool (from Debian's prometheus package: the alert
# rules' unit tests, observability/alerts.test.yml).
# Installs what is missing when running as root; otherwise prints the command to run.
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v chromium >/dev/null || missing+=(chromium)
command -v wrk >/dev/null || missing+=(wrk)
lean=()  # without their recommends: prometheus would bring a web console and exporters nobody here runs
command -v promtool >/dev/null || lean+=(prometheus)
[ ${#missing[@]} -eq 0 ] && [ ${#lean[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages; run: sudo apt-get update && sudo apt-get install -y ${missing[*]} ${lean[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
[ ${#missing[@]} -eq 0 ] || apt-get install -y -qq "${missing[@]}" >/dev/null
[ ${#lean[@]} -eq 0 ] || apt-get install -y -qq --no-install-recommends "${lean[@]}" >/dev/null
