#!/usr/bin/env python3
"""Every PromQL expression pggw ships parses and names only metrics pggw exports.

Expressions: the alert rules (deploy/prometheus/alerts.yml) and every query of the Grafana
dashboard (deploy/grafana/pggw-dashboard.json: panel targets and template variables, with
Grafana's variables replaced: $__rate_interval -> 5m, $job -> .*). Offline, with promtool
only: each expression becomes one recording rule of a throwaway rules file that
`promtool check rules` parses with Prometheus' own parser.

Metrics: the names a live pggw exposes on /metrics (built pggw started with --listen
127.0.0.1:0 --metrics-listen 127.0.0.1:0, no certificate, no server needed), histograms with
their _bucket/_sum/_count series, plus what Prometheus adds itself (up, ALERTS, scrape_*).

  check_promql.py --pggw build/pggw [--promtool promtool]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "pggw-dashboard.json"

# Series Prometheus itself makes for every target or rule.
PROMETHEUS_SERIES = {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds",
                     "scrape_samples_scraped", "scrape_samples_post_metric_relabeling",
                     "scrape_series_added"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "atan2", "inf", "nan", "start", "end"}
GRAFANA_INTERVALS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h",
                     "__range_s": "3600", "__range_ms": "3600000", "__interval_ms": "60000"}


# ---------------------------------------------------------------------------------------------
# What pggw exports
# ---------------------------------------------------------------------------------------------
def exported_metrics(pggw: str, tmp: Path) -> set[str]:
    # With a certificate (pggw gen-cert): the expiry series exists only for a loaded one.
    r = subprocess.run([pggw, "gen-cert", "--dir", str(tmp)], capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        sys.exit(f"pggw gen-cert failed: {r.stdout}{r.stderr}")
    log = tmp / "pggw.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([pggw, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                                 "--server", "127.0.0.1:1", "--workers", "1",
                                 "--cert", str(tmp / "server.crt"), "--key", str(tmp / "server.key")],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        port = None
        deadline = time.monotonic() + 30
        while port is None and time.monotonic() < deadline:
            m = re.search(r"metrics on [^ ]*:(\d+)", log.read_text())
            if m:
                port = int(m.group(1))
            elif proc.poll() is not None:
                break
            else:
                time.sleep(0.1)
        if port is None:
            sys.exit(f"pggw did not report its metrics port:\n{log.read_text()}")
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    names = set()
    for m in re.finditer(r"^# TYPE (\S+) (\S+)$", text, re.M):
        name, kind = m.groups()
        names.add(name)
        if kind == "histogram":
            names |= {name + "_bucket", name + "_sum", name + "_count"}
        elif kind == "summary":
            names |= {name + "_sum", name + "_count"}
    for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.M):
        names.add(m.group(1))
    if not names:
        sys.exit(f"no metrics on pggw's /metrics:\n{text[:2000]}")
    return names


# ---------------------------------------------------------------------------------------------
# The expressions
# ---------------------------------------------------------------------------------------------
def alert_expressions() -> list[tuple[str, str]]:
    out = []
    for g in yaml.safe_load(ALERTS.read_text())["groups"]:
        for r in g["rules"]:
            out.append((f"alerts.yml {r.get('alert') or r.get('record')}", r["expr"]))
    return out


def grafana_to_promql(q: str) -> str:
    """A Grafana query as plain PromQL: variables replaced, template functions unwrapped."""
    q = q.strip()
    m = re.fullmatch(r"label_values\((.*),\s*[a-zA-Z_]\w*\s*\)", q, re.S)
    if m:
        q = m.group(1)
    else:
        m = re.fullmatch(r"query_result\((.*)\)", q, re.S)
        if m:
            q = m.group(1)

    def var(name: str, in_string: bool) -> str:
        if name in GRAFANA_INTERVALS:
            return GRAFANA_INTERVALS[name]
        return ".*" if in_string else "1"

    var_re = r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]"
    # Inside string literals first (label matcher values), then the rest.
    q = re.sub(r'"(?:[^"\\]|\\.)*"',
               lambda s: re.sub(var_re, lambda v: var(next(g for g in v.groups() if g), True),
                                s.group(0)), q)
    return re.sub(var_re, lambda v: var(next(g for g in v.groups() if g), False), q)


def dashboard_expressions() -> list[tuple[str, str]]:
    d = json.loads(DASHBOARD.read_text())
    out = []

    def panels(ps):
        for p in ps:
            yield p
            yield from panels(p.get("panels") or [])

    for p in panels(d.get("panels") or []):
        for t in p.get("targets") or []:
            if t.get("expr"):
                out.append((f"dashboard panel {p.get('title')!r} ref {t.get('refId')}",
                            grafana_to_promql(t["expr"])))
    for v in (d.get("templating") or {}).get("list") or []:
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if q:
            out.append((f"dashboard variable ${v.get('name')}", grafana_to_promql(q)))
    return out


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers outside strings, label matchers, ranges
    and grouping clauses, that are not functions, aggregations or keywords."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    e = re.sub(r"#[^\n]*", "", e)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", e):
        ident, call = m.group(1), m.group(2)
        if call or ident.lower() in KEYWORDS:
            continue
        names.add(ident)
    return names


# ---------------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pggw", required=True)
    ap.add_argument("--promtool", default=os.environ.get("PROMTOOL", "promtool"))
    args = ap.parse_args()
    promtool = shutil.which(args.promtool)
    if not promtool:
        print("check_promql.py: promtool not found (Debian package: prometheus)")
        return 1
    exprs = alert_expressions() + dashboard_expressions()
    failures = []
    ids = [p.get("id") for p in json.loads(DASHBOARD.read_text()).get("panels", [])]
    for i in sorted({i for i in ids if ids.count(i) > 1}):
        failures.append(f"dashboard: panel id {i} is used twice")

    # 1. Prometheus' parser, through promtool: one recording rule per expression.
    rules = {"groups": [{"name": f"expr_{i}", "rules": [{"record": f"pggw_check:expr_{i}",
                                                          "expr": e}]}
                        for i, (_, e) in enumerate(exprs)]}
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "expressions.yml"
        f.write_text(yaml.safe_dump(rules, sort_keys=False, width=1000))
        r = subprocess.run([promtool, "check", "rules", str(f)], capture_output=True, text=True)
    bad = set()
    if r.returncode != 0:
        out = r.stdout + r.stderr
        bad = {int(i) for i in re.findall(r'group "expr_(\d+)"', out)}
        for i in sorted(bad):
            failures.append(f"{exprs[i][0]}: does not parse: {exprs[i][1]!r}")
        if not bad:
            failures.append(f"promtool check rules failed:\n{out}")
        else:
            print(out.strip())

    # 2. Only metrics pggw exports.
    with tempfile.TemporaryDirectory() as tmp:
        exported = exported_metrics(args.pggw, Path(tmp)) | PROMETHEUS_SERIES
    used = set()
    for i, (where, e) in enumerate(exprs):
        if i in bad:
            continue  # its names cannot be told apart from its broken label matchers
        names = metric_names(e)
        used |= names
        for n in sorted(names - exported):
            failures.append(f"{where}: {n} is not a metric pggw exports")

    for f_ in failures:
        print("FAIL:", f_)
    families = {n for n in exported if n.startswith("pggw_")
                and not n.endswith(("_bucket", "_sum", "_count"))}
    unused = sorted(n for n in families if not any(u == n or u.startswith(n + "_") for u in used))
    print(f"{len(exprs)} expressions ({len(alert_expressions())} alert rules, "
          f"{len(exprs) - len(alert_expressions())} dashboard queries), "
          f"{len(used)} metric names, {len(exported)} exported")
    if unused:
        print("exported but in no query: " + ", ".join(unused))
    if failures:
        return 1
    print("PromQL: every expression parses and names only exported metrics")
    return 0


if __name__ == "__main__":
    sys.exit(main())
