#!/usr/bin/env bash
# Assembles a self-contained folder for bench/device_scaling.sh on another machine:
#   DIR/pggw DIR/handshake_load DIR/libpggw_tls_*.so   (built in build-bench)
#   DIR/lib/     every non-glibc library they need (ldd): spdlog, fmt, prometheus-cpp-core,
#                toml++, Android BoringSSL libssl/libcrypto, wolfSSL...
#   DIR/lib-cxx/ libstdc++ and libgcc_s (Debian 12's libstdc++ needs GLIBC_2.36: used only
#                where the machine's own is too old, see device_scaling.sh)
#   DIR/glibc/   this machine's glibc and loader, for the fallback when the other machine's
#                glibc is older than what the binaries need (objdump -T: GLIBC_2.xx)
#   DIR/certs/   pggw gen-cert output (ECDSA P-256)
#   DIR/glibc-needed.txt  highest GLIBC_ symbol version each binary needs
# usage: bench/device_prepare.sh [DIR]      (default build-bench/device)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${PGGW_BUILD:-$REPO/build-bench}
DIR=${1:-$BUILD/device}
rm -rf "$DIR"
mkdir -p "$DIR/lib" "$DIR/lib-cxx" "$DIR/glibc" "$DIR/certs"
bins=("$BUILD/pggw" "$BUILD/handshake_load" "$BUILD"/libpggw_tls_*.so)
cp "${bins[@]}" "$DIR/"
strip --strip-unneeded "$DIR/pggw" "$DIR/handshake_load" "$DIR"/libpggw_tls_*.so 2>/dev/null || true

is_glibc() {
    case $(basename "$1") in
    libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | librt.so.* | ld-linux*.so.* | \
        libresolv.so.* | libutil.so.* | libmvec.so.*) return 0 ;;
    esac
    return 1
}
for b in "${bins[@]}"; do
    ldd "$b" | awk '/=> \// {print $3} /^\s*\/.*ld-linux/ {print $1}' | while read -r lib; do
        if is_glibc "$lib"; then
            cp -L "$lib" "$DIR/glibc/$(basename "$lib")"
        elif [[ $(basename "$lib") == libstdc++* || $(basename "$lib") == libgcc_s* ]]; then
            cp -L "$lib" "$DIR/lib-cxx/$(basename "$lib")"
        else
            cp -L "$lib" "$DIR/lib/$(basename "$lib")"
        fi
    done
done
# The loader under its canonical name, for "ld-linux-x86-64.so.2 --library-path ... pggw".
cp -L /lib64/ld-linux-x86-64.so.2 "$DIR/glibc/ld-linux-x86-64.so.2"

: >"$DIR/glibc-needed.txt"
for f in "$DIR/pggw" "$DIR/handshake_load" "$DIR"/libpggw_tls_*.so "$DIR"/lib/* "$DIR"/lib-cxx/*; do
    v=$(objdump -T "$f" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
    echo "$(basename "$f") $v" >>"$DIR/glibc-needed.txt"
done
"$BUILD/pggw" gen-cert --dir "$DIR/certs" >/dev/null
ldd --version | head -1 >"$DIR/built-with.txt"
echo "$DIR: $(du -sh "$DIR" | cut -f1)"
cat "$DIR/glibc-needed.txt"
