#!/usr/bin/env bash
# The Docker image, for real, on a CPU machine that reaches only the package registries (no image
# registry): build the Dockerfile on a Debian base made here from Debian's packages, run it, wait
# for its HEALTHCHECK, explain through it, put Debian's caddy in front of it with deploy/Caddyfile
# (as compose does) and run the end-to-end browser test through that proxy. Times every step.
#
#   bash scripts/docker_ci.sh          (as root; .ci/run calls it after `make test`)
#
# Cached between runs on the same machine: the base image `heta-debian-base` (debootstrap runs
# only when it is missing, or with HETA_CI_REBUILD_BASE=1), Docker's layer cache (the dependency
# layer is rebuilt only when pyproject.toml, requirements/ or scripts/install.sh change), and the
# converted offline model in the volume `heta-ci-models` (mounted at /cache/models; the first run
# converts the GGUF inside the container, later runs start in seconds; HETA_CI_FRESH_MODELS=1 drops it).
# Everything else is removed on exit, failure included: the container, caddy, the wheel server,
# and dockerd when this script started it. Logs stay in test-artifacts/docker-ci/.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive DOCKER_BUILDKIT=0

BASE_IMAGE=${HETA_CI_BASE_IMAGE:-heta-debian-base}
APP_IMAGE=${HETA_CI_IMAGE:-heta-lite:ci}
CONTAINER=heta-ci-app
MODELS_VOLUME=heta-ci-models
WHEELS=${HETA_TORCH_WHEELS:-/opt/wheels}     # where this machine keeps torch's CPU wheel
HEALTH_TIMEOUT=${HETA_CI_HEALTH_TIMEOUT:-600}
LOGS=$PWD/test-artifacts/docker-ci
mkdir -p "$LOGS"
WORK=$(mktemp -d /tmp/heta-docker-ci.XXXXXX)
# Debian's client, the same version as the daemon (another `docker` may come first on PATH)
DOCKER=/usr/bin/docker

dockerd_pid="" caddy_pid="" wheels_pid="" started=$(date +%s) current_step=""
declare -a TIMES=()

log() { printf '[docker-ci %(%H:%M:%S)T] %s\n' -1 "$*"; }
die() { log "FAILED: $*" >&2; exit 1; }

step() {  # step NAME FUNCTION: runs it, records its wall time
  local name=$1 t0; shift
  current_step=$name
  log "== $name"
  t0=$(date +%s)
  "$@"
  TIMES+=("$(printf '%-34s %5ds' "$name" $(( $(date +%s) - t0 )))")
  current_step=""
}

summary() {
  log "step timings:"
  local t
  for t in "${TIMES[@]}"; do printf '    %s\n' "$t"; done
  printf '    %-34s %5ds\n' "total" $(( $(date +%s) - started ))
}

stop_pid() {  # stop_pid PID [SECONDS]: TERM, then KILL after SECONDS; only processes we started
  local pid=$1 wait_s=${2:-15} i
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < wait_s * 10; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT
  [ -n "$current_step" ] && log "step '$current_step' failed (exit $rc)"
  stop_pid "$caddy_pid"
  stop_pid "$wheels_pid"
  if [ -x "$DOCKER" ] && "$DOCKER" info >/dev/null 2>&1; then
    if "$DOCKER" container inspect "$CONTAINER" >/dev/null 2>&1; then
      "$DOCKER" logs "$CONTAINER" >"$LOGS/app.log" 2>&1
      if [ "$rc" != 0 ]; then
        log "container state: $("$DOCKER" inspect -f '{{.State.Status}} health={{if .State.Health}}{{.State.Health.Status}}{{end}}' "$CONTAINER")"
        log "last lines of the app's log:"; tail -n 40 "$LOGS/app.log"
      fi
      "$DOCKER" rm -f -v "$CONTAINER" >/dev/null
    fi
  fi
  if [ -n "$dockerd_pid" ]; then
    log "stopping the dockerd this script started (pid $dockerd_pid)"
    stop_pid "$dockerd_pid" 60
  fi
  if [ -d "$WORK/rootfs" ]; then  # a debootstrap that failed half way may leave its mounts
    umount "$WORK/rootfs/proc" "$WORK/rootfs/sys" 2>/dev/null
    rm -rf --one-file-system "$WORK/rootfs"
  fi
  rm -rf "$WORK"
  summary
  [ "$rc" = 0 ] && log "PASSED" || log "FAILED (exit $rc); logs in $LOGS"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {  # free_port FIRST: the first port from FIRST on that nothing listens on, on loopback
  local p
  for ((p = $1; p < $1 + 100; p++)); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  die "no free loopback port from $1"
}

# --- steps -------------------------------------------------------------------------------------

install_packages() {
  local missing=()
  command -v dockerd >/dev/null && [ -x "$DOCKER" ] || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v caddy >/dev/null || missing+=(caddy)
  command -v chromium >/dev/null || missing+=(chromium)
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >"$LOGS/apt.log" 2>&1 || { tail -n 20 "$LOGS/apt.log"; die "apt-get install"; }
  fi
  # Debian's caddy package may start a system service on :80; we run our own instance
  systemctl stop caddy >/dev/null 2>&1 || true
  if [ ! -x .venv/bin/python ]; then make setup; fi  # the browser test's environment (make test made it in CI)
}

start_dockerd() {
  if "$DOCKER" info >/dev/null 2>&1; then log "dockerd already running: using it, leaving it running"; return; fi
  # in its own session: a TERM to this script's process group (timeout in .ci/run) must leave
  # dockerd up until the trap has removed the container; the trap then stops it
  setsid dockerd >"$LOGS/dockerd.log" 2>&1 &
  dockerd_pid=$!
  log "started dockerd (pid $dockerd_pid)"
  local i
  for ((i = 0; i < 120; i++)); do
    "$DOCKER" info >/dev/null 2>&1 && return 0
    kill -0 "$dockerd_pid" 2>/dev/null || { tail -n 20 "$LOGS/dockerd.log"; die "dockerd exited"; }
    sleep 0.5
  done
  die "dockerd did not answer within 60 s"
}

debian_mirror() {  # the Debian mirror apt already uses here
  local m
  m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
      | grep -E '^[[:space:]]*(deb|URIs:)[[:space:]]' | grep -oE 'https?://[^[:space:]]+/debian/?([[:space:]]|$)' \
      | head -n 1 | tr -d '[:space:]') || true
  echo "${m:-http://deb.debian.org/debian}"
}

build_base() {
  if [ "${HETA_CI_REBUILD_BASE:-0}" != 1 ] && "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "reusing $BASE_IMAGE (made $("$DOCKER" image inspect -f '{{.Created}}' "$BASE_IMAGE"))"
    return
  fi
  local mirror crt
  mirror=$(debian_mirror)
  log "debootstrap bookworm from $mirror"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$WORK/rootfs" "$mirror" \
    >"$LOGS/debootstrap.log" 2>&1 || { tail -n 30 "$LOGS/debootstrap.log"; die "debootstrap"; }
  # The base trusts what this machine trusts: registry traffic here may pass a TLS-inspecting
  # egress proxy whose CA the host has in /usr/local/share/ca-certificates (pip needs it).
  for crt in /usr/local/share/ca-certificates/*.crt; do
    [ -e "$crt" ] && cp "$crt" "$WORK/rootfs/usr/local/share/ca-certificates/"
  done
  chroot "$WORK/rootfs" update-ca-certificates >>"$LOGS/debootstrap.log" 2>&1
  rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/*
  tar -C "$WORK/rootfs" -c . | "$DOCKER" import \
    -c 'ENV LANG=C.UTF-8 PIP_CERT=/etc/ssl/certs/ca-certificates.crt' -c 'CMD ["/bin/bash"]' \
    -m "Debian bookworm minbase from $mirror (scripts/docker_ci.sh)" - "$BASE_IMAGE" >/dev/null
  rm -rf --one-file-system "$WORK/rootfs"
  log "made $BASE_IMAGE ($("$DOCKER" image inspect -f '{{.Size}}' "$BASE_IMAGE") bytes)"
}

serve_torch_wheel() {
  # Only the torch CPU wheel, on loopback, for the build's pip (--build-arg TORCH_FIND_LINKS).
  local whl
  whl=$(ls "$WHEELS"/torch-*+cpu-cp311-*.whl 2>/dev/null | sort -V | tail -n 1) || true
  [ -n "$whl" ] || die "no torch CPU wheel (torch-*+cpu-cp311-*.whl) in $WHEELS; set HETA_TORCH_WHEELS"
  mkdir -p "$WORK/wheels" && ln -s "$whl" "$WORK/wheels/"
  # a fixed port when free: the build arg is part of the layer cache's key
  WHEEL_PORT=$(free_port 18079)
  python3 -m http.server --bind 127.0.0.1 --directory "$WORK/wheels" "$WHEEL_PORT" >"$LOGS/wheels.log" 2>&1 &
  wheels_pid=$!
  local i
  for ((i = 0; i < 100; i++)); do
    curl -fsS "http://127.0.0.1:$WHEEL_PORT/" 2>/dev/null | grep -q "$(basename "$whl")" && {
      log "serving $(basename "$whl") on 127.0.0.1:$WHEEL_PORT"; return 0; }
    sleep 0.1
  done
  die "the wheel server did not answer"
}

build_image() {
  serve_torch_wheel
  "$DOCKER" build --network host -t "$APP_IMAGE" \
    --build-arg BASE="$BASE_IMAGE" --build-arg TORCH=cpu \
    --build-arg TORCH_FIND_LINKS="http://127.0.0.1:$WHEEL_PORT/" . >"$LOGS/build.log" 2>&1 &
  local build_pid=$!
  # progress: Docker's step lines, as they come
  tail -n +1 -f --pid="$build_pid" "$LOGS/build.log" | grep --line-buffered -E '^(Step [0-9]+/|Successfully built| ---> Using cache)' || true
  wait "$build_pid" || { tail -n 40 "$LOGS/build.log"; die "docker build"; }
  stop_pid "$wheels_pid"; wheels_pid=""
  "$DOCKER" image prune -f >/dev/null  # the previous build's untagged image
  log "built $APP_IMAGE ($("$DOCKER" image inspect -f '{{.Size}}' "$APP_IMAGE") bytes)"
}

run_container() {
  if "$DOCKER" container inspect "$CONTAINER" >/dev/null 2>&1; then "$DOCKER" rm -f -v "$CONTAINER" >/dev/null; fi
  [ "${HETA_CI_FRESH_MODELS:-0}" = 1 ] && "$DOCKER" volume rm -f "$MODELS_VOLUME" >/dev/null
  APP_PORT=$(free_port 18080)
  # compose's command, bound to loopback (host network) on APP_PORT; HETA_PORT points the image's
  # HEALTHCHECK there. The check itself is the image's; only its interval is shortened for CI.
  "$DOCKER" run -d --name "$CONTAINER" --network host -e HETA_PORT="$APP_PORT" --health-interval 5s \
    -v "$MODELS_VOLUME:/cache/models" "$APP_IMAGE" \
    python /app/src/run.py --host 127.0.0.1 --port "$APP_PORT" --no-browser --time-limit 600 \
    --quant none --max-models 2 >/dev/null
  local uid
  uid=$("$DOCKER" exec "$CONTAINER" id -u)
  [ "$uid" != 0 ] || die "the container runs as root"
  log "container $CONTAINER on 127.0.0.1:$APP_PORT, uid $uid"
}

wait_healthy() {
  local deadline=$(( $(date +%s) + HEALTH_TIMEOUT )) status last=""
  while [ "$(date +%s)" -lt "$deadline" ]; do
    [ "$("$DOCKER" inspect -f '{{.State.Running}}' "$CONTAINER")" = true ] || die "the container exited"
    status=$("$DOCKER" inspect -f '{{.State.Health.Status}}' "$CONTAINER")
    [ "$status" != "$last" ] && log "health: $status" && last=$status
    [ "$status" = healthy ] && return 0
    sleep 2
  done
  die "not healthy within ${HEALTH_TIMEOUT} s"
}

check_explain() {  # check_explain BASE_URL JSON_BODY: a 200 with a valid report
  local code
  code=$(curl -sS -o "$WORK/report.json" -w '%{http_code}' --max-time 600 -X POST "$1/api/v1/explain" \
    -H 'content-type: application/json' --data "$2")
  [ "$code" = 200 ] || { head -c 2000 "$WORK/report.json"; echo; die "explain at $1 answered $code"; }
  .venv/bin/python - "$WORK/report.json" <<'EOF' || die "explain at $1: not a valid report"
import json, sys
from heta_lite.report import validate_report
r = json.load(open(sys.argv[1]))
validate_report(r)  # docs/report-schema.json
print(f"    report: {r['method']}, {len(r['tokens'])} tokens, target {r['target']['display']!r}, "
      f"timings {r['timings_s']}")
EOF
}

# the default target (the chat-templated generated answer), as a user's first request would be
explain_direct() { check_explain "http://127.0.0.1:$APP_PORT" '{"prompt": "The capital of France is", "quality": "fast"}'; }

start_caddy() {
  PROXY_PORT=$(free_port 18443)
  mkdir -p "$WORK/caddy-home"
  # deploy/Caddyfile as compose runs it (HETA_SITE, HETA_UPSTREAM); adapted to JSON only to make
  # the listener loopback-only: a site address alone would bind every interface.
  HOME="$WORK/caddy-home" HETA_SITE=":$PROXY_PORT" HETA_UPSTREAM="127.0.0.1:$APP_PORT" \
    caddy adapt --config deploy/Caddyfile --adapter caddyfile >"$WORK/caddy.json" 2>"$LOGS/caddy-adapt.log" \
    || { cat "$LOGS/caddy-adapt.log"; die "caddy adapt"; }
  python3 - "$WORK/caddy.json" "$PROXY_PORT" <<'EOF'
import json, sys
path, port = sys.argv[1], sys.argv[2]
c = json.load(open(path))
servers = c["apps"]["http"]["servers"]
assert all(s["listen"] == [f":{port}"] for s in servers.values()), servers
for s in servers.values():
    s["listen"] = [f"127.0.0.1:{port}"]
json.dump(c, open(path, "w"))
EOF
  HOME="$WORK/caddy-home" XDG_DATA_HOME="$WORK/caddy-home" XDG_CONFIG_HOME="$WORK/caddy-home" \
    caddy run --config "$WORK/caddy.json" >"$LOGS/caddy.log" 2>&1 &
  caddy_pid=$!
  local i code
  for ((i = 0; i < 150; i++)); do
    kill -0 "$caddy_pid" 2>/dev/null || { tail -n 20 "$LOGS/caddy.log"; die "caddy exited"; }
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PROXY_PORT/api/v1/health" || true)
    [ "$code" = 200 ] && break
    sleep 0.2
  done
  [ "$code" = 200 ] || die "no healthy answer through caddy"
  curl -sS -D "$WORK/headers" -o /dev/null "http://127.0.0.1:$PROXY_PORT/api/v1/health"
  grep -qi '^x-content-type-options: nosniff' "$WORK/headers" || die "Caddy's security headers are missing"
  log "caddy (pid $caddy_pid) on 127.0.0.1:$PROXY_PORT -> 127.0.0.1:$APP_PORT: health 200, headers set"
}

# a teacher-forced position target (5 tokens, not 35 with the chat template): cheaper, and not a cache hit
explain_proxy() {
  check_explain "http://127.0.0.1:$PROXY_PORT" \
    '{"prompt": "Paris is the capital of France", "quality": "fast", "target": {"position": 5, "chat": false}}'
}

e2e_browser() {
  HETA_E2E_URL="http://127.0.0.1:$PROXY_PORT" HETA_TEST_ARTIFACTS="$LOGS/e2e" \
    .venv/bin/python -m pytest -q -p no:cacheprovider tests/e2e/test_browser.py
}

stop_all() {
  stop_pid "$caddy_pid"; caddy_pid=""
  "$DOCKER" stop -t 20 "$CONTAINER" >/dev/null
  "$DOCKER" logs "$CONTAINER" >"$LOGS/app.log" 2>&1
  "$DOCKER" rm -v "$CONTAINER" >/dev/null
}

step "packages (apt, if missing)" install_packages
step "dockerd" start_dockerd
step "base image ($BASE_IMAGE)" build_base
step "app image (docker build)" build_image
step "container start" run_container
step "HEALTHCHECK healthy" wait_healthy
step "explain (direct)" explain_direct
step "caddy in front" start_caddy
step "explain (through caddy)" explain_proxy
step "e2e browser test (through caddy)" e2e_browser
step "stop caddy and container" stop_all
