#!/usr/bin/env bash
# The quick start, on a bare Debian or Ubuntu with only python3:
#   ./quickstart.sh app [ARGS...]    set up, then start the demo on http://127.0.0.1:7860 (ARGS go to app.py)
#   ./quickstart.sh test [ARGS...]   set up, then run the test suite as CI does (ARGS go to pytest)
# Setting up creates the virtual environment .venv (or reuses it) and installs the pinned requirements
# into it, again only when a requirements file changed. Environment:
#   FER_VENV=DIR          the virtual environment (default .venv)
#   FER_TORCH_INDEX=URL   install torch and torchvision (same pins) from this index first, e.g.
#                         https://download.pytorch.org/whl/cpu for the CPU-only builds
#   PYTHON=EXE            the interpreter to build the environment with (default python3.11, else python3)
set -euo pipefail
cd "$(dirname "$0")"

mode=${1:-}
case "$mode" in
  app) requirements=(requirements.txt) ;;
  test) requirements=(requirements.txt requirements-dev.txt) ;;
  *) echo "usage: $0 app|test [ARGS...]" >&2; exit 2 ;;
esac
shift

venv=${FER_VENV:-.venv}
if [ ! -x "$venv/bin/python" ]; then
  py=${PYTHON:-$(command -v python3.11 || command -v python3 || true)}
  if [ -z "$py" ]; then
    echo "error: no python3 found; install it (apt-get install python3)" >&2; exit 1
  fi
  if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: $py is Python $("$py" -c 'import platform; print(platform.python_version())'); fer needs 3.11 or newer" >&2
    exit 1
  fi
  # Debian and Ubuntu ship venv's pip bootstrap (ensurepip) in a separate package.
  if ! "$py" -c 'import ensurepip' 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    else
      echo "error: $py cannot create virtual environments; run: sudo apt-get install python3-venv" >&2; exit 1
    fi
  fi
  echo "creating $venv with $py" >&2
  "$py" -m venv "$venv"
fi

# Install what changed: each requirements file is stamped with its SHA-256 once installed.
installed=
for file in "${requirements[@]}"; do
  stamp="$venv/.installed-$file.sha256"
  want=$(sha256sum "$file" | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null || true)" = "$want" ]; then
    continue
  fi
  if [ "$file" = requirements.txt ] && [ -n "${FER_TORCH_INDEX:-}" ]; then
    "$venv/bin/python" -m pip install -q --index-url "$FER_TORCH_INDEX" $(grep -E '^torch(vision)?==' "$file")
  fi
  echo "installing $file into $venv" >&2
  "$venv/bin/python" -m pip install -q -r "$file"
  "$venv/bin/python" -m pip check >&2
  echo "$want" > "$stamp"
  installed=yes
done
[ -z "$installed" ] || echo "$venv is ready ($(du -sh "$venv" | cut -f1))" >&2

if [ "$mode" = app ]; then
  exec "$venv/bin/python" app.py "$@"
fi
for tool in chromium ffmpeg; do
  if ! command -v "$tool" >/dev/null && [ -z "${CI:-}" ]; then
    echo "note: no $tool on PATH: the browser tests will be skipped (apt-get install chromium ffmpeg)" >&2
  fi
done
exec "$venv/bin/python" -m pytest "$@"
