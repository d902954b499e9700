"""pggw relaying real PostgreSQL 15 sessions in plaintext (--client-tls disable).

psql and psycopg2 (libpq), pgbench, and raw protocol bytes from Python sockets.
The tests that stop PostgreSQL are last in this file.
"""
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import psycopg2
import psycopg2.errors
import pytest

from conftest import (check_no_crash, ALICE_PASSWORD, PGBENCH, PSQL, Pggw, TERMINATE, assert_ready, clean_client_env,
                      cancel_request, closing_all, connect, conninfo, describe, error_fields,
                      closed_port, psql, parse_messages, query_message, read_message, rss_bytes,
                      read_until, recv_all_until_close, run, scram_session, simple_query,
                      startup_message, threads_run, trust_session)
from helpers_assert import local_port, session_line


@pytest.fixture(scope="module")
def gw(cluster):
    p = Pggw("--client-tls", "disable", "--workers", "2", backend=cluster.addr)
    yield p
    p.stop()
    check_no_crash([p])


def dsn(gw, user="bob", **kw):
    return conninfo(host=gw.host, port=gw.port, user=user, dbname=kw.pop("dbname", "appdb"),
                    sslmode=kw.pop("sslmode", "disable"), **kw)


# --------------------------------------------------------------------------------------
# psql through pggw
# --------------------------------------------------------------------------------------
def test_psql_trust_user(gw):
    r = psql(dsn(gw, "bob"), "select 1", "select current_user")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "bob"]


def test_psql_scram_user(gw):
    r = psql(dsn(gw, "alice"), "select 1", "select current_user",
             env=clean_client_env(PGPASSWORD=ALICE_PASSWORD))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "alice"]


def test_psql_scram_user_no_password_is_refused(gw):
    # libpq gets the SASL challenge through pggw and has no password to answer it with.
    r = psql(dsn(gw, "alice"), "select 1", extra_args=["-w"])
    assert r.returncode == 2
    assert "fe_sendauth: no password supplied" in r.stderr, r.stderr


def test_wrong_password_error_reaches_client(gw):
    r = psql(dsn(gw, "alice"), "select 1", env=clean_client_env(PGPASSWORD="wrong"))
    assert r.returncode == 2
    assert 'password authentication failed for user "alice"' in r.stderr, r.stderr
    # Same through raw bytes: PostgreSQL's ErrorResponse, SQLSTATE 28P01, unchanged.
    with connect(gw.addr) as s:
        msgs = scram_session(s, "alice", "wrong")
        assert msgs[-1][0] == b"E", describe(msgs)
        f = error_fields(msgs[-1][1])
        assert f["C"] == "28P01", f
        assert f["M"] == 'password authentication failed for user "alice"', f
        assert f["S"] == "FATAL", f


def test_scram_by_hand(gw):
    with connect(gw.addr) as s:
        msgs = scram_session(s, "alice", ALICE_PASSWORD)
        assert msgs[-1][0] == b"Z", describe(msgs)
        out = simple_query(s, "select 41 + 1")
        assert [k for k, _ in out] == [b"T", b"D", b"C", b"Z"], describe(out)
        assert out[1][1].endswith(b"42")
        s.sendall(TERMINATE)


def test_unknown_database_error_reaches_client(gw):
    r = psql(dsn(gw, "bob", dbname="no_such_db"), "select 1")
    assert r.returncode == 2
    assert 'database "no_such_db" does not exist' in r.stderr, r.stderr
    with connect(gw.addr) as s:
        msgs, _ = trust_session(s, "bob", "no_such_db")
        assert msgs[-1][0] == b"E", describe(msgs)
        f = error_fields(msgs[-1][1])
        assert f["C"] == "3D000", f
        assert f["M"] == 'database "no_such_db" does not exist', f


def test_raw_session_relays_queries_and_notices(gw):
    with connect(gw.addr) as s:
        msgs, key = trust_session(s, "bob", "appdb")
        assert_ready(msgs)
        assert key is not None, "BackendKeyData must be passed through"
        kinds = [k for k, _ in msgs]
        assert b"S" in kinds, "ParameterStatus must be passed through"
        # A large result (many relay reads/writes) arrives intact.
        out = simple_query(s, "select repeat('x', 1000) from generate_series(1, 2000)", timeout=10)
        rows = [p for k, p in out if k == b"D"]
        assert len(rows) == 2000
        assert all(p.endswith(b"x" * 1000) for p in rows)
        # NOTICE (async message from the server) is relayed.
        out = simple_query(s, "do $$ begin raise notice 'hello from pg'; end $$")
        assert any(k == b"N" and b"hello from pg" in p for k, p in out), describe(out)
        # Server-side error keeps the session usable.
        out = simple_query(s, "select 1/0")
        assert error_fields([p for k, p in out if k == b"E"][0])["C"] == "22012"
        out = simple_query(s, "select 2")
        assert out[-1][0] == b"Z"
        s.sendall(TERMINATE)
        assert recv_all_until_close(s, 5) == b""


def test_large_copy_in_relayed(gw, cluster):
    """Client → server bulk (COPY FROM STDIN, 8 MB) goes through with backpressure."""
    cluster.sql("create table if not exists copy_t (v text)", db="appdb", user="bob")
    line = ("y" * 100 + "\n").encode()
    n = 80000
    proc = subprocess.Popen(
        [PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", dsn(gw, "bob"), "-c",
         "copy copy_t from stdin"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=clean_client_env())
    out, err = proc.communicate(line * n, timeout=60)
    assert proc.returncode == 0, err
    assert cluster.sql("select count(*) from copy_t", db="appdb") == str(n)


# --------------------------------------------------------------------------------------
# Session log lines
# --------------------------------------------------------------------------------------
def test_session_end_is_logged(gw):
    """The session's own line (found by the client's port), with every field: the module's
    pggw has logged other sessions and its start line names 127.0.0.1 too."""
    mark = gw.log_mark()
    with connect(gw.addr) as s:
        port = local_port(s)
        msgs = scram_session(s, "alice", ALICE_PASSWORD)
        assert msgs[-1][0] == b"Z", describe(msgs)
        query = query_message("select repeat('x', 1000)")
        s.sendall(query)
        out = read_until(s, b"Z", 5, stop_on_error=False)
        assert [k for k, _ in out] == [b"T", b"D", b"C", b"Z"], describe(out)
        s.sendall(TERMINATE)
        assert recv_all_until_close(s, 5) == b""
    line = session_line(gw, port, since=mark)
    assert line["peer"] == f"127.0.0.1:{port}", line
    assert (line["user"], line["database"], line["tls"]) == ("alice", "appdb", "off"), line
    # Terminate is relayed and PostgreSQL closes first (the client waits for that close).
    assert line["reason"] == "server closed the connection", line
    assert line["worker"] in (0, 1), line
    # psql-free and timed here: the whole session took well under the 60 s bound.
    assert 0 <= line["duration"] < 60, line
    # Client to server: at least the query and Terminate (the SASL messages too, if counted);
    # server to client: at least the 1000-byte row.
    assert line["bytes_in"] >= len(query) + len(TERMINATE), line
    assert line["bytes_out"] >= 1000, line


# --------------------------------------------------------------------------------------
# CancelRequest
# --------------------------------------------------------------------------------------
def test_cancel_through_pggw(gw):
    conn = psycopg2.connect(dsn(gw, "bob"), connect_timeout=5)
    try:
        cur = conn.cursor()
        timer = threading.Timer(0.5, conn.cancel)
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(psycopg2.errors.QueryCanceled) as ei:
            cur.execute("select pg_sleep(30)")
        elapsed = time.monotonic() - t0
        timer.join()
        assert ei.value.pgcode == "57014"
        assert elapsed < 15, f"cancel took {elapsed:.1f}s (the query sleeps 30 s)"
        conn.rollback()
        cur.execute("select 1")  # the session survives the cancel
        assert cur.fetchone() == (1,)
    finally:
        conn.close()


def test_cancel_request_raw_gets_no_reply(gw):
    """CancelRequest on a fresh connection is forwarded; pggw answers nothing and closes."""
    with connect(gw.addr) as s:
        msgs, key = trust_session(s, "bob", "appdb")
        assert_ready(msgs)
        s.sendall(query_message("select pg_sleep(30)"))
        time.sleep(0.3)
        t0 = time.monotonic()
        with connect(gw.addr) as c:
            c.sendall(struct.pack("!iiII", 16, 80877102, *key))
            assert recv_all_until_close(c, 10) == b""
        out = read_until(s, b"Z", timeout=20, stop_on_error=False)
        err = [p for k, p in out if k == b"E"]
        assert err and error_fields(err[0])["C"] == "57014", describe(out)
        assert time.monotonic() - t0 < 15  # the query sleeps 30 s


def test_cancel_with_wrong_key_is_harmless(gw):
    with connect(gw.addr) as s:
        msgs, key = trust_session(s, "bob", "appdb")
        assert_ready(msgs)
        with connect(gw.addr) as c:
            c.sendall(struct.pack("!iiII", 16, 80877102, key[0], (key[1] + 1) & 0xFFFFFFFF))
            assert recv_all_until_close(c, 5) == b""
        out = simple_query(s, "select pg_sleep(0.5), 7")
        assert out[-1][0] == b"Z" and not any(k == b"E" for k, _ in out), describe(out)


# --------------------------------------------------------------------------------------
# pgbench
# --------------------------------------------------------------------------------------
def test_pgbench_select_only(gw, cluster):
    r = run([PGBENCH, "-i", "-q", "-s", "1", "-h", str(cluster.sockdir), "-p", str(cluster.port),
             "-U", "bob", "appdb"], timeout=120, env=clean_client_env())
    assert r.returncode == 0, r.stderr
    r = run([PGBENCH, "-S", "-T", "5", "-c", "4", "-j", "2", "-h", gw.host, "-p", str(gw.port),
             "-U", "bob", "appdb"], timeout=60, env=clean_client_env(PGSSLMODE="disable"))
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"number of transactions actually processed: (\d+)", r.stdout)
    assert m and int(m.group(1)) > 0, r.stdout
    m = re.search(r"number of failed transactions: (\d+)", r.stdout)
    assert m and int(m.group(1)) == 0, r.stdout
    # Extended protocol (Parse/Bind/Execute, prepared statements) too.
    r = run([PGBENCH, "-S", "-M", "prepared", "-T", "2", "-c", "2", "-h", gw.host, "-p",
             str(gw.port), "-U", "bob", "appdb"], timeout=60,
            env=clean_client_env(PGSSLMODE="disable"))
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"number of failed transactions: (\d+)", r.stdout)
    assert m and int(m.group(1)) == 0, r.stdout


# --------------------------------------------------------------------------------------
# Session teardown in both directions
# --------------------------------------------------------------------------------------
def _backend_alive(cluster, pid) -> bool:
    return cluster.sql(f"select count(*) from pg_stat_activity where pid = {pid}") == "1"


def test_client_vanishes_mid_query_server_session_ends(gw, cluster):
    s = connect(gw.addr)
    msgs, key = trust_session(s, "bob", "appdb")
    assert_ready(msgs)
    pid = key[0]
    s.sendall(query_message("select pg_sleep(30)"))
    time.sleep(0.3)
    assert _backend_alive(cluster, pid)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()  # RST, no Terminate
    deadline = time.monotonic() + 5
    while _backend_alive(cluster, pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _backend_alive(cluster, pid), "PostgreSQL backend outlived its client by 5 s"


def test_server_terminates_session_client_sees_fatal(gw, cluster):
    mark = gw.log_mark()
    with connect(gw.addr) as s:
        msgs, key = trust_session(s, "bob", "appdb")
        assert_ready(msgs)
        assert cluster.sql(f"select pg_terminate_backend({key[0]})") == "t"
        data = recv_all_until_close(s, 5)
        msgs = parse_messages(data)
        assert msgs and msgs[0][0] == b"E", data[:80]
        assert error_fields(msgs[0][1])["C"] == "57P01", describe(msgs)
        port = local_port(s)
    line = session_line(gw, port, since=mark)
    assert line["reason"] == "server closed the connection", line
    assert line["user"] == "bob" and line["bytes_out"] > 0, line


def test_backpressure_slow_reader(gw):
    """A client that stops reading must not make pggw buffer PostgreSQL's output: a 400 MB
    result waits in the kernel buffers and PostgreSQL blocks, pggw's memory stays flat."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.settimeout(5)
    s.connect(gw.addr)
    try:
        msgs, _ = trust_session(s, "bob", "appdb")
        assert_ready(msgs)
        before = rss_bytes(gw.pid)
        s.sendall(query_message("select repeat('x', 1000000) from generate_series(1, 400)"))
        time.sleep(2.5)
        grown = rss_bytes(gw.pid) - before
        assert grown < 48 << 20, f"pggw grew by {grown >> 20} MiB while the client was not reading"
        # Reading resumes where it stopped, intact.
        kind, payload = read_message(s)
        assert kind == b"T", kind
        for _ in range(3):
            kind, payload = read_message(s)
            assert kind == b"D" and payload.endswith(b"x" * 1000000)
    finally:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()


def test_startup_parameters_pass_through(gw):
    r = psql(dsn(gw, "bob", application_name="it-app", options="-c search_path=it_schema"),
             "show application_name", "show search_path")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["it-app", "it_schema"], r.stdout


def test_pipelined_queries_in_one_write(gw):
    with connect(gw.addr) as s:
        msgs, _ = trust_session(s, "bob", "appdb")
        assert_ready(msgs)
        s.sendall(b"".join(query_message(f"select {i}") for i in range(100)))
        for i in range(100):
            out = read_until(s, b"Z", 5, stop_on_error=False)
            rows = [p for k, p in out if k == b"D"]
            assert rows and rows[0].endswith(str(i).encode()), describe(out)


def test_ipv6_and_multiple_listen(pggw, cluster):
    g = pggw("--client-tls", "disable", "--listen", "127.0.0.1:0", "--listen", "[::1]:0",
             backend=cluster.addr, listen=False)
    # Each address gets its own kernel-chosen port, both in the start line, in --listen order.
    assert [h for h, _ in g.listening] == ["127.0.0.1", "::1"], g.listening
    for host, port in g.listening:
        r = psql(conninfo(host=host, port=port, user="bob", dbname="appdb", sslmode="disable"),
                 "select inet_client_addr() is not null")
        assert r.returncode == 0, f"{host}: {r.stderr}\n{g.log_text()}"
        assert r.stdout.strip() == "t"


# --------------------------------------------------------------------------------------
# Workers and limits
# --------------------------------------------------------------------------------------
def test_workers_reuseport_and_spread(pggw, cluster):
    gw4 = pggw("--client-tls", "disable", "--workers", "4", backend=cluster.addr)
    r = run(["ss", "-H", "-ltnp", f"sport = :{gw4.port}"])
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.splitlines() if f"pid={gw4.pid}," in l]
    assert len(lines) == 4, f"expected 4 listening sockets owned by {gw4.pid}:\n{r.stdout}"
    # And no other process's (pggw chose the port: nobody else's SO_REUSEPORT socket joins).
    assert len(r.stdout.splitlines()) == 4, f"other listeners on {gw4.port}:\n{r.stdout}"

    def one_session(i):
        with connect(gw4.addr, timeout=10) as s:
            msgs, _ = trust_session(s, "bob", "appdb", timeout=10)
            assert_ready(msgs)
            s.sendall(TERMINATE)
            recv_all_until_close(s, 10)

    threads_run(one_session, [(i,) for i in range(200)], parallel=20)
    lines = gw4.wait_log(r"worker=", timeout=10, count=200)
    ends = [l for l in lines if "user=bob" in l]
    assert len(ends) >= 200, f"{len(ends)} session-end lines:\n{gw4.log_text()[-3000:]}"
    workers = {re.search(r"worker=(\S+)", l).group(1) for l in ends}
    assert len(workers) > 1, f"all 200 sessions on one worker: {workers}"


def test_max_connections(pggw, cluster):
    gw2 = pggw("--client-tls", "disable", "--max-connections", "2", backend=cluster.addr)
    socks = []
    with closing_all(socks):
        for _ in range(2):
            s = connect(gw2.addr)
            socks.append(s)
            msgs, _ = trust_session(s, "bob", "appdb")
            assert_ready(msgs)
        mark = gw2.log_mark()
        third = connect(gw2.addr)
        socks.append(third)
        third.sendall(startup_message("bob", "appdb"))
        data = recv_all_until_close(third, 5)
        assert data[:1] == b"E", data
        f = error_fields(data[5:])
        assert f["C"] == "53300", f
        assert f["M"] == "sorry, too many clients already", f
        assert b"R" not in data[:1]
        # The refusal is logged for this client (its port), with the SQLSTATE.
        port = local_port(third)
        refused = gw2.wait_log(rf"refused client: peer=127\.0\.0\.1:{port} user=bob "
                               rf"database=appdb sqlstate=53300: sorry, too many clients already",
                               timeout=10, since=mark)
        assert len(refused) == 1, gw2.log_text()[mark:]
        line = session_line(gw2, port, since=mark)
        assert line["reason"] == "refused: too_many_connections", line
        assert (line["bytes_in"], line["bytes_out"]) == (0, 0), line
        # psql sees PostgreSQL's familiar text.
        r = psql(dsn(gw2, "bob"), "select 1")
        assert r.returncode != 0 and "sorry, too many clients already" in r.stderr, r.stderr
        # Freeing a slot lets the next client in.
        socks[0].sendall(TERMINATE)
        socks[0].close()
        deadline = time.monotonic() + 5
        while True:
            r = psql(dsn(gw2, "bob"), "select 1")
            if r.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert r.returncode == 0, r.stderr


def test_cancel_works_at_max_connections(pggw, cluster):
    """PostgreSQL processes a CancelRequest even when it is full; a gateway at its connection
    limit must not lock users out of cancelling their own runaway query."""
    gw2 = pggw("--client-tls", "disable", "--max-connections", "2", backend=cluster.addr)
    socks = []
    with closing_all(socks):
        keys = []
        for _ in range(2):
            s = connect(gw2.addr)
            socks.append(s)
            msgs, key = trust_session(s, "bob", "appdb")
            assert_ready(msgs)
            keys.append(key)
        socks[0].sendall(query_message("select pg_sleep(30)"))
        time.sleep(0.3)
        t0 = time.monotonic()
        with connect(gw2.addr) as c:
            c.sendall(cancel_request(*keys[0]))
            assert recv_all_until_close(c, 10) == b""
        out = read_until(socks[0], b"Z", timeout=20, stop_on_error=False)
        err = [p for k, p in out if k == b"E"]
        assert err and error_fields(err[0])["C"] == "57014", describe(out)
        assert time.monotonic() - t0 < 15  # the query sleeps 30 s


def test_sigterm_drains_then_exits(pggw, cluster):
    """SIGTERM (Kubernetes stopping the pod): no new sessions; a session between transactions
    ends at once with FATAL 57P01 (as PostgreSQL's shutdown says it); a session inside a
    transaction carries on until it commits, then ends the same way; pggw then exits 0."""
    g = pggw("--client-tls", "disable", backend=cluster.addr)
    idle, in_tx = connect(g.addr), connect(g.addr)
    with closing_all([idle, in_tx]):
        for s in (idle, in_tx):
            msgs, _ = trust_session(s, "bob", "appdb")
            assert_ready(msgs)
        out = simple_query(in_tx, "begin")
        assert out[-1] == (b"Z", b"T"), describe(out)  # ReadyForQuery: in a transaction
        ports = {"idle": local_port(idle), "in_tx": local_port(in_tx)}
        g.proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        # The idle session is told and closed promptly.
        data = recv_all_until_close(idle, 15)
        msgs = parse_messages(data)
        assert msgs and msgs[-1][0] == b"E", data[:80]
        assert error_fields(msgs[-1][1])["C"] == "57P01", describe(msgs)
        assert time.monotonic() - t0 < 10  # not the drain timeout (30 s)
        assert g.alive(), "pggw quit with a transaction open"
        # No new sessions while draining.
        try:
            with connect(g.addr, timeout=3) as n:
                n.sendall(startup_message("bob", "appdb"))
                data = recv_all_until_close(n, 3)
                assert not any(k == b"R" for k, _ in parse_messages(data)), \
                    "a new session was accepted while draining"
        except (ConnectionRefusedError, ConnectionResetError):
            pass
        # The transaction goes on, and ends normally.
        out = simple_query(in_tx, "select 'still here'")
        assert any(k == b"D" and p.endswith(b"still here") for k, p in out), describe(out)
        out = simple_query(in_tx, "commit")
        assert (b"C", b"COMMIT\0") in out, describe(out)
        data = recv_all_until_close(in_tx, 3)
        msgs = parse_messages(data)
        assert not msgs or error_fields(msgs[-1][1])["C"] == "57P01", describe(msgs)
    rc = g.proc.wait(5)
    assert rc == 0, f"exit code {rc}\n{g.log_text()}"
    for name, port in ports.items():
        line = session_line(g, port)
        assert line["reason"] == "drained", (name, line)


def test_sigterm_idle_exits_quickly(pggw, cluster):
    g = pggw("--client-tls", "disable", backend=cluster.addr)
    t0 = time.monotonic()
    g.proc.send_signal(signal.SIGTERM)
    # No session: no drain to wait for (--drain-timeout is 30 s by default).
    assert g.proc.wait(15) == 0, g.log_text()
    assert time.monotonic() - t0 < 10


# --------------------------------------------------------------------------------------
# Server unreachable (these stop/restart the shared cluster or use dead addresses: last)
# --------------------------------------------------------------------------------------
def _assert_08006(gw_addr, backend_host, backend_port, within):
    t0 = time.monotonic()
    with connect(gw_addr, timeout=10) as s:
        s.sendall(startup_message("bob", "appdb"))
        data = recv_all_until_close(s, 10)
    elapsed = time.monotonic() - t0
    assert data[:1] == b"E", f"expected ErrorResponse, got {data[:64]!r}"
    f = error_fields(data[5:])
    assert f["C"] == "08006", f
    assert f"{backend_host}:{backend_port}" not in f["M"] and str(backend_port) not in f["M"], \
        f"the backend address leaks to the client: {f['M']!r}"
    assert elapsed < within, f"08006 after {elapsed:.2f}s"
    return f


def test_backend_refuses_connection(pggw):
    with closed_port() as dead:
        gwd = pggw("--client-tls", "disable", "--server-connect-timeout", "1",
                   backend=f"127.0.0.1:{dead}")
        f = _assert_08006(gwd.addr, "127.0.0.1", dead, within=10)
        t0 = time.monotonic()
        r = psql(dsn(gwd, "bob"), "select 1")
        assert r.returncode == 2 and f"FATAL:  {f['M']}" in r.stderr, r.stderr
        assert time.monotonic() - t0 < 10  # refused at once: not the 1 s connect timeout x N
        assert str(dead) not in r.stderr.replace(str(gwd.port), ""), r.stderr


def test_backend_connect_timeout(pggw):
    """A backend whose accept queue is full drops our SYNs: --server-connect-timeout 1 ends it."""
    bh = socket.socket()
    bh.bind(("127.0.0.1", 0))
    bh.listen(0)
    port = bh.getsockname()[1]
    fillers = []
    with closing_all(fillers):
        for _ in range(3):
            f = socket.socket()
            f.setblocking(False)
            try:
                f.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            fillers.append(f)
        time.sleep(0.2)
        gwb = pggw("--client-tls", "disable", "--server-connect-timeout", "1",
                   backend=f"127.0.0.1:{port}")
        t0 = time.monotonic()
        # After the 1 s timeout (not before); far from the kernel's SYN retries (~2 min).
        _assert_08006(gwb.addr, "127.0.0.1", port, within=10)
        assert time.monotonic() - t0 > 0.8, "connect timeout fired far too early"
    bh.close()


def test_backend_down_then_back(gw, cluster):
    assert psql(dsn(gw, "bob"), "select 1").returncode == 0
    cluster.stop()
    try:
        f = _assert_08006(gw.addr, cluster.host, cluster.port, within=10)
        t0 = time.monotonic()
        r = psql(dsn(gw, "bob"), "select 1")
        assert r.returncode == 2 and f"FATAL:  {f['M']}" in r.stderr, r.stderr
        assert time.monotonic() - t0 < 10
    finally:
        cluster.start()
    r = psql(dsn(gw, "bob"), "select 1")
    assert r.returncode == 0, r.stderr
    assert gw.alive()
