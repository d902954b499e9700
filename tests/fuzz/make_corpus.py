#!/usr/bin/env python3
"""Writes the seed corpora under tests/fuzz/corpus/<target>/: real packets as PostgreSQL 15's
psql, libpq and server send them, PROXY headers as HAProxy sends them, and the RFC 7677 SCRAM
exchange. The ClientHellos in corpus/client_hello/ were captured from `openssl s_client`
(OpenSSL 3.0, Debian 12); this script reuses them for the targets that see a ClientHello.
Run it again after changing it; it rewrites only the files it names."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def u32(v):
    return struct.pack(">I", v)


def msg(t, body):  # a typed message: type byte, int32 length (itself included), body
    return t.encode() + u32(len(body) + 4) + body


def cstr(s):
    return s.encode() + b"\0"


def startup(params, version=3 << 16):
    body = u32(version) + b"".join(cstr(k) + cstr(v) for k, v in params) + b"\0"
    return u32(len(body) + 4) + body


SSL_REQUEST = u32(8) + u32(80877103)
GSSENC_REQUEST = u32(8) + u32(80877104)
CANCEL_30 = u32(16) + u32(80877102) + u32(4242) + u32(0x1234ABCD)
CANCEL_32 = u32(12 + 32) + u32(80877102) + u32(4242) + bytes(range(32))  # protocol 3.2 key
# What psql 15 sends (PGAPPNAME unset: application_name=psql, client_encoding from the locale).
PSQL_STARTUP = startup([("user", "alice"), ("database", "app"), ("application_name", "psql"),
                        ("client_encoding", "UTF8")])
PGBENCH_STARTUP = startup([("user", "bench"), ("database", "bench")])
STARTUP_32 = startup([("user", "alice"), ("database", "app"), ("_pq_.x", "1")], (3 << 16) | 2)
with open(os.path.join(CORPUS, "client_hello", "openssl_s_client_tls13_alpn_sni"), "rb") as f:
    HELLO13 = f.read()
with open(os.path.join(CORPUS, "client_hello", "openssl_s_client_tls12_sni"), "rb") as f:
    HELLO12 = f.read()

# ---- startup_decoder ----
for name, data in [("ssl_request", SSL_REQUEST), ("gssenc_request", GSSENC_REQUEST),
                   ("cancel_request_30", CANCEL_30), ("cancel_request_32", CANCEL_32),
                   ("startup_psql", PSQL_STARTUP), ("startup_pgbench", PGBENCH_STARTUP),
                   ("startup_protocol_32", STARTUP_32), ("direct_tls_client_hello", HELLO13),
                   ("ssl_request_then_startup", SSL_REQUEST + PSQL_STARTUP)]:
    put("startup_decoder", name, data)

# ---- client_negotiation: [mode] [CN length] [CN] [bytes from the client] ----
MODES = {"disable": 0, "allow": 1, "prefer": 2, "require": 3, "verify_ca": 4, "verify_full": 5}


def nego(mode, cn, stream):
    return bytes([MODES[mode], len(cn)]) + cn.encode() + stream


put("client_negotiation", "require_ssl_then_startup", nego("require", "", SSL_REQUEST + PSQL_STARTUP))
put("client_negotiation", "verify_full_ssl_then_startup",
    nego("verify_full", "alice", SSL_REQUEST + PSQL_STARTUP))
put("client_negotiation", "prefer_gssenc_ssl_startup",
    nego("prefer", "", GSSENC_REQUEST + SSL_REQUEST + PSQL_STARTUP))
put("client_negotiation", "disable_ssl_then_startup", nego("disable", "", SSL_REQUEST + PGBENCH_STARTUP))
put("client_negotiation", "require_direct_tls", nego("require", "alice", HELLO13 + PSQL_STARTUP))
put("client_negotiation", "prefer_cancel", nego("prefer", "", CANCEL_30))
put("client_negotiation", "allow_plaintext_startup", nego("allow", "", STARTUP_32))

# ---- message_tracker: what PostgreSQL 15 sends after a StartupMessage, and a query ----
def param(k, v):
    return msg("S", cstr(k) + cstr(v))


login = (msg("R", u32(0)) + param("application_name", "psql") + param("client_encoding", "UTF8")
         + param("DateStyle", "ISO, MDY") + param("server_version", "15.8")
         + msg("K", u32(4242) + u32(0x1234ABCD)) + msg("Z", b"I"))
rowdesc = msg("T", struct.pack(">H", 1) + cstr("?column?") + u32(0) + struct.pack(">H", 0)
              + u32(23) + struct.pack(">hih", 4, -1, 0))
select1 = rowdesc + msg("D", struct.pack(">H", 1) + u32(1) + b"1") + msg("C", cstr("SELECT 1"))
put("message_tracker", "login", login)
put("message_tracker", "select_1", select1 + msg("Z", b"I"))
put("message_tracker", "begin", msg("C", cstr("BEGIN")) + msg("Z", b"T"))
put("message_tracker", "error_in_transaction",
    msg("E", b"SERROR\0VERROR\0C42601\0Msyntax error\0\0") + msg("Z", b"E"))

# ---- channel_binding: the server's first auth request, and the client's SASLInitialResponse ----
def auth_sasl(mechs):
    return msg("R", u32(10) + b"".join(cstr(m) for m in mechs) + b"\0")


def sasl_initial(mech, data):
    return msg("p", cstr(mech) + u32(len(data)) + data)


put("channel_binding", "auth_sasl_plus", auth_sasl(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])
    + msg("R", u32(11) + b"r=abc"))
put("channel_binding", "auth_sasl", auth_sasl(["SCRAM-SHA-256"]))
put("channel_binding", "negotiate_version_then_sasl",
    msg("v", u32(0) + u32(1) + cstr("_pq_.x")) + auth_sasl(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]))
put("channel_binding", "auth_ok_trust", msg("R", u32(0)) + param("server_version", "15.8"))
put("channel_binding", "sasl_initial_plus", sasl_initial(
    "SCRAM-SHA-256-PLUS", b"p=tls-server-end-point,,n=,r=rOprNGfwEbeRWgbNEkqO"))
put("channel_binding", "sasl_initial", sasl_initial("SCRAM-SHA-256", b"n,,n=,r=rOprNGfwEbeRWgbNEkqO"))

# ---- unverified_text: replies of servers pggw cannot trust ----
put("unverified_text", "error_response_fatal",
    msg("E", b"SFATAL\0VFATAL\0C28000\0Mno pg_hba.conf entry for host \"10.0.0.1\"\0"
        b"Fauth.c\0L543\0RClientAuthentication\0\0"))
put("unverified_text", "error_v2_text", b"EFATAL:  unsupported frontend protocol 1234.5679\n\0")
put("unverified_text", "not_postgres", b"HTTP/1.1 400 Bad Request\r\n\r\n")

# ---- client_hello: the captures, and what would be a ClientHello fragmented over records ----
put("client_hello", "first_record_fragment", HELLO13[:5] + HELLO13[5:40])

# ---- proxy_protocol: HAProxy send-proxy / send-proxy-v2, then the client's first packet ----
V2_SIG = b"\r\n\r\n\0\r\nQUIT\n"
put("proxy_protocol", "v1_tcp4", b"PROXY TCP4 192.0.2.10 198.51.100.1 51234 6432\r\n" + SSL_REQUEST)
put("proxy_protocol", "v1_tcp6", b"PROXY TCP6 2001:db8::10 2001:db8::1 51234 6432\r\n" + SSL_REQUEST)
put("proxy_protocol", "v1_unknown", b"PROXY UNKNOWN\r\n" + PSQL_STARTUP)
v2_tcp4 = bytes([192, 0, 2, 10, 198, 51, 100, 1]) + struct.pack(">HH", 51234, 6432)
put("proxy_protocol", "v2_tcp4", V2_SIG + bytes([0x21, 0x11]) + struct.pack(">H", 12) + v2_tcp4
    + SSL_REQUEST)
v2_tcp6 = (bytes.fromhex("20010db8000000000000000000000010")
           + bytes.fromhex("20010db8000000000000000000000001") + struct.pack(">HH", 51234, 6432))
put("proxy_protocol", "v2_tcp6", V2_SIG + bytes([0x21, 0x21]) + struct.pack(">H", 36) + v2_tcp6)
tlv = bytes([0x01]) + struct.pack(">H", 10) + b"postgresql" + bytes([0xEA]) + struct.pack(">H", 5) + b"vpc-1"
put("proxy_protocol", "v2_tcp4_tlvs", V2_SIG + bytes([0x21, 0x11]) + struct.pack(">H", 12 + len(tlv))
    + v2_tcp4 + tlv + PSQL_STARTUP)
put("proxy_protocol", "v2_local", V2_SIG + bytes([0x20, 0x00]) + struct.pack(">H", 0) + SSL_REQUEST)

# ---- config ----
with open(os.path.join(HERE, "..", "..", "deploy", "kubernetes", "configmap.yaml")) as f:
    lines = f.read().split("pggw.toml: |\n", 1)[1].splitlines()
put("config", "kubernetes_configmap.toml", "\n".join(l[4:] for l in lines) + "\n")
put("config", "every_key.toml", """\
listen = ["127.0.0.1:6432", "[::1]:6432"]
server = "db.internal:5432"
workers = 4
handshake-timeout = 2.5
server-connect-timeout = 5
max-connections = 1000
drain-delay = 0
drain-timeout = 30
cert = "/etc/pggw/server.crt"
key = "/etc/pggw/server.key"
client-ca = "/etc/pggw/ca.crt"
client-tls = "verify-full"
tls-library = "wolfssl"
tls-min-version = "1.3"
tls-ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
tls-groups = "X25519:P-256"
server-tls = "verify-full"
server-ca = "/etc/pggw/pg-ca.crt"
server-cert = "/etc/pggw/client.crt"
server-key = "/etc/pggw/client.key"
server-sni = "db.internal"
proxy-protocol = "auto"
proxy_trusted = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]
metrics-listen = "[::]:9930"
log-format = "text"
log-level = "debug"
auth-file = "/etc/pggw/userlist.txt"
auth-unknown-users = "refuse"
""")
put("config", "errors.toml", 'backend = "h:99999"\nworkers = [1, 2]\nnope = 1\n[table]\nx = 1\n')

# ---- SCRAM (RFC 7677 section 3: user "user", password "pencil") ----
put("scram_messages", "rfc7677_client_first", "n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
put("scram_messages", "rfc7677_server_first",
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
put("scram_messages", "rfc7677_client_final",
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
put("scram_messages", "rfc7677_server_final", "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
put("scram_messages", "plus_client_first", "p=tls-server-end-point,,n=,r=rOprNGfwEbeRWgbNEkqO")
put("scram_messages", "server_error", "e=invalid-proof")
# The RFC 7677 secret, as PostgreSQL stores it (pg_authid.rolpassword).
RFC7677_SECRET = ("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
                  "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
                  "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=")
put("scram_messages", "rfc7677_secret", RFC7677_SECRET)
# scram_server: [flags] [client-first length] [client-first] [client-final] (scram_server_fuzz.cpp)
CF = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
CF_PLUS = b"p=tls-server-end-point,,n=,r=rOprNGfwEbeRWgbNEkqO"
put("scram_server", "rfc7677_correct_proof", bytes([0x08, len(CF)]) + CF)
put("scram_server", "plus_correct_proof", bytes([0x0B, len(CF_PLUS)]) + CF_PLUS)
put("scram_server", "no_initial_response_correct_proof", bytes([0x0C, len(CF)]) + CF)
put("scram_server", "rfc7677_client_final", bytes([0x00, len(CF)]) + CF
    + b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
put("auth_file", "userlist.txt", '; pgbouncer userlist\n"user" "%s"\n"bob" "md5%s"\n'
    '"carol" "plain ""quoted"" password"\n# comment\n"dave" "x" ""\n' % (RFC7677_SECRET, "0" * 32))
