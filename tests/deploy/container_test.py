#!/usr/bin/env python3
"""The container image and the Kubernetes Deployment, built and run with podman.

1. image: deploy/build-image.sh builds deploy/Dockerfile from Debian packages only (a
   debootstrapped base when no registry is reachable; cached layers when nothing changed).
   Its configuration (non-root USER, ENTRYPOINT, EXPOSE), its contents (every shared library
   resolves, no compiler or headers, both TLS modules load).
2. podman run, as deploy/kubernetes runs it: non-root (the image's own USER), --read-only,
   --cap-drop ALL, no-new-privileges. psql with sslmode=verify-full (CA made by the image's
   `pggw gen-cert`) reaches a PostgreSQL 15 on the host. `podman stop` drains: /readyz turns
   503, a query in flight completes, pggw exits 0.
3. podman kube play of deploy/kubernetes' Deployment and ConfigMap, with a test overlay for
   what podman cannot do or this machine lacks: the image's local name, host network (ports
   0, the host's PostgreSQL), no probes (podman runs httpGet probes as curl inside the
   container; the test asks /readyz and /healthz itself), and the Secret as a hostPath laid out
   the way the kubelet lays out a Secret volume (..data symlink; podman 4.3 writes Secret
   volumes base64-encoded). psql through TLS; the pod's user, capabilities and read-only root
   as the manifest's securityContext says; JSON log lines (the ConfigMap's log-format); a certificate rotated the kubelet's way (new
   directory, atomic ..data swap, no signal) is served; `podman pod stop` drains and exits 0.

Needs root (debootstrap, rootful podman, initdb as the postgres user). Prints each phase's time.
"""
from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PSQL = shutil.which("psql") or str(PG_BIN / "psql")
VERSION = re.search(r"project\(pggw VERSION ([0-9.]+)", (ROOT / "CMakeLists.txt").read_text())[1]
IMAGE = os.environ.get("PGGW_TEST_IMAGE", f"localhost/pggw:{VERSION}")
RUN_ID = f"pggw-deploytest-{os.getpid()}"
T0 = time.monotonic()


# ---------------------------------------------------------------------------------------------
# podman, with the options build-image.sh uses (command line only; the machine's config stays)
# ---------------------------------------------------------------------------------------------
def podman_base() -> list[str]:
    args = ["podman", "--cgroup-manager", "cgroupfs"]
    if shutil.which("runc"):
        args += ["--runtime", "runc"]
    store = Path("/var/lib/containers")
    while not store.exists():
        store = store.parent
    fs = subprocess.run(["stat", "-f", "-c", "%T", str(store)], capture_output=True, text=True)
    if fs.stdout.strip() == "overlayfs":
        args += ["--storage-driver", "vfs"]
    return args


def ulimits() -> tuple[int, int]:
    import resource
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nproc = 32768 if nproc == resource.RLIM_INFINITY or nproc > 32768 else nproc
    return nofile, nproc


PODMAN = podman_base()
NOFILE, NPROC = ulimits()
ULIMIT_ARGS = ["--ulimit", f"nofile={NOFILE}:{NOFILE}", "--ulimit", f"nproc={NPROC}:{NPROC}"]


def podman(*args, check=True, timeout=120, env=None) -> subprocess.CompletedProcess:
    r = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r


def phase(name: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {name}", flush=True)


def wait_for(what: str, fn, timeout: float, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def sample(text: str, name: str, **labels) -> float:
    total, found = 0.0, False
    for m in re.finditer(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", text, re.M):
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
            found = True
    return total if found else float("nan")


def psql_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(HOME=tempfile.gettempdir(), PGCONNECT_TIMEOUT="10", PGGSSENCMODE="disable")
    return env


def conninfo(port: int, ca: Path) -> str:
    return (f"host=localhost port={port} user=postgres dbname=postgres sslmode=verify-full "
            f"sslrootcert={ca}")


def psql(port: int, ca: Path, sql: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([PSQL, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", conninfo(port, ca),
                           "-c", sql], capture_output=True, text=True, timeout=timeout,
                          env=psql_env())


def proc_status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def check_confined(pid: int, what: str) -> None:
    """Non-root, no capabilities, no new privileges, read-only root: as the kernel sees it."""
    st = proc_status(pid)
    uids = st["Uid"].split()
    assert all(u == "10001" for u in uids), f"{what}: runs as uid {uids}, not 10001"
    assert all(g == "10001" for g in st["Gid"].split()), f"{what}: gid {st['Gid']}"
    for cap in ("CapEff", "CapPrm", "CapBnd"):
        assert int(st[cap], 16) == 0, f"{what}: {cap} {st[cap]} (expected none)"
    assert st.get("NoNewPrivs") == "1", f"{what}: NoNewPrivs {st.get('NoNewPrivs')}"
    root = next(l for l in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
                if l.split()[4] == "/")
    assert "ro" in root.split()[5].split(","), f"{what}: root filesystem not read-only: {root}"


# ---------------------------------------------------------------------------------------------
# A throwaway PostgreSQL 15 on the host (as the postgres OS user when root)
# ---------------------------------------------------------------------------------------------
class Postgres:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="pggw-deploy-pg-"))
        self.data = self.dir / "data"
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        pw = pwd.getpwnam("postgres")
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o755)

    def _pg(self, *args):
        r = subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / args[0]), *args[1:]],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            log = self.dir / "postgres.log"
            raise AssertionError(f"{args[0]} failed: {r.stdout}{r.stderr}"
                                 + (log.read_text() if log.exists() else ""))

    def start(self):
        self._pg("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                 "--no-sync", "--locale=C")
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                    f"unix_socket_directories = '{self.dir}'\nfsync = off\nshared_buffers = 16MB\n"
                    "max_connections = 20\nlog_min_messages = warning\n")
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "postgres.log"), "-w",
                 "-t", "30", "start")
        return self

    def sql(self, query: str) -> str:
        r = subprocess.run([PSQL, "-X", "-A", "-t", "-h", str(self.dir), "-p", str(self.port),
                            "-U", "postgres", "-d", "postgres", "-c", query], capture_output=True,
                           text=True, timeout=30, env=psql_env())
        if r.returncode != 0:
            raise AssertionError(f"psql {query!r} on the host's PostgreSQL: {r.stderr}")
        return r.stdout.strip()

    def stop(self):
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D",
                        str(self.data), "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
def gen_cert(out: Path) -> None:
    """A CA and a server certificate for localhost, made by the image's own pggw (as 10001)."""
    out.mkdir(parents=True)
    os.chmod(out, 0o777)
    podman("run", "--rm", "--network", "none", *ULIMIT_ARGS, "-v", f"{out}:/out", IMAGE,
           "gen-cert", "--dir", "/out", "--hostname", "localhost")
    os.chmod(out, 0o755)


def start_log_ports(logs: str) -> tuple[int, int] | None:
    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", logs)
    n = re.search(r"metrics on 127\.0\.0\.1:(\d+)", logs)
    return (int(m[1]), int(n[1])) if m and n else None


def container_logs(name: str) -> str:
    r = podman("logs", name, check=False)
    return r.stdout + r.stderr


def wait_started(name: str) -> tuple[int, int]:
    def started():
        logs = container_logs(name)
        ports = start_log_ports(logs)
        if ports:
            return ports
        state = podman("inspect", "--format", "{{.State.Status}}", name, check=False).stdout.strip()
        if state in ("exited", "stopped"):
            raise AssertionError(f"{name} exited before listening:\n{logs}")
        return None
    return wait_for(f"{name}'s start log line", started, 60, 0.3)


def test_image() -> None:
    phase(f"image: deploy/build-image.sh --tag {IMAGE}")
    r = subprocess.run([str(ROOT / "deploy" / "build-image.sh"), "--tag", IMAGE],
                       text=True, timeout=3000)
    assert r.returncode == 0, "deploy/build-image.sh failed"
    info = json.loads(podman("image", "inspect", IMAGE).stdout)[0]
    cfg = info.get("Config", {})
    assert cfg.get("User") in ("10001:10001", "10001"), f"image USER {cfg.get('User')!r}"
    assert cfg.get("Entrypoint") == ["pggw"], f"image ENTRYPOINT {cfg.get('Entrypoint')}"
    assert set(cfg.get("ExposedPorts") or {}) == {"6432/tcp", "9930/tcp"}, cfg.get("ExposedPorts")
    print(f"  image {IMAGE}: {info['Size'] / 1e6:.1f} MB, user {cfg['User']}, "
          f"entrypoint {cfg['Entrypoint']}, ports {sorted(cfg['ExposedPorts'])}")
    r = podman("run", "--rm", "--network", "none", *ULIMIT_ARGS, "--entrypoint", "/bin/sh", IMAGE,
               "-c", 'set -e; ls /usr/lib/*/pggw/libpggw_tls_boringssl.so /usr/lib/*/pggw/libpggw_tls_wolfssl.so;'
               ' if ldd /usr/bin/pggw /usr/lib/*/pggw/*.so | grep "not found"; then exit 1; fi;'
               ' for t in cc c++ g++ cmake ninja; do if command -v $t; then exit 2; fi; done;'
               ' test ! -e /usr/include/boost; test ! -e /src; test ! -e /build; echo contents-ok',
               check=False)
    assert r.returncode == 0 and "contents-ok" in r.stdout, \
        f"image contents (libraries resolve, no compiler, no sources):\n{r.stdout}{r.stderr}"
    r = podman("run", "--rm", "--network", "none", *ULIMIT_ARGS, IMAGE, "--version")
    libs = re.findall(r"tls-library (\w+)", r.stdout)
    assert sorted(libs) == ["boringssl", "wolfssl"], f"TLS modules in the image: {r.stdout}"


def test_run(pg: Postgres, certs: Path) -> None:
    phase("podman run: non-root, --read-only, --cap-drop ALL; psql verify-full; podman stop drains")
    name = f"{RUN_ID}-run"
    try:
        podman("run", "-d", "--name", name, "--network", "host", "--read-only", "--cap-drop", "ALL",
               "--security-opt", "no-new-privileges", *ULIMIT_ARGS,
               "-v", f"{certs}:/etc/pggw/tls:ro", IMAGE,
               "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
               "--server", f"127.0.0.1:{pg.port}", "--cert", "/etc/pggw/tls/server.crt",
               "--key", "/etc/pggw/tls/server.key", "--client-tls", "require", "--workers", "2")
        port, mport = wait_started(name)
        pid = int(podman("inspect", "--format", "{{.State.Pid}}", name).stdout)
        check_confined(pid, "podman run")
        assert http_status(mport, "/readyz") == 200 and http_status(mport, "/healthz") == 200
        r = psql(port, certs / "ca.crt", "select 41+1")
        assert r.returncode == 0 and r.stdout.strip() == "42", f"psql: {r.stdout}{r.stderr}"
        m = metrics(mport)
        ok = sample(m, "pggw_tls_handshakes_total", leg="client", result="ok")
        assert ok >= 1, f"no client TLS handshake counted: {ok}"
        print(f"  psql verify-full through pggw on :{port} -> 42; uid 10001, no capabilities, "
              f"read-only root")

        # A query in flight when podman stop sends SIGTERM completes; /readyz turns 503 at once.
        slow = subprocess.Popen([PSQL, "-X", "-A", "-t", conninfo(port, certs / "ca.crt"), "-c",
                                 "select 'slept' from pg_sleep(5)"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=psql_env())
        wait_for("the slow query running on PostgreSQL", lambda: pg.sql(
            "select count(*) from pg_stat_activity where state = 'active' "
            "and query like '%pg_sleep(5)' and pid <> pg_backend_pid()") == "1", 10, 0.1)
        t = time.monotonic()
        stop = subprocess.Popen([*PODMAN, "stop", "-t", "40", name], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        wait_for("/readyz 503 during the drain", lambda: http_status(mport, "/readyz") == 503, 5, 0.05)
        assert slow.poll() is None, "the slow query ended before the drain began: no query in flight"
        out, err = slow.communicate(timeout=30)
        assert slow.returncode == 0 and out.strip() == "slept", \
            f"query in flight at SIGTERM: rc {slow.returncode} {out}{err}"
        stop.communicate(timeout=60)
        took = time.monotonic() - t
        code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        assert code == "0", f"pggw exited {code} after podman stop:\n{container_logs(name)}"
        print(f"  podman stop: /readyz 503, the query in flight completed, exit 0 after {took:.1f}s")
    except BaseException:
        print(container_logs(name)[-4000:])
        raise
    finally:
        podman("rm", "-f", name, check=False)


def kubelet_secret_dir(root: Path, certs: Path, generation: int) -> None:
    """The files of a Secret volume as the kubelet writes them: a timestamped directory, a
    ..data symlink to it, and one symlink per key through ..data; root:fsGroup 0440."""
    ts = root / f"..2026_01_01_00_00_0{generation}.000000000"
    ts.mkdir()
    for key, src in (("tls.crt", "server.crt"), ("tls.key", "server.key")):
        shutil.copyfile(certs / src, ts / key)
        os.chown(ts / key, 0, 10001)
        os.chmod(ts / key, 0o440)
    tmp = root / "..data_tmp"
    tmp.symlink_to(ts.name)
    os.rename(tmp, root / "..data")  # atomic, as the kubelet swaps it
    for key in ("tls.crt", "tls.key"):
        if not (root / key).is_symlink():
            (root / key).symlink_to(f"..data/{key}")


def kube_overlay(pg: Postgres, secret_dir: Path, out: Path) -> tuple[Path, dict]:
    """deploy/kubernetes' ConfigMap and Deployment with the test overlay (see the docstring)."""
    dep = yaml.safe_load((K8S / "deployment.yaml").read_text())
    cm = yaml.safe_load((K8S / "configmap.yaml").read_text())
    cm_name = cm["metadata"]["name"]
    cm["metadata"]["name"] = f"{RUN_ID}-config"
    toml = cm["data"]["pggw.toml"]
    for key, value in (("listen", '["127.0.0.1:0"]'), ("metrics-listen", '"127.0.0.1:0"'),
                       ("server", f'"127.0.0.1:{pg.port}"'), ("drain-delay", "1")):
        toml, n = re.subn(rf"^{key} = .*$", f"{key} = {value}", toml, flags=re.M)
        assert n == 1, f"configmap.yaml's pggw.toml has no single '{key} = ' line"
    cm["data"]["pggw.toml"] = toml
    dep["metadata"]["name"] = RUN_ID
    dep["spec"]["replicas"] = 1
    pod = dep["spec"]["template"]["spec"]
    pod["hostNetwork"] = True
    c = pod["containers"][0]
    c["image"] = IMAGE
    for k in ("ports", "readinessProbe", "livenessProbe"):
        c.pop(k)
    for v in pod["volumes"]:
        if "secret" in v:
            v.pop("secret")
            v["hostPath"] = {"path": str(secret_dir), "type": "Directory"}
        elif v.get("configMap", {}).get("name") == cm_name:
            v["configMap"]["name"] = cm["metadata"]["name"]
    path = out / "kube.yaml"
    path.write_text(yaml.safe_dump_all([cm, dep], sort_keys=False))
    return path, dep


def dep_toml(kube: Path) -> str:
    return next(d for d in yaml.safe_load_all(kube.read_text())
                if d["kind"] == "ConfigMap")["data"]["pggw.toml"]


def is_json_log(line: str) -> bool:
    try:
        obj = json.loads(line)
    except ValueError:
        return False
    return isinstance(obj, dict) and {"time", "level", "msg"} <= obj.keys()


def test_kube_play(pg: Postgres, certs: Path, certs2: Path, tmp: Path) -> None:
    phase("podman kube play: deploy/kubernetes Deployment + ConfigMap (test overlay)")
    secret_dir = tmp / "secret"
    secret_dir.mkdir()
    os.chmod(secret_dir, 0o755)
    kubelet_secret_dir(secret_dir, certs, 1)
    kube, dep = kube_overlay(pg, secret_dir, tmp)
    pod = f"{RUN_ID}-pod-0"
    name = f"{pod}-pggw"
    conf = tmp / "containers.conf"  # kube play has no --ulimit: a config file for this run only
    conf.write_text(f'[containers]\ndefault_ulimits = ["nofile={NOFILE}:{NOFILE}", '
                    f'"nproc={NPROC}:{NPROC}"]\n')
    env = dict(os.environ, CONTAINERS_CONF=str(conf))
    try:
        podman("kube", "play", str(kube), env=env)
        port, mport = wait_started(name)
        pid = int(podman("inspect", "--format", "{{.State.Pid}}", name).stdout)
        check_confined(pid, "kube play")
        assert http_status(mport, "/readyz") == 200, "readinessProbe /readyz"
        assert http_status(mport, "/healthz") == 200, "livenessProbe /healthz"
        r = psql(port, certs / "ca.crt", "select current_user || ' ' || 41+1")
        assert r.returncode == 0 and r.stdout.strip() == "postgres 42", f"psql: {r.stdout}{r.stderr}"
        # The ConfigMap's log-format took effect: one JSON object per line.
        if re.search(r'^log-format = "json"', dep_toml(kube), re.M):
            r = podman("logs", name)
            lines = [l for l in (r.stdout + "\n" + r.stderr).splitlines() if l.strip()]
            bad = [l for l in lines if not is_json_log(l)]
            assert lines and not bad, f"log-format json, yet lines that are not: {bad[:3]}"
        print(f"  psql verify-full through the pod on :{port}; uid 10001, no capabilities, "
              f"read-only root; config from the ConfigMap")

        # Rotation the kubelet's way: new directory, atomic ..data swap, no signal, no restart.
        kubelet_secret_dir(secret_dir, certs2, 2)
        t = time.monotonic()
        wait_for("the rotated certificate to be served",
                 lambda: psql(port, certs2 / "ca.crt", "select 1").returncode == 0, 15, 0.3)
        print(f"  certificate rotated in the mounted directory: served after "
              f"{time.monotonic() - t:.1f}s, no restart")
        assert sample(metrics(mport), "pggw_tls_reloads_total", result="ok") >= 1

        grace = dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        t = time.monotonic()
        podman("pod", "stop", "-t", str(grace), pod, timeout=grace + 30)
        code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        assert code == "0", f"pggw exited {code} after pod stop:\n{container_logs(name)}"
        print(f"  podman pod stop: exit 0 after {time.monotonic() - t:.1f}s "
              f"(drain-delay 1 in the overlay; grace {grace}s)")
    except BaseException:
        print(container_logs(name)[-4000:])
        raise
    finally:
        podman("kube", "down", str(kube), check=False, env=env)
        podman("volume", "rm", "-f", f"{RUN_ID}-config", check=False)


def main() -> int:
    if os.geteuid() != 0:
        print("container_test.py: needs root (debootstrap, rootful podman, initdb as postgres)")
        return 1
    for tool in ("podman", "debootstrap", "runuser"):
        if not shutil.which(tool):
            print(f"container_test.py: {tool} not found (scripts/install-deps.sh installs it)")
            return 1
    test_image()
    tmp = Path(tempfile.mkdtemp(prefix="pggw-deploy-"))
    pg = None
    try:
        phase("PostgreSQL 15 on the host; certificates from the image's pggw gen-cert")
        pg = Postgres().start()
        certs, certs2 = tmp / "certs", tmp / "certs2"
        gen_cert(certs)
        gen_cert(certs2)
        test_run(pg, certs)
        test_kube_play(pg, certs, certs2, tmp)
    finally:
        if pg:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    phase("container image, podman run and kube play: OK")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # CTest's timeout: clean up
    sys.exit(main())
