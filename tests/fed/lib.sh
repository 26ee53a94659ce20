# Shared by the federation tests (tests/test_*.sh that source it): a scratch run directory, the fixture of
# tests/fed/fixture.sh, an aggregator and sites started on an ephemeral loopback port, bounded
# waits, and a trap that kills whatever was started. Keep the run directory with FEDTEST_KEEP=1
# (it is kept anyway, and its path printed, when a check failed).
set -u
export OPENBLAS_CORETYPE=Haswell
: "${FEDLORA_BUILD_DIR:?}" "${FEDLORA_SOURCE_DIR:?}"
fed_bin=$FEDLORA_BUILD_DIR
fed_fixture=$FEDLORA_BUILD_DIR/fedtest-base
fed_run=$(mktemp -d /tmp/fedtest.XXXXXX)
fed_failures=0
fed_t0=$SECONDS
fed_port=
declare -A fed_pid=()

fed_cleanup() {
  local name
  for name in "${!fed_pid[@]}"; do kill -9 "${fed_pid[$name]}" 2>/dev/null; done
  wait 2>/dev/null
  if [ "$fed_failures" -eq 0 ] && [ -z "${FEDTEST_KEEP:-}" ]; then rm -rf "$fed_run"; else echo "run kept in $fed_run"; fi
}
trap fed_cleanup EXIT

fed_ok() { echo "ok   $1"; }
fed_bad() {
  echo "FAIL $1"
  fed_failures=$((fed_failures + 1))
}
# expect NAME WANT GOT
expect() { if [ "$2" == "$3" ]; then fed_ok "$1"; else fed_bad "$1: want [$2] got [$3]"; fi; }
# expect_in NAME FILE TEXT: FILE contains TEXT (fixed string)
expect_in() { if grep -qF -- "$3" "$2"; then fed_ok "$1"; else fed_bad "$1: '$3' not in $2"; fi; }
# fed_expect_run_done SECONDS SITE...: every site exits 0 within SECONDS, then the aggregator (agg)
# exits 0 within 30 s: a run that finished.
fed_expect_run_done() {
  local wait=$1 s
  shift
  for s in "$@"; do
    fed_wait_exit "$s" "$wait"
    expect "site $s finishes with exit 0" 0 "$fed_rc"
  done
  fed_wait_exit agg 30
  expect "aggregator exits 0" 0 "$fed_rc"
}
# Summary line and exit status; call last.
fed_finish() {
  echo "$fed_failures failed ($((SECONDS - fed_t0)) s)"
  [ "$fed_failures" -eq 0 ]
}

# The shared base model, PKI and data (made on first use when the ctest fixture has not run).
bash "$FEDLORA_SOURCE_DIR/tests/fed/fixture.sh" || { echo "FAIL the fixture cannot be made"; exit 1; }

# fed_phase NAME: a fresh directory for one federation (its own agg.ini, state, sites and port)
# under the run directory; becomes the working directory. The run directory is the first one.
fed_phase() {
  fed_dir=$fed_run/$1
  mkdir -p "$fed_dir"
  ln -s "$fed_fixture/base" "$fed_dir/base"
  ln -s "$fed_fixture/pki" "$fed_dir/pki"
  ln -s "$fed_fixture/data" "$fed_dir/data"
  fed_port=
  cd "$fed_dir" || exit 1
}
fed_phase .

# wait_for SECONDS COMMAND...: polls the command every 0.1 s; 1 on timeout.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 0.1
  done
}
log_has() { grep -qF -- "$2" "$1" 2>/dev/null; }
alive() { kill -0 "${fed_pid[$1]}" 2>/dev/null; }

# The aggregator's configuration for this run: three sites, quorum of all three, a tiny plan.
# Tests change it with --set arguments to fed_start_agg.
fed_write_agg_config() {
  cat >"$fed_dir/agg.ini" <<EOF
[server]
cert = pki/aggregator.pem
key = pki/aggregator.key
client_ca = pki/ca.pem
allowed_clients = alpha, beta, gamma
state_dir = agg
threads = 4
poll_seconds = 1
[model]
base = base
lora_rank = 4
lora_alpha = 8
lora_targets = q_proj, v_proj
[rounds]
total = 3
min_clients = 3
deadline_s = 60
wait_after_quorum_s = 5
seed = 1
[train]
lr = 2e-3
local_steps = 10
batch = 4
seq_len = 64
EOF
}

# A loopback port nobody listens on now (the configuration does not take port 0).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# fed_start_agg NAME [--set S.K=V ...]: starts the aggregator (log NAME.log) on fed_port, picking
# a free port on the first start, and waits until it listens; another start on the same run reuses
# the port, as the sites know it.
fed_start_agg() {
  local name=$1 try
  shift
  [ -f "$fed_dir/agg.ini" ] || fed_write_agg_config
  for try in 1 2 3; do
    [ -n "$fed_port" ] || fed_port=$(free_port)
    "$fed_bin/fedlora-aggregator" --config "$fed_dir/agg.ini" --set "server.listen=127.0.0.1:$fed_port" "$@" \
      >"$fed_dir/$name.log" 2>&1 &
    fed_pid[$name]=$!
    wait_for 30 eval 'log_has "$fed_dir/$name.log" "listening on" || ! alive $name'
    if log_has "$fed_dir/$name.log" "listening on"; then return 0; fi
    fed_wait_exit "$name" 5
    grep -qi "in use" "$fed_dir/$name.log" || break
    fed_port= # taken meanwhile by someone else: another one
  done
  fed_bad "$name does not listen (exit $fed_rc):"
  cat "$fed_dir/$name.log"
  exit 1
}

# fed_start_site NAME [--set S.K=V ...]: starts site NAME (certificate pki/NAME.pem, data/NAME.jsonl,
# state site-NAME, one training thread) against the aggregator's port; log NAME.log (appended).
fed_start_site() {
  local name=$1
  shift
  cat >"$fed_dir/$name.ini" <<EOF
[client]
server = 127.0.0.1:$fed_port
cert = pki/$name.pem
key = pki/$name.key
ca = pki/ca.pem
state_dir = site-$name
threads = 1
[model]
base = base
[data]
train = data/$name.jsonl
EOF
  "$fed_bin/fedlora-client" --config "$fed_dir/$name.ini" "$@" >>"$fed_dir/$name.log" 2>&1 &
  fed_pid[$name]=$!
}

# fed_wait_exit NAME SECONDS: waits for the process to end and sets fed_rc to its exit status, or
# to "timeout" if it still runs after SECONDS (it is then killed). Not for $(...): a subshell cannot
# reap its parent's children.
fed_wait_exit() {
  local pid=${fed_pid[$1]}
  unset "fed_pid[$1]"
  if ! wait_for "$2" eval "! kill -0 $pid 2>/dev/null"; then
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    fed_rc=timeout
    return
  fi
  wait "$pid"
  fed_rc=$?
}

# fed_kill NAME SIGNAL: sends the signal and reaps the process.
fed_kill() {
  kill -"$2" "${fed_pid[$1]}" 2>/dev/null
  wait "${fed_pid[$1]}" 2>/dev/null
  unset "fed_pid[$1]"
}

# fed_python_with PACKAGES MODULE...: sets fed_py to a python3 that imports every MODULE (Debian's
# own python3 when the first on PATH lacks them); without one the test fails here, naming the
# Debian PACKAGES to install (scripts/deps.sh installs them).
fed_python_with() {
  local packages=$1 candidate modules
  shift
  modules="$*"
  fed_py=
  for candidate in python3 /usr/bin/python3; do
    if "$candidate" -c "import ${modules// /, }" 2>/dev/null; then fed_py=$candidate; break; fi
  done
  if [ -z "$fed_py" ]; then
    fed_bad "no python3 that imports $*: apt-get install $packages (scripts/deps.sh)"
    fed_finish
    exit 1
  fi
}

# fed_grpc_python [PACKAGES MODULE...]: fed_py for the Python peers of the wire protocol
# (tests/fed/python_*.py): grpcio, Google's protobuf runtime, and protoc; and any further MODULEs
# (Debian PACKAGES).
fed_grpc_python() {
  local packages="python3-grpcio python3-protobuf protobuf-compiler${1:+ $1}"
  shift $(($# > 0))
  fed_python_with "$packages" grpc google.protobuf "$@"
  if ! command -v protoc >/dev/null; then
    fed_bad "no protoc: apt-get install protobuf-compiler (scripts/deps.sh)"
    fed_finish
    exit 1
  fi
}

# fed_python_peer SCRIPT NAME: sets fed_peer to the command line of tests/fed/SCRIPT run by fed_py as
# the holder of pki/NAME.pem and pki/NAME.key, with the CA, proto/fedlora.proto and the base model;
# append its own options ("${fed_peer[@]}" --opt ... &: the pid is the peer's own).
fed_python_peer() {
  fed_peer=("$fed_py" "$FEDLORA_SOURCE_DIR/tests/fed/$1" --ca pki/ca.pem --cert "pki/$2.pem" --key "pki/$2.key"
    --proto "$FEDLORA_SOURCE_DIR/proto/fedlora.proto" --base base)
}

# fed_check_rounds STATE_DIR [checker options]: the independent recomputation of every committed
# round from the sites' kept updates (tests/fed/check_rounds.py).
fed_check_rounds() {
  python3 "$FEDLORA_SOURCE_DIR/tests/fed/check_rounds.py" "$@" --sites "$fed_dir"/site-*
}
