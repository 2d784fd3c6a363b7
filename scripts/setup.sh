#!/usr/bin/env bash
# Installs or checks what swift-slm needs beyond the Swift toolchain:
#   oneDNN (libdnnl-dev) — fp32/bf16 matrix multiply on Linux x86-64
#   OpenBLAS (libopenblas-dev) — the CBLAS fallback
# Safe to run again: it only installs what is missing. On macOS nothing is needed
# (Accelerate ships with the system).
set -euo pipefail

say() { printf 'setup: %s\n' "$*"; }

if ! command -v swift >/dev/null 2>&1; then
    say "Swift is not on PATH. Install Swift 6 (https://www.swift.org/install) and run this again."
    exit 1
fi

case "$(uname -s)" in
Darwin)
    say "macOS: matrix multiply uses Accelerate; nothing to install."
    exit 0
    ;;
Linux) ;;
*)
    say "unsupported system $(uname -s); swift-slm will use its plain reference matrix multiply."
    exit 0
    ;;
esac

packages=(libdnnl-dev libopenblas-dev)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        say "missing ${missing[*]}, and this is not a Debian/Ubuntu system."
        say "Install oneDNN 2.x and OpenBLAS with your package manager; without them matrix multiply runs on slow reference loops."
        exit 1
    fi
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
            say "missing ${missing[*]}; run as root: apt-get install -y ${missing[*]}"
            exit 1
        fi
    fi
    say "installing ${missing[*]} …"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Check what the build and the run time loader will find.
[ -f /usr/include/oneapi/dnnl/dnnl.h ] || { say "oneDNN headers not found after install (expected /usr/include/oneapi/dnnl/dnnl.h)"; exit 1; }
# (The list is captured first: grep -q exits at the first match, and under pipefail the
# SIGPIPE that ldconfig then gets would fail the check at random.)
loader=$(ldconfig -p)
grep -q 'libdnnl\.so\.2' <<<"$loader" || { say "libdnnl.so.2 is not visible to the loader"; exit 1; }
grep -q 'libopenblas\.so\.0' <<<"$loader" || say "warning: libopenblas.so.0 not visible; the CBLAS fallback is unavailable"
say "ok: oneDNN $(dpkg-query -W -f='${Version}' libdnnl-dev), OpenBLAS $(dpkg-query -W -f='${Version}' libopenblas-dev), $(swift --version 2>/dev/null | head -1)"
