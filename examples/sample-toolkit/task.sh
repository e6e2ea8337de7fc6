#!/bin/sh
# A stand-in TAO task for the sample and the tests: `<task> <subtask> [args...]`.
# Installed under every task name the seed lists; it behaves like a tiny training pipeline
# (`train -e SPEC -r RESULTS`) and offers probes the launcher's tests use.
task=$(basename "$0")
sub="$1"

# A metric of epoch $2 of $3, as a training run's curves go (busybox awk has no exp or cos: rational curves);
# three epochs give the losses 0.71, 0.52, 0.33 as ever.
# Given train.lr (and train.batch), mAP is the sweeps' synthetic objective, a known smooth function of them:
# its last epoch's value is 0.9 - 0.3 g^2 - 0.5 ((batch - 32) / 56)^2, g = (r - 1) / (r + 1), r = lr / 0.01
# (symmetric in log lr), best 0.9 at lr 0.01, batch 32; each epoch's is that times 1.25 x / (x + 0.25), rising to it.
metric() {
  awk -v name="$1" -v e="$2" -v n="$3" -v lr="$lr" -v batch="${batch:-32}" 'BEGIN {
    x = e / n
    loss = (n == 3) ? 0.90 - 0.19 * e : 0.22 + 0.68 * (1 - x) * (1 - x) + 0.006 * ((e * 7) % 5 - 2)
    if (name == "loss") v = loss
    else if (name == "validation_loss") v = loss * 1.12 + 0.03
    else if (name == "learning_rate") v = 0.0005 * (1 - x)
    else if (lr != "") {
      r = lr / 0.01; g = (r - 1) / (r + 1); b = (batch - 32) / 56
      v = (0.9 - 0.3 * g * g - 0.5 * b * b) * 1.25 * x / (x + 0.25)
    }
    else v = 1.025 * x / (x + 0.25)
    printf "%.6g\n", v
  }'
}

# One line of status.json as TAO's status logger writes it (json.dumps of its dict): $1 the file, $2 the epoch,
# $3 of how many, $4 seconds an epoch, $5 the status, $6 the message. Epoch 0: no epoch yet, no metrics.
status_line() {
  date=$(date +%m/%d/%Y | sed 's/^0//; s|/0|/|')
  time=$(date +%H:%M:%S | sed 's/^0//; s/:0/:/g')
  awk -v e="$2" -v n="$3" -v s="$4" -v status="$5" -v message="$6" -v date="$date" -v time="$time" \
      -v loss="$(metric loss "$2" "$3")" -v val="$(metric validation_loss "$2" "$3")" \
      -v lr="$(metric learning_rate "$2" "$3")" -v map="$(metric mAP "$2" "$3")" '
    function td(t) { return sprintf("%d:%02d:%09.6f", int(t / 3600), int(t % 3600 / 60), t - 60 * int(t / 60)) }
    BEGIN {
      head = ""
      if (e > 0 && status == "RUNNING")
        head = sprintf("\"epoch\": %d, \"max_epoch\": %d, \"time_per_epoch\": \"%s\", \"eta\": \"%s\", ", e, n, td(s), td((n - e) * s))
      tail = ""
      if (e > 0)
        tail = sprintf(", \"graphical\": {\"loss\": %s, \"learning_rate\": %s, \"validation_loss\": %s, \"mAP\": %s}, \"kpi\": {\"mAP\": %s, \"validation_loss\": %s}", loss, lr, val, map, map, val)
      printf "{%s\"date\": \"%s\", \"time\": \"%s\", \"status\": \"%s\", \"verbosity\": \"INFO\", \"message\": \"%s\"%s}\n", head, date, time, status, message, tail
    }' >> "$1"
}

# The value of `KEY: value` (or `KEY: "value"`) in spec file $1, for $2: how TAO's specs name their inputs.
spec_value() {
  awk -v key="$2" '$1 == key":" { v = $2; gsub(/"/, "", v); print v; exit }' "$1"
}

# A file a step reads, which an earlier step wrote: its absence is the task's failure (exit 3).
need() {
  if [ ! -r "$1" ]; then echo "$task: cannot read $1 (did the step that writes it run?)" >&2; return 3; fi
}

# The value of option $1 among the remaining arguments ("-m model.tlt").
option() {
  want="$1"; shift
  while [ $# -gt 0 ]; do
    if [ "$1" = "$want" ]; then echo "$2"; return; fi
    shift
  done
}

[ $# -gt 0 ] && shift

case "$sub" in
  train)
    # -r DIR writes DIR/status.json (TAO 4); results_dir=DIR, or a YAML spec's results_dir:, DIR/train/status.json (TAO 5).
    # train.lr=, train.batch=: the sweeps' objective (above); sample.epochs=N, sample.gates=DIR: as the variables below.
    spec="" results="" status_dir="" lr="" batch="" weights=""
    while [ $# -gt 0 ]; do
      case "$1" in
        -e) spec="$2"; shift 2 ;;
        -r) results="$2"; status_dir="$2"; shift 2 ;;
        results_dir=*) results="${1#results_dir=}"; status_dir="$results/train"; shift ;;
        train.lr=*) lr="${1#train.lr=}"; shift ;;
        train.batch=*) batch="${1#train.batch=}"; shift ;;
        sample.epochs=*) TAO_SAMPLE_EPOCHS="${1#sample.epochs=}"; shift ;;
        sample.gates=*) TAO_SAMPLE_GATES="${1#sample.gates=}"; shift ;;
        *) shift ;;
      esac
    done
    trap 'echo "got SIGTERM"; exit 143' TERM
    echo "$task train: spec=$spec results=$results"
    if [ -n "$spec" ] && [ ! -r "$spec" ]; then echo "$task: cannot read spec file $spec" >&2; exit 1; fi
    # What a TAO spec names as inputs must be there: the converted dataset, and the weights to start from (a retrain's pruned model).
    if [ -n "$spec" ]; then
      records=$(spec_value "$spec" tfrecords_path)
      if [ -n "$records" ] && ! ls $records >/dev/null 2>&1; then echo "$task: no tfrecords at $records" >&2; exit 1; fi
      weights=$(spec_value "$spec" pretrained_model_file)
      if [ -n "$weights" ]; then need "$weights" || exit 1; echo "starting from $weights"; fi
    fi
    if [ -z "$results" ] && [ -n "$spec" ]; then
      results=$(awk '/^results_dir:/ { sub(/^results_dir:[ \t]*/, ""); sub(/[ \t]*(#.*)?$/, ""); print; exit }' "$spec")
      [ -n "$results" ] && status_dir="$results/train"
    fi
    epochs="${TAO_SAMPLE_EPOCHS:-3}" seconds="${TAO_SAMPLE_EPOCH_SECONDS:-0.2}"
    status=""
    if [ -n "$status_dir" ]; then
      mkdir -p "$status_dir" || exit 1
      status="$status_dir/status.json"
      status_line "$status" 0 "$epochs" "$seconds" STARTED "Starting Training Loop."
    fi
    epoch=1
    while [ "$epoch" -le "$epochs" ]; do
      # The tests decide when each epoch ends: with TAO_SAMPLE_GATES set, epoch N waits for the file epoch-N there.
      if [ -n "$TAO_SAMPLE_GATES" ]; then
        while [ ! -e "$TAO_SAMPLE_GATES/epoch-$epoch" ]; do sleep 0.05; done
      else
        sleep "$seconds"
      fi
      echo "Epoch $epoch/$epochs - loss: $(metric loss "$epoch" "$epochs" | awk '{ printf "%.2f", $1 }')"
      [ -n "$status" ] && status_line "$status" "$epoch" "$epochs" "$seconds" RUNNING "Training loop in progress"
      epoch=$((epoch + 1))
    done
    if [ -n "$results" ]; then
      mkdir -p "$results" && echo "weights of $task${weights:+ from $(cat "$weights")}" > "$results/model.tlt" || exit 1
      echo "saved $results/model.tlt"
    fi
    [ -n "$status" ] && status_line "$status" "$epochs" "$epochs" "$seconds" SUCCESS "Training finished successfully."
    echo "training finished" ;;
  # The rest of TAO's detectnet_v2 flow, as files: dataset_convert -d SPEC -o PREFIX, evaluate -e SPEC -m MODEL,
  # prune -m MODEL -o OUT [-pth T], export -m MODEL -o OUT. Each reads what the step before wrote and writes what the next reads.
  dataset_convert)
    spec=$(option -d "$@") prefix=$(option -o "$@")
    need "$spec" || exit $?
    mkdir -p "$(dirname "$prefix")" || exit 1
    for fold in 0 1; do echo "records of fold $fold" > "$prefix-fold-00$fold-of-002"; done
    echo "converted the dataset of $spec into $prefix-fold-*" ;;
  evaluate)
    model=$(option -m "$@")
    need "$model" || exit $?
    echo "evaluating $model"
    echo "mAP: $(metric mAP 3 3)" ;;
  prune)
    model=$(option -m "$@") out=$(option -o "$@") threshold=$(option -pth "$@")
    need "$model" || exit $?
    mkdir -p "$(dirname "$out")" && echo "pruned ($threshold) $(cat "$model")" > "$out" || exit 1
    echo "pruned $model into $out (threshold ${threshold:-0.1})" ;;
  export)
    model=$(option -m "$@") out=$(option -o "$@")
    need "$model" || exit $?
    mkdir -p "$(dirname "$out")" && echo "onnx of $(cat "$model")" > "$out" || exit 1
    echo "exported $model to $out" ;;
  # once FILE: fails (exit 3) the first time, creating FILE; succeeds once FILE is there. A flaky task, for --retries.
  once)
    if [ -e "$1" ]; then echo "second try: succeeding"; else : > "$1" || exit 1; echo "first try: failing"; exit 3; fi ;;
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
    echo "usage: $task {train,dataset_convert,evaluate,prune,export,once,argv,exit,stderr,id,write,shm,ulimits,env,sleep,stubborn,ticks,lines,serve} [args...]" ;;
  *) echo "$task: unknown subtask '$sub'" >&2; exit 2 ;;
esac
