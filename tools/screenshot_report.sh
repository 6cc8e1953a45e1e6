#!/usr/bin/env bash
# Screenshot a rendered report in headless Chromium, to check what a reviewer sees (apt-get install -y chromium).
# Usage: tools/screenshot_report.sh runs/mini/report.html [out.png] [width] [height]
set -euo pipefail
page=$(realpath "${1:?usage: tools/screenshot_report.sh REPORT.html [OUT.png] [WIDTH] [HEIGHT]}")
out=$(realpath -m "${2:-${page%.html}.png}")
w=${3:-1300}; h=${4:-2200}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$browser" ] || { echo "no chromium found: apt-get install -y chromium" >&2; exit 1; }
[ -f "$page" ] || { echo "no report at $page: run medrepro report (or reproduce) first" >&2; exit 1; }
profile=$(mktemp -d)  # a throwaway profile: nothing of the user's browser is read or written
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$profile" \
  --window-size="$w,$h" --screenshot="$out" "file://$page" >/dev/null 2>&1
[ -s "$out" ] || { echo "chromium wrote no screenshot to $out" >&2; exit 1; }
echo "$out"
