#!/usr/bin/env python3
"""Crypto bound of one TLS 1.3 server handshake with the BoringSSL pggw loads (Debian's
android libcrypto), measured through ctypes: ECDSA P-256 sign (SHA-256 digest), X25519 keypair,
X25519 agreement; and the client's share (ECDSA verify). CPU time (process_time) per
operation, ~SECONDS of calls each. ctypes costs ~1 us per call, small against these.

usage: bench/crypto_bound.py [SECONDS]     prints key=value lines
"""
import ctypes
import os
import sys
import time

LIB = os.environ.get("BORINGSSL_CRYPTO", "/usr/lib/x86_64-linux-gnu/android/libcrypto.so.0")
SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
NID_X9_62_prime256v1 = 415

c = ctypes.CDLL(LIB)
c.EC_KEY_new_by_curve_name.restype = ctypes.c_void_p
c.EC_KEY_generate_key.argtypes = [ctypes.c_void_p]
c.ECDSA_size.argtypes = [ctypes.c_void_p]
c.ECDSA_sign.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                         ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p]
c.ECDSA_verify.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                           ctypes.c_size_t, ctypes.c_void_p]
c.X25519_keypair.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
c.X25519.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]

key = c.EC_KEY_new_by_curve_name(NID_X9_62_prime256v1)
assert key and c.EC_KEY_generate_key(key) == 1
digest = bytes(range(32))
sig = ctypes.create_string_buffer(c.ECDSA_size(key))
siglen = ctypes.c_uint(0)
pub1, priv1 = ctypes.create_string_buffer(32), ctypes.create_string_buffer(32)
pub2, priv2 = ctypes.create_string_buffer(32), ctypes.create_string_buffer(32)
shared = ctypes.create_string_buffer(32)
c.X25519_keypair(pub2, priv2)


def rate(fn):
    n, t0 = 0, time.process_time()
    while True:
        for _ in range(64):
            fn()
        n += 64
        t = time.process_time() - t0
        if t >= SECONDS:
            return n / t


def sign():
    assert c.ECDSA_sign(0, digest, 32, sig, ctypes.byref(siglen), key) == 1


c.ECDSA_sign(0, digest, 32, sig, ctypes.byref(siglen), key)
good_sig = sig.raw[: siglen.value]


def verify():
    assert c.ECDSA_verify(0, digest, 32, good_sig, len(good_sig), key) == 1


def keypair():
    c.X25519_keypair(pub1, priv1)


def agree():
    assert c.X25519(shared, priv1, pub2) == 1


r_sign, r_verify, r_kp, r_agree = rate(sign), rate(verify), rate(keypair), rate(agree)
server_us = 1e6 / r_sign + 1e6 / r_kp + 1e6 / r_agree
client_us = 1e6 / r_verify + 1e6 / r_kp + 1e6 / r_agree
print(f"library={LIB}")
print(f"ecdsa_p256_sign_per_s={r_sign:.0f}")
print(f"ecdsa_p256_verify_per_s={r_verify:.0f}")
print(f"x25519_keypair_per_s={r_kp:.0f}")
print(f"x25519_agree_per_s={r_agree:.0f}")
print(f"server_handshake_crypto_us={server_us:.1f}")
print(f"server_bound_handshakes_per_cpu_s={1e6 / server_us:.0f}")
print(f"client_handshake_crypto_us={client_us:.1f}")
