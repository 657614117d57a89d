#!/usr/bin/env bash
# Install what the test suite needs and run all of it: ruff, npe2 validate, lint-imports,
# pytest under a virtual X screen (napari needs a real OpenGL context; Xvfb + Mesa give it
# one; it runs every code block of README.md and docs/ too), the docs site's strict build
# (scripts/docs.sh), then the release checks (scripts/release.sh: build, check, and install the wheel into
# fresh environments; skip them with KQUANT_SKIP_RELEASE=1).
# On Debian/Ubuntu it installs any missing system package with apt-get (as root, or via sudo),
# creates a virtual environment in .venv (or $VENV), and installs the package with its
# test extra. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(xvfb xauth libgl1 libegl1 libgl1-mesa-dri libglx-mesa0 libxkbcommon-x11-0 libxcb-cursor0
      libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0
      libxcb-xfixes0 libxcb-xinerama0 libdbus-1-3 libfontconfig1)
python3 -c 'import ensurepip, venv' 2>/dev/null || debs+=(python3-venv)
missing=()
for deb in "${debs[@]}"; do
    dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$deb")
done
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "installing system packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

venv=${VENV:-.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q -e '.[testing]'

"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
"$venv/bin/npe2" validate napari-kquant --imports
"$venv/bin/lint-imports" --no-cache  # the layers import only downwards (pyproject.toml)
start=$SECONDS
status=0
# two worker processes (pytest-xdist; -n 0 runs it in one): the tests wait on subprocesses,
# Qt events and numba's first compiles, so two overlap where one would sit idle
xvfb-run -a -s "-screen 0 1600x1000x24" "$venv/bin/python" -m pytest -n 2 --durations=10 "$@" ||
    status=$?
echo "test suite: $((SECONDS - start)) s of pytest (the budget is 360 s on 2 cores)"
((status == 0)) || exit $status
start=$SECONDS
site=$(mktemp -d)
NO_MKDOCS_2_WARNING=1 VENV=$venv SITE_DIR="$site/site" bash scripts/docs.sh --quiet
rm -rf "$site"
echo "docs site: built in strict mode in $((SECONDS - start)) s"
if [ -z "${KQUANT_SKIP_RELEASE:-}" ]; then
    start=$SECONDS
    VENV=$venv bash scripts/release.sh
    echo "release checks: $((SECONDS - start)) s"
fi
