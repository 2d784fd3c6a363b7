#!/usr/bin/env bash
# Installs or checks what swift-slm needs beyond the Swift toolchain:
#   oneDNN 2 (libdnnl2) — fp32/bf16 matrix multiply on Linux x86-64
#   OpenBLAS (libopenblas0) — the CBLAS fallback
# Both are found at run time (dlopen): no headers are needed, and installing them after a
# build takes effect at the next start.
# With --with-browser, also what the browser tests and PNG charts need: Chromium and its
# driver (chromium, chromium-driver), rsvg-convert (librsvg2-bin) and selenium (pip).
# With --with-mpi, OpenMPI (openmpi-bin) for data-parallel training: mpirun -np N slm train.
# Safe to run again: it only installs what is missing. On macOS nothing is needed
# (Accelerate ships with the system).
set -euo pipefail

say() { printf 'setup: %s\n' "$*"; }

with_browser=false
with_mpi=false
for arg in "$@"; do
    case "$arg" in
    --with-browser) with_browser=true ;;
    --with-mpi) with_mpi=true ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) say "unknown option $arg (known: --with-browser, --with-mpi)"; exit 1 ;;
    esac
done

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

packages=(libdnnl2 libopenblas0)
$with_browser && packages+=(chromium chromium-driver librsvg2-bin)
$with_mpi && packages+=(openmpi-bin)
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
# (The list is captured first: grep -q exits at the first match, and under pipefail the
# SIGPIPE that ldconfig then gets would fail the check at random.)
loader=$(ldconfig -p)
grep -q 'libdnnl\.so\.2' <<<"$loader" || { say "libdnnl.so.2 is not visible to the loader"; exit 1; }
grep -q 'libopenblas\.so\.0' <<<"$loader" || say "warning: libopenblas.so.0 not visible; the CBLAS fallback is unavailable"
say "ok: oneDNN $(dpkg-query -W -f='${Version}' libdnnl2), OpenBLAS $(dpkg-query -W -f='${Version}' libopenblas0), $(swift --version 2>/dev/null | head -1)"

if $with_browser; then
    [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || { say "chromium or chromedriver missing after install"; exit 1; }
    python3 -c "import selenium" 2>/dev/null || {
        say "installing selenium (pip) …"
        python3 -m pip install --quiet selenium
    }
    say "ok: $(/usr/bin/chromium --version 2>/dev/null | head -1), selenium $(python3 -c 'import selenium; print(selenium.__version__)'), $(rsvg-convert --version | head -1)"
fi

if $with_mpi; then
    grep -q 'libmpi\.so\.40' <<<"$(ldconfig -p)" || { say "libmpi.so.40 (OpenMPI) is not visible to the loader after install"; exit 1; }
    say "ok: $(mpirun --version 2>/dev/null | head -1)"
fi
