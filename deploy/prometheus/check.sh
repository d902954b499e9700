#!/bin/sh
# Validates the Prometheus artifacts: config, rules, and the rule unit tests.
# Exits non-zero on any failure. PROMTOOL may point at a promtool binary.
set -eu
cd "$(dirname "$0")"
PROMTOOL=${PROMTOOL:-promtool}
if ! command -v "$PROMTOOL" >/dev/null 2>&1; then
    echo "check.sh: promtool not found (Debian package: prometheus)" >&2
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if "$PROMTOOL" check config prometheus.yml >"$tmp/out" 2>&1; then
    cat "$tmp/out"
elif grep -q 'field kubernetes_sd_configs not found' "$tmp/out"; then
    # This promtool lacks Kubernetes SD (Debian build): check everything outside the
    # "# BEGIN kubernetes" ... "# END kubernetes" block with promtool, and the whole file as YAML.
    echo "check.sh: this promtool has no kubernetes_sd_configs; checking the rest of prometheus.yml"
    sed '/# BEGIN kubernetes/,/# END kubernetes/d' prometheus.yml >"$tmp/prometheus.yml"
    cp alerts.yml "$tmp/alerts.yml"
    "$PROMTOOL" check config "$tmp/prometheus.yml"
    python3 -c 'import sys, yaml
c = yaml.safe_load(open("prometheus.yml"))
jobs = [j for j in c["scrape_configs"] if "kubernetes_sd_configs" in j]
assert jobs and all(j["kubernetes_sd_configs"][0]["role"] == "pod" for j in jobs), jobs
print("  kubernetes_sd job(s) parse:", ", ".join(j["job_name"] for j in jobs))'
else
    cat "$tmp/out" >&2
    exit 1
fi
"$PROMTOOL" check rules alerts.yml
"$PROMTOOL" test rules alerts_test.yml
echo "deploy/prometheus: OK"
