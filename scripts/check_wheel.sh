#!/usr/bin/env bash
# The installed package is complete: build the wheel, install it in a fresh venv outside the checkout, fill one
# span with the embedded models (no warning may reach stderr), evaluate on the shipped corpus, and start the app
# from the installed package.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(mktemp -d)
trap 'kill "${APP_PID:-0}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
python -m pip wheel -q --no-deps -w "$WORK/dist" .
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q torch==2.13.0
"$WORK/venv/bin/pip" install -q "$WORK"/dist/*.whl
cd "$WORK"
OUT=$("$WORK/venv/bin/edlm" infill --text "The state of the [MASK:4] is strong." --json 2>"$WORK/stderr")
echo "$OUT"
"$WORK/venv/bin/python" - "$OUT" <<'PY'
import json, sys
out = json.loads(sys.argv[1])
assert out["text"].startswith("The state of the ") and out["text"].endswith(" is strong."), out
assert len(out["spans"]) == 1 and out["spans"][0], out
PY
if [ -s "$WORK/stderr" ]; then echo "stderr was not empty:"; cat "$WORK/stderr"; exit 1; fi
# The corpus travels in the wheel: eval runs outside the checkout with no --corpus.
"$WORK/venv/bin/edlm" eval --split validation --windows 2 --mc-draws 1 --json | "$WORK/venv/bin/python" -c \
  "import json, sys; r = json.loads(sys.stdin.read()); assert r['windows'] == 2 and r['denoiser_elbo_ppl'] > 1, r"
PORT=$("$WORK/venv/bin/python" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
GRADIO_SERVER_PORT=$PORT GRADIO_ANALYTICS_ENABLED=False "$WORK/venv/bin/edlm-studio" >"$WORK/app.log" 2>&1 &
APP_PID=$!
for _ in $(seq 120); do
  if "$WORK/venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/', timeout=2)" 2>/dev/null; then
    echo "wheel check: infill and app OK"; exit 0
  fi
  kill -0 $APP_PID 2>/dev/null || { cat "$WORK/app.log"; exit 1; }
  sleep 1
done
cat "$WORK/app.log"; echo "the installed app did not start"; exit 1
