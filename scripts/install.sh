#!/usr/bin/env bash
# One-command setup: a virtual environment with dhlive and its pinned dependencies,
# and the face model provisioned (sha256-verified) so later runs need no network.
#
#   bash scripts/install.sh            # creates ./.venv
#   DHLIVE_VENV=/path/env bash scripts/install.sh
#
# torch is pinned through constraints.txt so pip never swaps in another build. A torch
# that is already importable (e.g. a CUDA build on a GPU machine) is kept: the venv
# then sees the system packages and the pin follows the installed version.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${DHLIVE_VENV:-.venv}

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || { echo "error: dhlive needs Python >= 3.10 ($PYTHON is $("$PYTHON" -V 2>&1))" >&2; exit 1; }

constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
cp constraints.txt "$constraints"

venv_flags=()
if [ -x "$VENV/bin/python" ] && torch_version=$("$VENV/bin/python" -c 'import torch; print(torch.__version__)' 2>/dev/null); then
  :  # the venv already has a torch: keep it
elif torch_version=$("$PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null); then
  venv_flags+=(--system-site-packages)  # use the machine's torch (CUDA build, ...)
else
  torch_version=""
fi
if [ -n "$torch_version" ]; then
  echo "keeping the installed torch $torch_version"
  sed -i "s/^torch==.*/torch==${torch_version}/" "$constraints"
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "${venv_flags[@]}" "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$constraints" -e ".[test]"
# ST-LPIPS weights for the renderer's perceptual loss (dhlive/train/perceptual.py reads only
# the weight file); --no-deps because the package itself wants torchvision and IPython.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -c "$constraints" stlpips-pytorch
"$VENV/bin/dhlive" provision >/dev/null
echo "dhlive $("$VENV/bin/dhlive" --version | awk '{print $NF}') installed in $VENV; face model ready."
echo "try: $VENV/bin/dhlive prepare VIDEO.mp4 --name NAME"
