#!/usr/bin/env python3
"""Structural checks of deploy/kubernetes with Debian tools only (python3-yaml; no kubectl).

Every manifest parses and carries what issue 10 asks of it: the Deployment's replicas, spread,
resources, security context, probes, grace period against pggw's drain settings, Secret and
ConfigMap mounted as whole directories; a Service with the PostgreSQL port only; the namespace
that deploy/prometheus/prometheus.yml scrapes; the optional prometheus-operator, cert-manager and
autoscaler files; optional/prometheusrule.yaml equal to deploy/prometheus/alerts.yml.

  check_manifests.py [--pggw build/pggw]      check (with --pggw: `pggw check-config` accepts
                                              the ConfigMap's pggw.toml)
  check_manifests.py --write-prometheusrule   regenerate optional/prometheusrule.yaml
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS_YML = ROOT / "deploy" / "prometheus" / "prometheus.yml"
RULE_FILE = K8S / "optional" / "prometheusrule.yaml"
RULE_HEADER = """\
# deploy/prometheus/alerts.yml as a prometheus-operator PrometheusRule (the operator ignores
# rule files). Add to kustomization.yaml's resources on purpose (needs the PrometheusRule CRD);
# your Prometheus' ruleSelector may want a label of its own (e.g. release: prometheus).
# Generated from alerts.yml; tests/deploy/check_manifests.py fails when the two differ:
#   python3 tests/deploy/check_manifests.py --write-prometheusrule
"""

errors: list[str] = []


def check(cond, msg: str) -> bool:
    if not cond:
        errors.append(msg)
    return bool(cond)


def dig(obj, *path, default=None):
    for p in path:
        if isinstance(obj, dict) and p in obj:
            obj = obj[p]
        elif isinstance(obj, list) and isinstance(p, int) and -len(obj) <= p < len(obj):
            obj = obj[p]
        else:
            return default
    return obj


def load_docs(path: Path) -> list[dict]:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as e:
        errors.append(f"{path.relative_to(ROOT)}: does not parse: {e}")
        return []
    for d in docs:
        where = f"{path.relative_to(ROOT)}"
        if path.name == "kustomization.yaml":
            continue
        check(isinstance(d, dict) and d.get("apiVersion") and d.get("kind")
              and dig(d, "metadata", "name"), f"{where}: a document without apiVersion/kind/name")
    return docs


def prometheusrule_text() -> str:
    class Dumper(yaml.SafeDumper):
        pass

    def str_rep(dumper, s):
        return dumper.represent_scalar("tag:yaml.org,2002:str", s, style="|" if "\n" in s else None)

    Dumper.add_representer(str, str_rep)
    doc = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "pggw", "labels": {"app.kubernetes.io/name": "pggw"}},
        "spec": yaml.safe_load(ALERTS.read_text()),
    }
    return RULE_HEADER + yaml.dump(doc, Dumper=Dumper, sort_keys=False, width=1000)


def check_config(pggw: str, text: str) -> None:
    """`pggw check-config` on the ConfigMap's file, its certificate paths pointed at a pair
    that `pggw gen-cert` makes: every key known, every value valid."""
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([pggw, "gen-cert", "--dir", tmp], capture_output=True, text=True,
                           timeout=60)
        if not check(r.returncode == 0, f"{pggw} gen-cert failed: {r.stdout}{r.stderr}"):
            return
        for key, file in (("cert", "server.crt"), ("key", "server.key")):
            text = re.sub(rf"^{key} = .*$", f'{key} = "{tmp}/{file}"', text, flags=re.M)
        conf = Path(tmp) / "pggw.toml"
        conf.write_text(text)
        r = subprocess.run([pggw, "check-config", "--config", str(conf)], capture_output=True,
                           text=True, timeout=60)
        out = (r.stdout + r.stderr).replace(str(conf), "configmap.yaml pggw.toml")
        check(r.returncode == 0, f"{pggw} check-config refuses the ConfigMap's pggw.toml: {out.strip()}")


def port_of(addr: str) -> int:
    return int(addr.rsplit(":", 1)[1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pggw", help="a pggw binary: the ConfigMap's keys must be its flags")
    ap.add_argument("--write-prometheusrule", action="store_true")
    args = ap.parse_args()
    if args.write_prometheusrule:
        RULE_FILE.write_text(prometheusrule_text())
        print(f"wrote {RULE_FILE.relative_to(ROOT)}")
        return 0

    files = sorted(K8S.rglob("*.yaml")) + sorted(K8S.rglob("*.yml"))
    docs = {f: load_docs(f) for f in files}
    by_kind: dict[str, list[dict]] = {}
    for f, ds in docs.items():
        if f.name == "kustomization.yaml":
            continue
        for d in ds:
            if isinstance(d, dict):
                d["__file__"] = f
                by_kind.setdefault(d.get("kind"), []).append(d)

    # ---- kustomization: resources exist, optional files stay out, namespace, image ----
    kust = (docs.get(K8S / "kustomization.yaml") or [{}])[0]
    resources = kust.get("resources") or []
    base_files = set()
    for r in resources:
        p = (K8S / r).resolve()
        if check(p.is_file(), f"kustomization.yaml: resource {r} does not exist"):
            base_files.add(p)
    for f in files:
        if f.name == "kustomization.yaml":
            continue
        if "optional" in f.relative_to(K8S).parts:
            check(f.resolve() not in base_files, f"{f.name}: optional, must not be in the base")
        else:
            check(f.resolve() in base_files, f"{f.relative_to(ROOT)}: not listed in resources")
    prom = yaml.safe_load(PROMETHEUS_YML.read_text())
    sd_namespaces = {n for j in prom["scrape_configs"] for sd in j.get("kubernetes_sd_configs", [])
                     for n in dig(sd, "namespaces", "names", default=[])}
    ns = kust.get("namespace")
    check(ns and sd_namespaces == {ns},
          f"kustomization namespace {ns!r} is not the one prometheus.yml scrapes {sd_namespaces}")
    check(any(dig(d, "metadata", "name") == ns for d in by_kind.get("Namespace", [])),
          f"no Namespace {ns!r} manifest")
    images = {i.get("name"): i for i in kust.get("images") or []}

    def base_docs(kind):
        return [d for d in by_kind.get(kind, []) if d["__file__"].resolve() in base_files]

    # ---- Deployment ----
    deps = base_docs("Deployment")
    if not check(len(deps) == 1, "expected one Deployment in the base"):
        return report()
    dep = deps[0]
    name = dig(dep, "metadata", "name")
    labels = dig(dep, "spec", "template", "metadata", "labels", default={})
    selector = dig(dep, "spec", "selector", "matchLabels", default={})
    check(selector and all(labels.get(k) == v for k, v in selector.items()),
          "Deployment: selector does not match the pod labels")

    def selects_pods(sel) -> bool:
        return bool(sel) and all(labels.get(k) == v for k, v in sel.items())

    pod = dig(dep, "spec", "template", "spec", default={})
    check((dig(dep, "spec", "replicas") or 1) >= 2, "Deployment: replicas must be 2 or more")
    tsc = pod.get("topologySpreadConstraints") or []
    check(tsc and all(selects_pods(dig(t, "labelSelector", "matchLabels")) for t in tsc),
          "Deployment: topologySpreadConstraints missing or not selecting the pods")
    psc = pod.get("securityContext") or {}
    check(psc.get("runAsNonRoot") is True, "Deployment: pod securityContext.runAsNonRoot")
    check((psc.get("runAsUser") or 0) != 0, "Deployment: pod runAsUser must not be 0")
    check(dig(psc, "seccompProfile", "type") == "RuntimeDefault", "Deployment: seccomp RuntimeDefault")
    containers = pod.get("containers") or []
    check(len(containers) == 1, "Deployment: one container")
    c = containers[0] if containers else {}
    image = c.get("image", "")
    img_name, _, img_tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
    override = images.get(img_name, {})
    tag = override.get("newTag", img_tag)
    check(tag and tag != "latest", f"Deployment: image {image!r} needs a tag (not latest)")
    check(c.get("imagePullPolicy") == "IfNotPresent", "Deployment: imagePullPolicy IfNotPresent")
    csc = c.get("securityContext") or {}
    check(csc.get("readOnlyRootFilesystem") is True, "Deployment: readOnlyRootFilesystem")
    check(csc.get("allowPrivilegeEscalation") is False, "Deployment: allowPrivilegeEscalation false")
    check("ALL" in (dig(csc, "capabilities", "drop") or []), "Deployment: capabilities drop ALL")
    res = c.get("resources") or {}
    for kind in ("requests", "limits"):
        for r in ("cpu", "memory"):
            check(dig(res, kind, r), f"Deployment: resources.{kind}.{r}")
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
    check(ports.get("postgres") == 6432 and ports.get("metrics") == 9930,
          f"Deployment: container ports postgres 6432 and metrics 9930, got {ports}")

    def probe_ok(probe, path):
        hg = (probe or {}).get("httpGet") or {}
        port = hg.get("port")
        port = ports.get(port, port)
        return hg.get("path") == path and port == 9930

    check(probe_ok(c.get("readinessProbe"), "/readyz"), "Deployment: readinessProbe GET /readyz :9930")
    check(probe_ok(c.get("livenessProbe"), "/healthz"), "Deployment: livenessProbe GET /healthz :9930")
    ann = dig(dep, "spec", "template", "metadata", "annotations", default={})
    check(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == "9930",
          "Deployment: prometheus.io/scrape and prometheus.io/port annotations (prometheus.yml)")

    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    mounts = c.get("volumeMounts") or []
    for m in mounts:
        check("subPath" not in m and "subPathExpr" not in m,
              f"Deployment: volumeMount {m.get('name')} uses subPath (never updated on rotation)")
    secret_mounts = [m for m in mounts if "secret" in volumes.get(m.get("name"), {})]
    config_mounts = [m for m in mounts if "configMap" in volumes.get(m.get("name"), {})]
    check(len(secret_mounts) == 1, "Deployment: the certificate Secret mounted as a volume")
    check(len(config_mounts) == 1, "Deployment: the ConfigMap mounted as a volume")
    secret_name = dig(volumes, secret_mounts[0]["name"], "secret", "secretName") if secret_mounts else None
    argv = c.get("args") or []
    config_path = None
    for i, a in enumerate(argv):
        if a == "--config" and i + 1 < len(argv):
            config_path = argv[i + 1]
        elif a.startswith("--config="):
            config_path = a.split("=", 1)[1]
    check(config_path, "Deployment: pggw gets --config FILE")

    # ---- ConfigMap and its pggw.toml ----
    cms = {dig(d, "metadata", "name"): d for d in base_docs("ConfigMap")}
    toml_cfg = {}
    if config_mounts and config_path:
        m = config_mounts[0]
        cm_name = dig(volumes, m["name"], "configMap", "name")
        key = str(Path(config_path).relative_to(m["mountPath"])) \
            if config_path.startswith(m["mountPath"].rstrip("/") + "/") else None
        check(key, f"Deployment: --config {config_path} is not inside the ConfigMap mount")
        text = dig(cms, cm_name, "data", key)
        if check(text, f"ConfigMap {cm_name} has no key {key}"):
            try:
                toml_cfg = tomllib.loads(text)
            except tomllib.TOMLDecodeError as e:
                errors.append(f"ConfigMap {cm_name} {key}: not TOML: {e}")
    if toml_cfg:
        tls_dir = secret_mounts[0]["mountPath"].rstrip("/") + "/" if secret_mounts else "?"
        for k in ("cert", "key"):
            check(str(toml_cfg.get(k, "")).startswith(tls_dir),
                  f"pggw.toml: {k} must be a file of the Secret mount {tls_dir}")
        listen = toml_cfg.get("listen", ["0.0.0.0:6432"])
        listen = [listen] if isinstance(listen, str) else listen
        check(all(port_of(a) == 6432 for a in listen), "pggw.toml: listen on port 6432")
        check(port_of(toml_cfg.get("metrics-listen", "0.0.0.0:9930")) == 9930,
              "pggw.toml: metrics-listen on port 9930")
        check(toml_cfg.get("client-tls", "require") in ("require", "verify-ca", "verify-full"),
              "pggw.toml: client-tls require or stricter")
        if toml_cfg.get("proxy-protocol", "off") != "off":
            check(toml_cfg.get("proxy-trusted"), "pggw.toml: proxy-protocol needs proxy-trusted")
        delay = float(toml_cfg.get("drain-delay", 0))
        timeout = float(toml_cfg.get("drain-timeout", 30))
        grace = pod.get("terminationGracePeriodSeconds", 30)
        check(grace > delay + timeout + 2,
              f"Deployment: terminationGracePeriodSeconds {grace} must exceed drain-delay {delay}"
              f" + drain-timeout {timeout} + 2 (pggw exits at most 2 s after the timeout)")
        if args.pggw:
            check_config(args.pggw, text)

    # ---- Service: the PostgreSQL port only ----
    svcs = base_docs("Service")
    if check(len(svcs) == 1, "expected one Service in the base"):
        svc = svcs[0]
        sp = dig(svc, "spec", "ports", default=[])
        targets = [ports.get(p.get("targetPort"), p.get("targetPort")) for p in sp]
        check(targets == [6432], f"Service: exactly one port, to 6432 (got {targets})")
        check(dig(svc, "spec", "externalTrafficPolicy") == "Local", "Service: externalTrafficPolicy Local")
        check(selects_pods(dig(svc, "spec", "selector")), "Service: selector does not match the pods")
        text = svc["__file__"].read_text()
        for a in ("aws-load-balancer-proxy-protocol", "azure-pls-proxy-protocol", "send-proxy-v2"):
            check(a in text, f"service.yaml: the PROXY protocol notes lack {a}")

    # ---- PodDisruptionBudget, NetworkPolicy ----
    pdbs = base_docs("PodDisruptionBudget")
    if check(len(pdbs) == 1, "expected one PodDisruptionBudget"):
        pdb = pdbs[0]
        check(selects_pods(dig(pdb, "spec", "selector", "matchLabels")), "PDB: selector")
        mu, ma = dig(pdb, "spec", "maxUnavailable"), dig(pdb, "spec", "minAvailable")
        check((mu is not None and mu != 0) or (isinstance(ma, int) and ma < dep["spec"]["replicas"]),
              "PDB: must allow one eviction at the Deployment's replica count")
    nps = base_docs("NetworkPolicy")
    if check(len(nps) == 1, "expected one NetworkPolicy"):
        np_ = nps[0]
        check(selects_pods(dig(np_, "spec", "podSelector", "matchLabels")), "NetworkPolicy: podSelector")
        ingress = dig(np_, "spec", "ingress", default=[])
        pg_rules = [r for r in ingress if any(p.get("port") == 6432 for p in r.get("ports", []))]
        adm_rules = [r for r in ingress if any(p.get("port") == 9930 for p in r.get("ports", []))]
        check(pg_rules, "NetworkPolicy: ingress to 6432")
        check(adm_rules and all(r.get("from") for r in adm_rules),
              "NetworkPolicy: 9930 only from named sources (Prometheus)")
        check("Egress" in dig(np_, "spec", "policyTypes", default=[]), "NetworkPolicy: egress rules")

    # ---- optional files ----
    opt = lambda kind: [d for d in by_kind.get(kind, []) if d["__file__"].resolve() not in base_files]
    sms = opt("ServiceMonitor")
    if check(len(sms) == 1, "optional: one ServiceMonitor"):
        sel = dig(sms[0], "spec", "selector", "matchLabels", default={})
        msvcs = [s for s in opt("Service")
                 if all(dig(s, "metadata", "labels", default={}).get(k) == v for k, v in sel.items())]
        check(len(msvcs) == 1 and selects_pods(dig(msvcs[0], "spec", "selector"))
              and [p.get("port") for p in dig(msvcs[0], "spec", "ports")] == [9930]
              and {e.get("port") for e in dig(sms[0], "spec", "endpoints", default=[])} == {"metrics"},
              "optional: the ServiceMonitor's metrics Service (9930 only, selecting the pods)")
    rules = opt("PrometheusRule")
    if check(len(rules) == 1, "optional: one PrometheusRule"):
        check(rules[0]["spec"] == yaml.safe_load(ALERTS.read_text()),
              "optional/prometheusrule.yaml differs from alerts.yml: "
              "run tests/deploy/check_manifests.py --write-prometheusrule")
        check(RULE_FILE.read_text() == prometheusrule_text(),
              "optional/prometheusrule.yaml is not as generated: --write-prometheusrule")
    certs = opt("Certificate")
    if check(len(certs) == 1, "optional: one cert-manager Certificate"):
        check(dig(certs[0], "spec", "secretName") == secret_name,
              f"Certificate: secretName must be the Deployment's Secret {secret_name!r}")
    hpas = opt("HorizontalPodAutoscaler")
    if check(len(hpas) == 1, "optional: one HorizontalPodAutoscaler"):
        h = hpas[0]
        check(dig(h, "spec", "scaleTargetRef", "kind") == "Deployment"
              and dig(h, "spec", "scaleTargetRef", "name") == name, "HPA: targets the Deployment")
        check(dig(h, "spec", "minReplicas", default=1) >= 2, "HPA: minReplicas 2 or more")
    return report()


def report() -> int:
    if errors:
        for e in errors:
            print("FAIL:", e)
        return 1
    print("deploy/kubernetes: every manifest parses and has the expected fields")
    return 0


if __name__ == "__main__":
    sys.exit(main())
