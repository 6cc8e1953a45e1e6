#!/usr/bin/env bash
# Screenshots of the built site in headless Chromium (Debian: apt-get install -y chromium), to look at the pages
# the way a student sees them. Usage: tools/screenshot_docs.sh [SITE_DIR] [NOTEBOOK_STEM]
# Writes SITE_DIR/../screenshots/{home,notebook,api}.png; build the site first (./run.sh docs).
set -euo pipefail
cd "$(dirname "$0")/.."
site=$(realpath "${1:-_docs/html}"); nb=${2:-20_samplers}
out="$site/../screenshots"; mkdir -p "$out"
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$browser" ] || { echo "screenshot_docs: no chromium found (Debian: apt-get install -y chromium)" >&2; exit 1; }
[ -f "$site/index.html" ] || { echo "screenshot_docs: $site/index.html not found; build the site first (./run.sh docs)" >&2; exit 1; }
api=$(ls "$site"/api/medrepro.*.html | head -1)
shot() {  # name, page, height
  "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --allow-file-access-from-files \
    --window-size=1400,"$3" --screenshot="$out/$1.png" "file://$2" >/dev/null 2>&1
  echo "$out/$1.png"
}
shot home "$site/index.html" 1600
shot notebook "$site/nbs/$nb.html" 2400
shot api "$(realpath "${API_PAGE:-$api}")" 1600
