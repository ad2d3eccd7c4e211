#!/usr/bin/env bash
# `make demo`: the main job end to end on embedded defaults, on a fresh local stack.
#   stack up -> default RNN (trained on first use) -> replay the 4,200 rated tweets with synthetic users
#   (+ a few invalid ones, + tweets in 13 languages, + a tagged three-hour conversation, + a re-sent file and a
#   deletion) -> Spark stream until caught up -> per-user tone and top users -> tags and their shifts
#   -> the HTTP API -> stop.
# KEEP=1 leaves the stack running afterwards.
set -euo pipefail
tone=.venv/bin/tone
stack_dir=${TONE_STACK_DIR:?}
cleanup() {
  if [ "${KEEP:-0}" = 1 ]; then
    echo "KEEP=1: left running: the stack, the stream (pid ${stream_pid:-?}) and the API (pid ${api_pid:-?});"
    echo "  stop them with: kill ${stream_pid:-} ${api_pid:-}; $tone stack down"
  else
    [ -n "${api_pid:-}" ] && kill "$api_pid" 2>/dev/null || true
    "$tone" stack down
  fi
}
trap cleanup EXIT

"$tone" stack down >/dev/null
rm -rf "$stack_dir"   # a fresh broker, Redis and checkpoint every run
"$tone" stack up
eval "$("$tone" stack env)"
export TONE_CHECKPOINT_DIR="$stack_dir/checkpoints" TONE_TOP_MIN_COUNT=5

echo; echo "== replaying the 4,200 VADER-rated tweets as 200 synthetic users, plus examples/tweets.jsonl and"
echo "   examples/multilingual.jsonl (13 languages: English scored, the others counted by language, docs/languages.md)"
"$tone" produce --dataset vader-tweets --users 200
"$tone" produce examples/tweets.jsonl --send-invalid
"$tone" produce examples/multilingual.jsonl
echo; echo "== examples/conversation.jsonl: three hours about #launch, #weather, #coffee and \$ACME; #launch turns"
echo "   negative at 10:30 UTC (docs/conversation.md)"
"$tone" produce examples/conversation.jsonl
echo; echo "== examples/tweets.jsonl again (a re-run file: each tweet counts once), then demo_alice deletes ex-2"
"$tone" produce examples/tweets.jsonl
"$tone" produce examples/deletions.jsonl

echo; echo "== streaming (Spark Structured Streaming, scorer: ${TONE_SCORER:-rnn}) until the topic is idle"
"$tone" stream --until-idle 6

echo; echo "== per-user tone"
"$tone" lookup user00001
"$tone" lookup demo_alice
"$tone" lookup demo_mixes    # English, Spanish and German tweets: the English ones make the tone
"$tone" top --by negative --n 5
"$tone" top --by positive --n 5

echo; echo "== the conversation: tags, and the shift the detector found in event time"
"$tone" tags --by n --n 5
"$tone" tag '#launch'
"$tone" tag '$ACME'

echo; echo "== the HTTP API and the live dashboard (tone serve); e.g. curl http://127.0.0.1:8765/users/user00001/tone"
"$tone" serve --port 8765 >"$stack_dir/api.log" 2>&1 &
api_pid=$!
for _ in $(seq 50); do curl -sf http://127.0.0.1:8765/healthz >/dev/null && break; sleep 0.2; done
curl -s http://127.0.0.1:8765/users/demo_bob/tone; echo
curl -s "http://127.0.0.1:8765/users/top?by=positive&n=3"; echo
curl -s "http://127.0.0.1:8765/stream/health" | head -c 400; echo
echo "dashboard:   http://127.0.0.1:8765/?user=user00001"
echo "API metrics: http://127.0.0.1:8765/metrics"
if [ "${KEEP:-0}" = 1 ]; then
  # Keep the stream running too (it resumes from its checkpoint), so its metrics and Spark UI stay up.
  "$tone" stream >"$stack_dir/stream.log" 2>&1 &
  stream_pid=$!
  echo "stream metrics: http://127.0.0.1:${TONE_METRICS_PORT:-9464}/metrics, Spark UI: http://127.0.0.1:${TONE_SPARK_UI_PORT:-4040} (log: $stack_dir/stream.log)"
fi
echo; echo "demo done: dead letters are in topic tweets.dlq, scored tweets in tweets.scored"
