#!/usr/bin/env bash
# A non-editable install plans like the checkout: build the wheel, install it with only the
# planner's dependencies into a fresh virtualenv, run `compress plan` from another folder,
# and compare its JSON with the checkout's. Catches data (profiles/) missing from the wheel.
# Usage: scripts/check-wheel.sh [python of the project's environment]
set -euo pipefail
# A PYTHONPATH that holds the checkout shows pip the compress.egg-info that building the wheel
# leaves there, and pip then skips installing the wheel as "already satisfied".
unset PYTHONPATH
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${1:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
args=(plan --model llama-2-7b --gpu t4 --format json)
log="$work/log"
quiet() { "$@" >>"$log" 2>&1 || { cat "$log" >&2; echo "check-wheel: failed: $*" >&2; exit 1; }; }

quiet "$py" -m pip wheel --no-deps --no-build-isolation --wheel-dir "$work/dist" "$root"
quiet python3 -m venv "$work/venv"
# The project without its heavy extras: the planner needs only the base dependencies.
deps=$("$py" -c 'import tomllib, sys; print(" ".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))' \
       "$root/pyproject.toml")
quiet "$work/venv/bin/pip" install --disable-pip-version-check $deps
quiet "$work/venv/bin/pip" install --disable-pip-version-check --no-deps "$work"/dist/*.whl

mkdir "$work/elsewhere"
(cd "$work/elsewhere" && env -u PYTHONPATH -u COMPRESS_PROFILES "$work/venv/bin/compress" "${args[@]}") > "$work/installed.json"
(cd "$root" && env -u COMPRESS_PROFILES PYTHONPATH="$root" "$py" cli.py "${args[@]}") > "$work/checkout.json"
if ! cmp -s "$work/installed.json" "$work/checkout.json"; then
  echo "check-wheel: the installed wheel plans differently from the checkout:" >&2
  diff "$work/checkout.json" "$work/installed.json" | head -20 >&2
  exit 1
fi
echo "check-wheel: the installed wheel plans like the checkout (compress ${args[*]})"
