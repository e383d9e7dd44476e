#!/usr/bin/env bash
# bench/requests.sh - what each union workload costs layerfs in FUSE requests and syscalls.
#
#   sudo bench/requests.sh [--strace] [--out FILE] [WORKLOAD...]
#
# Runs the metadata workloads of ../shared/bench/unionbench.sh (its dataset must exist: run
# bench/run.sh --phases union once) on a fresh layerfs mount each, with `-o stats=FILE`,
# and prints per workload the requests the kernel sent by type (count, failed, daemon time)
# from layerfs's own counters. `--strace` also runs each workload once more under
# `strace -c -f` of the daemon and prints its syscall totals (slower; counts only).
# Workloads: walk walk-again readdir ls-l untar rm git git-again copyup hardlinks
# (default: all). layerfs is $LAYERFS, else target/release/layerfs of this repo.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
die() { echo "requests: $*" >&2; exit 2; }
[[ $EUID -eq 0 ]] || die "must run as root (loop mount of the dataset)"
if [[ -z ${LFR_IN_MOUNTNS:-} ]]; then
  exec env LFR_IN_MOUNTNS=1 unshare --mount --propagation private -- "$BASH" "${BASH_SOURCE[0]}" "$@"
fi

STRACE=0 OUT=/dev/stdout WANT=()
while (($#)); do
  case $1 in
    --strace) STRACE=1; shift;;
    --out) OUT=${2:?}; shift 2;;
    -h|--help) sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0;;
    -*) die "unknown option '$1'";;
    *) WANT+=("$1"); shift;;
  esac
done
((${#WANT[@]})) || WANT=(walk walk-again readdir ls-l untar rm git git-again copyup hardlinks)
LAYERFS=${LAYERFS:-$REPO/target/release/layerfs}
[[ -x $LAYERFS ]] || die "no layerfs at $LAYERFS (cargo build --release, or set LAYERFS)"
BASE=${BENCH_BASE:-/var/tmp/layerfs-bench}
IMG=${UB_IMG:-$BASE/union/data.img}
[[ -f $IMG ]] || die "no union dataset at $IMG (run bench/run.sh --phases union once)"

T=$(mktemp -d /tmp/lf-requests.XXXXXX)
DATA=$T/data MNT=$T/mnt
cleanup() {
  umount "$MNT" 2>/dev/null || true
  umount "$DATA" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$DATA" "$MNT"
mount -o loop "$IMG" "$DATA"
[[ -f $DATA/.complete ]] || die "the dataset at $IMG is incomplete"
LOWER="$DATA/layers/l2:$DATA/layers/l1:$DATA/layers/l0"
RUN=$DATA/.run/requests
UNTAR_TAR=$(ls "$DATA"/untar-*.tar 2>/dev/null | head -1 || true)
[[ -n $UNTAR_TAR ]] || UNTAR_TAR=$DATA/untar.tar

# A tree where every file has 3 names (2 extra hard links in the same dir), in its own
# lower layer: what images are made of (busybox's applets are one inode).
HL=$DATA/.run/hardlinks
if [[ ! -f $HL/.complete ]]; then
  rm -rf "$HL"; mkdir -p "$HL/l"
  cp -a "$DATA/layers/l0/usr/include/linux" "$HL/l/tree"
  find "$HL/l/tree" -type f -exec sh -c 'for f; do ln "$f" "$f.hl1"; ln "$f" "$f.hl2"; done' sh {} +
  touch "$HL/.complete"
fi

mount_fresh() { # LOWERDIRS
  umount "$MNT" 2>/dev/null || true
  rm -rf "$RUN"; mkdir -p "$RUN/upper" "$RUN/work"
  "$LAYERFS" -o "lowerdir=$1,upperdir=$RUN/upper,workdir=$RUN/work,stats=$RUN/stats" "$MNT"
  PID=$(pgrep -f -n "stats=$RUN/stats")
}
dump() { # FILE: the counters as of now
  rm -f "$RUN/stats"
  kill -USR1 "$PID"
  until [[ -s $RUN/stats ]]; do :; done
  cp "$RUN/stats" "$1"
}
# WORKLOAD -> lowerdirs, preparation (uncounted), the workload
lowers_of() { [[ $1 == hardlinks ]] && echo "$HL/l" || echo "$LOWER"; }
prep() {
  case $1 in
    walk-again) find "$MNT/usr/include" -printf '%s\n' >/dev/null;;
    git-again) git -C "$MNT/repo" status --porcelain >/dev/null;;
    untar) mkdir -p "$MNT/untar";;
    *) :;;
  esac
}
run() {
  case $1 in
    walk|walk-again) find "$MNT/usr/include" -printf '%s\n' >/dev/null;;
    readdir) ls -f "$MNT/bigdir" >/dev/null;;
    ls-l) ls -lU "$MNT/bigdir" >/dev/null;;
    untar) tar -xf "$UNTAR_TAR" -C "$MNT/untar";;
    rm) rm -rf "$MNT/usr/include/linux";;
    git|git-again) git -C "$MNT/repo" status --porcelain >/dev/null;;
    copyup) find "$DATA/layers/l0/usr/share/doc" -type f -name copyright -printf '%P\n' | sort | head -500 >"$RUN/../copyup.list" || true
            while read -r f; do echo x >>"$MNT/usr/share/doc/$f"; done <"$RUN/../copyup.list";;
    hardlinks) find "$MNT/tree" -printf '%s %i\n' >/dev/null; find "$MNT/tree" -printf '%s\n' >/dev/null;;
    *) die "unknown workload '$1'";;
  esac
}

{
  echo "# layerfs requests per workload ($("$LAYERFS" --version 2>/dev/null | head -1); $(date -u +%FT%TZ))"
  for w in "${WANT[@]}"; do
    mount_fresh "$(lowers_of "$w")"
    prep "$w"
    dump "$RUN/before"
    t0=$(date +%s.%N); run "$w"; t1=$(date +%s.%N)
    dump "$RUN/after"
    echo
    echo "## $w ($(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}') s)"
    # after - before, per request type
    awk 'FNR == 1 { f++ } NF == 5 && $2 ~ /^[0-9]+$/ {
           if (f == 1) { c[$1] -= $2; x[$1] -= $3; m[$1] -= $4 }
           else { c[$1] += $2; x[$1] += $3; m[$1] += $4; if (!($1 in seen)) { seen[$1]; order[++n] = $1 } } }
         END { printf "%-13s %10s %9s %11s %9s\n", "request", "count", "failed", "daemon ms", "us/req"
               for (i = 1; i <= n; i++) { k = order[i]; if (c[k] == 0 && k != "total") continue
                 printf "%-13s %10d %9d %11.1f %9.1f\n", k, c[k], x[k], m[k], c[k] ? m[k] * 1000 / c[k] : 0 } }' \
      "$RUN/before" "$RUN/after"
    if ((STRACE)); then
      mount_fresh "$(lowers_of "$w")"
      prep "$w"
      strace -c -f -q -o "$RUN/strace" -p "$PID" & SPID=$!
      until grep -q TracerPid:.[1-9] "/proc/$PID/status"; do :; done
      run "$w"
      kill -INT "$SPID"; wait "$SPID" || true
      echo "syscalls of the daemon (strace -c -f):"
      awk '/^ *[0-9.]+ +[0-9.]+/ || /total/ { print "  " $0 }' "$RUN/strace" | sort -k4 -n -r | head -12
    fi
    umount "$MNT"
  done
} >"$OUT"
