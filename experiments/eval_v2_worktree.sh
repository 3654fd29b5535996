#!/usr/bin/env bash
# The code behind every row of the pre-registered v2 evaluation, checked out beside this one, so that
# later changes to the engine cannot alter the rows of a half that is still running.
#   experiments/eval_v2_worktree.sh [/path/to/worktree]      # default: ../heta-evalrun
#   cd <that path> && nohup nice -n 5 experiments/run_eval_v2.sh test > /tmp/evaltest.log 2>&1 &
# EVAL_COMMIT is 0587c85 (where the dev run started) + the plot fix of c37e0a0 + the eligibility
# pre-pass of 766b7a2; none of the three touches how a row is computed. The worktree writes its rows
# into this checkout's experiments/results/eval_v2 and uses this checkout's .venv (both symlinked).
set -euo pipefail
EVAL_COMMIT=16110fd
cd "$(dirname "$0")/.."
MAIN=$(pwd)
DEST=${1:-../heta-evalrun}
if [ ! -d "$DEST" ]; then
  git worktree add --detach "$DEST" "$EVAL_COMMIT"
fi
cd "$DEST"
[ "$(git rev-parse --short=7 HEAD)" = "$EVAL_COMMIT" ] || { echo "$DEST is not at $EVAL_COMMIT" >&2; exit 1; }
rm -rf experiments/results/eval_v2 && ln -s "$MAIN/experiments/results/eval_v2" experiments/results/eval_v2
[ -e .venv ] || ln -s "$MAIN/.venv" .venv
git update-index --assume-unchanged $(git ls-files experiments/results/eval_v2) 2>/dev/null || true
echo "$DEST: $EVAL_COMMIT, rows -> $MAIN/experiments/results/eval_v2"
