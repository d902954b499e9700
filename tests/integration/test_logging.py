"""--log-format text|json: JSON is one object per line with stable keys; client-chosen strings
(user, database) are escaped in both formats, so a newline or an escape sequence in them cannot
forge or garble a log line."""
import json

import pytest

from conftest import Pggw, TERMINATE, assert_ready, check_no_crash, connect, trust_session

EVIL_USER = "evil\n2026-11-30 00:00:00.000 UTC [1] info: session closed: peer=6.6.6.6:1"
EVIL_DB = "db\x1b[31mred\"q"


@pytest.fixture(params=["text", "json"])
def gw(request, cluster):
    p = Pggw("--client-tls", "disable", "--log-format", request.param, backend=cluster.addr)
    p.format = request.param
    yield p
    p.stop()
    check_no_crash([p])


def sessions(gw):
    with connect(gw.addr) as s:
        msgs, _ = trust_session(s, "bob", "appdb")
        assert_ready(msgs)
        s.sendall(TERMINATE)
    with connect(gw.addr) as s:
        msgs, _ = trust_session(s, EVIL_USER, EVIL_DB)  # PostgreSQL refuses the role
        assert msgs[-1][0] == b"E"


def test_client_strings_cannot_forge_lines(gw):
    mark = gw.log_mark()
    sessions(gw)
    assert gw.wait_log(r"session closed", count=2, since=mark)
    log = gw.log_text()
    # Whatever the format, the forged line never stands on its own.
    assert not any("6.6.6.6" in l and not ("evil" in l) for l in log.splitlines()), log
    assert "\x1b" not in log
    if gw.format == "text":
        assert 'user="evil\\n2026-11-30' in log, log
        assert 'database="db\\x1b[31mred\\"q"' in log, log


def test_json_is_one_object_per_line_with_stable_keys(cluster, pggw):
    gw = pggw("--client-tls", "disable", "--log-format", "json", backend=cluster.addr)
    mark = gw.log_mark()
    sessions(gw)
    assert gw.wait_log(r"session closed", count=2, since=mark)
    objs = [json.loads(l) for l in gw.log_text().splitlines() if l.strip()]
    for o in objs:
        assert {"time", "level", "pid", "msg"} <= o.keys(), o
    closed = [o for o in objs if o["msg"].startswith("session closed")]
    bob = [o for o in closed if o.get("user") == "bob"]
    assert bob and bob[0]["database"] == "appdb" and bob[0]["peer"].startswith("127.0.0.1:")
    assert {"worker", "duration", "bytes_in", "bytes_out", "tls", "reason"} <= bob[0].keys()
    evil = [o for o in closed if o.get("user") == EVIL_USER]
    assert evil and evil[0]["database"] == EVIL_DB, closed
