#!/usr/bin/env bash
# Release checks, run by scripts/test.sh after the test suite (and by CI): build the sdist and
# the wheel (the wheel from the sdist, so the sdist must be complete), check them with twine
# and scripts/check_dist.py, then install the wheel alone, with napari, into a fresh virtual
# environment on the Python of $VENV (or on each version in $KQUANT_PYTHONS, e.g. "3.11 3.12
# 3.13"; the workflow checks each in its own job), and prove that napari discovers the
# plugin, the widget docks and runs, the samples open and `kquant` runs
# (scripts/check_install.py). Nothing is uploaded.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
venv=${VENV:-.venv}
current=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
read -r -a pythons <<<"${KQUANT_PYTHONS:-$current}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$venv/bin/python" -m build --outdir "$work/dist" . >"$work/build.log" 2>&1 ||
    { cat "$work/build.log"; exit 1; }
COLUMNS=200 "$venv/bin/twine" check --strict "$work"/dist/*
"$venv/bin/python" scripts/check_dist.py "$work"/dist/*.tar.gz "$work"/dist/*.whl
wheel=$(ls "$work"/dist/*.whl)

interpreter() {  # $venv's own Python for its version, else python3.X on PATH, else pyenv's
    local candidate base
    base=$("$venv/bin/python" -c 'import sys; print(sys._base_executable)')
    for candidate in "$base" "python$1" "$HOME"/.pyenv/versions/"$1".*/bin/python"$1"; do
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "import sys, venv
sys.exit('%d.%d' % sys.version_info[:2] != '$1')" 2>/dev/null
        then command -v "$candidate"; return 0; fi
    done
    return 1
}

found=()
for version in "${pythons[@]}"; do
    if python=$(interpreter "$version"); then
        found+=("$version")
        (  # the installs run side by side: mostly waiting on downloads and unpacking
            "$python" -m venv "$work/py$version" &&
            "$work/py$version/bin/python" -m pip install -q --no-compile "$wheel" 'napari[all]'
        ) >"$work/install-$version.log" 2>&1 &
    else
        echo "release: Python $version is not installed here: not checked"
    fi
done
wait_status=0
for job in $(jobs -p); do wait "$job" || true; done  # judged by the import below
for version in "${found[@]}"; do
    if ! "$work/py$version/bin/python" -c 'import napari_kquant' 2>/dev/null; then
        grep -v "WARNING: Location" "$work/install-$version.log" | tail -20
        echo "release: installing the wheel on Python $version failed"
        exit 1
    fi
done
screen=90
for version in "${found[@]}"; do  # the checks side by side too, each on its own X screen
    screen=$((screen + 10))  # distinct display numbers: xvfb-run -a alone can race
    (cd "$work" && xvfb-run -a -n "$screen" -s "-screen 0 1280x1024x24" \
        "$work/py$version/bin/python" "$root/scripts/check_install.py" "$wheel") \
        >"$work/check-$version.log" 2>&1 &
done
for job in $(jobs -p); do wait "$job" || wait_status=1; done
for version in "${found[@]}"; do
    grep -v "WARNING: Location" "$work/check-$version.log" | tail -15
done
((wait_status == 0)) || { echo "release: a clean-install check failed"; exit 1; }
echo "release: $(basename "$wheel") and its sdist checked; clean installs checked on Python" \
     "${found[*]}"
