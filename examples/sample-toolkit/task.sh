#!/bin/sh
# A stand-in TAO task for the sample and the tests: `<task> <subtask> [args...]`.
# Installed under every task name the seed lists; it behaves like a tiny training pipeline
# (`train -e SPEC -r RESULTS`) and offers probes the launcher's tests use.
task=$(basename "$0")
sub="$1"
[ $# -gt 0 ] && shift

case "$sub" in
  train)
    spec="" results=""
    while [ $# -gt 0 ]; do
      case "$1" in
        -e) spec="$2"; shift 2 ;;
        -r) results="$2"; shift 2 ;;
        *) shift ;;
      esac
    done
    echo "$task train: spec=$spec results=$results"
    if [ -n "$spec" ] && [ ! -r "$spec" ]; then echo "$task: cannot read spec file $spec" >&2; exit 1; fi
    for epoch in 1 2 3; do
      echo "Epoch $epoch/3 - loss: 0.$((9 - epoch * 2))$epoch"
      sleep "${TAO_SAMPLE_EPOCH_SECONDS:-0.2}"
    done
    if [ -n "$results" ]; then
      mkdir -p "$results" && echo "weights of $task" > "$results/model.tlt" || exit 1
      echo "saved $results/model.tlt"
    fi
    echo "training finished" ;;
  argv) printf '%s\0' "$@" ;;
  exit) echo "exiting with $1"; exit "$1" ;;
  stderr) echo "to stdout"; echo "to stderr" >&2 ;;
  id) echo "uid=$(id -u) gid=$(id -g)" ;;
  write) echo "$2" > "$1" && ls -ln "$1" ;;
  shm) echo "shm_kb=$(df -k /dev/shm | awk 'NR==2 {print $2}')" ;;
  ulimits) echo "nofile=$(ulimit -n):$(ulimit -Hn) stack=$(ulimit -s):$(ulimit -Hs) core=$(ulimit -c):$(ulimit -Hc)" ;;
  env) for name in "$@"; do env | grep "^$name=" || echo "$name="; done ;;
  sleep)
    trap 'echo "got SIGTERM"; exit 143' TERM
    echo "sleeping $1"
    sleep "$1" &
    wait $! ;;
  stubborn)
    trap '' TERM
    echo "ignoring SIGTERM"
    sleep "$1" &
    wait $! ;;
  ticks)
    trap 'echo "got SIGTERM"; exit 143' TERM
    i=1
    while [ "$i" -le "$1" ]; do
      echo "tick $i"
      sleep "$2" &
      wait $!
      i=$((i + 1))
    done ;;
  lines) seq 1 "$1" | sed 's/$/ the quick brown fox jumps over the lazy dog/' ;;
  serve) echo "serving on $1"; nc -l -p "$1" -e echo "hello from $task" ;;
  ""|-h|--help)
    echo "usage: $task {train,argv,exit,stderr,id,write,shm,ulimits,env,sleep,stubborn,ticks,lines,serve} [args...]" ;;
  *) echo "$task: unknown subtask '$sub'" >&2; exit 2 ;;
esac
