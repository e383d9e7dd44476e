#!/usr/bin/env bash
# shellcheck disable=SC2317  # helpers defined inside main() are called indirectly (traps)
# bench/run.sh - layerfs benchmark: kernel overlayfs vs layerfs vs fuse-overlayfs (2.0, 1.10),
# the image store (layerfs image load vs podman load vs umoci vs the zcat|tar floor), and pull
# from a registry (layerfs pull vs podman pull vs a curl|pigz|tar floor).
#
#   sudo bench/run.sh [--quick] [--reps N] [--phases union,walk,verify,rss,image,pull,meta]
#                     [--impls kernel,layerfs,fuse-overlayfs-2.0,fuse-overlayfs-1.10]
#                     [--workloads walk,bigdir,...] [--out DIR] [--no-build]
#
# Phases (all by default):
#   union   the union-filesystem workloads, driven by ../shared/bench/unionbench.sh
#           (stat walk, readdir 100k, seq/random read, copy-up, untar, rm -rf, git status,
#           parallel read), fresh mount per workload, implementations interleaved
#   walk    find -printf with stat fields over the whole merged tree (~164k entries), right
#           after drop_caches and again warm, fresh mount per rep; listings compared
#   verify  correctness: a full manifest (type, mode, owner, size, symlink target, sha256 of
#           every file) of the merged tree through each implementation, then a fixed set of
#           writes and the manifest again; every implementation must match kernel overlayfs
#   rss     walk of 1M lower entries: walk time, daemon CPU, peak RSS, RSS after
#           `echo 2 > /proc/sys/vm/drop_caches`
#   image   load of a generated 3-layer gzip image (>= 200 MB) and of the shared fixtures
#   meta    bench/meta-phase.sh: a tree whose files all have 3 names (walk fresh, again),
#           find + tar -c of a read-only mount of the image phase's image (layerfs: image
#           mount), 1,000 execs of busybox from a mount of the shared busybox image
#   pull    pull of a generated 5-layer gzip image (>= 400 MB) from a local docker-registry:
#           layerfs pull (3 and 1 concurrent downloads) vs podman pull vs curl|pigz|tar
#
# Finding the implementations (an impl that is missing is skipped, with the reason printed):
#   layerfs              $LAYERFS, else built with `cargo build --release` from this repo
#                        (target dir: $CARGO_TARGET_DIR or <repo>/target); --no-build: no build
#   fuse-overlayfs-2.0   $FUSE_OVERLAYFS, else the first `fuse-overlayfs` on PATH (or in
#                        ~/.cargo/bin) that reports version 2.x
#   fuse-overlayfs-1.10  $FUSE_OVERLAYFS_1, else a `fuse-overlayfs` on PATH reporting 1.x
#   podman, umoci, pigz  from PATH (pull phase also: docker-registry, skopeo, curl, jq)
# Data lives on loop-mounted journaled ext4 images under $BENCH_BASE (default
# /var/tmp/layerfs-bench); the first run builds the datasets (several minutes).
# Results: $BENCH_BASE/results/<timestamp>/table.md (+ union/ and extra.tsv, logs).
set -euo pipefail
shopt -s nullglob

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SHARED=""
if [[ -d $HERE/../../shared ]]; then SHARED=$(cd "$HERE/../../shared" && pwd); fi

usage() { awk 'NR > 2 && /^#/ { sub(/^# ?/, ""); print; next } NR > 2 { exit }' "${BASH_SOURCE[0]}"; }
die() { echo "bench: $*" >&2; exit 2; }
say() { printf '%s\n' "$*" >&2; }

if [[ ${1:-} == -h || ${1:-} == --help ]]; then usage; exit 0; fi
[[ $EUID -eq 0 ]] || die "must run as root (mounts, loop devices, drop_caches)"
# private mount namespace: our mounts cannot leak, and vanish with us
if [[ -z ${LFB_IN_MOUNTNS:-} ]]; then
  exec env LFB_IN_MOUNTNS=1 unshare --mount --propagation private -- "$BASH" "${BASH_SOURCE[0]}" "$@"
fi

# The whole run is one function, parsed before it starts: editing this file (or a git checkout)
# during a run cannot change what the run executes.
main() {

QUICK=0 REPS="" PHASES="union,walk,verify,rss,image,pull,meta" IMPLS_ARG="" WORKLOADS="" OUT="" BUILD=1
ARGS=("$@")
while (($#)); do
  case $1 in
    --quick) QUICK=1; shift;;
    --reps) REPS=${2:?}; shift 2;;
    --phases) PHASES=${2:?}; shift 2;;
    --impls) IMPLS_ARG=${2:?}; shift 2;;
    --workloads) WORKLOADS=${2:?}; shift 2;;
    --out) OUT=${2:?}; shift 2;;
    --no-build) BUILD=0; shift;;
    *) die "unknown argument '$1' (see --help)";;
  esac
done
: "${REPS:=$( ((QUICK)) && echo 1 || echo 3)}"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "bad --reps '$REPS'"
has_phase() { [[ ",$PHASES," == *",$1,"* ]]; }

BASE=${BENCH_BASE:-/var/tmp/layerfs-bench}
mkdir -p "$BASE"
exec 8>"$BASE/.lock"
flock -n 8 || die "another bench/run.sh holds $BASE/.lock"
TS=$(date +%Y%m%d-%H%M%S)
SUFFIX=""; ((QUICK)) && SUFFIX=-quick
[[ -n $OUT ]] || OUT=$BASE/results/$TS$SUFFIX
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOG=$OUT/run.log
XTSV=$OUT/extra.tsv
: >"$XTSV"; : >"$OUT/skipped.txt"; : >"$LOG"
PY=python3; [[ -x /usr/bin/python3 ]] && PY=/usr/bin/python3
LIB=("$PY" "$HERE/lib.py")
skip() { say "SKIP: $*"; echo "$*" >>"$OUT/skipped.txt"; }
xmeta() { printf 'meta\t%s\t%s\n' "$1" "$2" >>"$XTSV"; }

# ------------------------------------------------------------------ implementations
declare -A BIN=()
IMPLS=()
want_impl() { [[ -z $IMPLS_ARG || ",$IMPLS_ARG," == *",$1,"* ]]; }
fo_version() { "$1" --version 2>/dev/null | sed -n 's/.*fuse-overlayfs: version \([0-9.]*\).*/\1/p' | head -1; }

if want_impl layerfs; then
  if [[ -n ${LAYERFS:-} ]]; then
    BIN[layerfs]=$LAYERFS
  else
    tdir=${CARGO_TARGET_DIR:-$REPO/target}
    if ((BUILD)) && command -v cargo >/dev/null; then
      say "building layerfs (cargo build --release, target dir $tdir)"
      if ! (cd "$REPO" && CARGO_TARGET_DIR=$tdir cargo build --release --bin layerfs) >>"$LOG" 2>&1; then
        say "cargo build failed (see $LOG)"
      fi
    fi
    BIN[layerfs]=$tdir/release/layerfs
  fi
fi
if want_impl fuse-overlayfs-2.0 || want_impl fuse-overlayfs-1.10; then
  cands=()
  [[ -n ${FUSE_OVERLAYFS:-} ]] && cands+=("$FUSE_OVERLAYFS")
  [[ -n ${FUSE_OVERLAYFS_1:-} ]] && cands+=("$FUSE_OVERLAYFS_1")
  mapfile -t -O "${#cands[@]}" cands < <(type -ap fuse-overlayfs || true)
  [[ -x ${HOME:-/root}/.cargo/bin/fuse-overlayfs ]] && cands+=("${HOME:-/root}/.cargo/bin/fuse-overlayfs")
  for c in "${cands[@]}"; do
    v=$(fo_version "$c")
    case $v in
      2.*) [[ -v BIN[fuse-overlayfs-2.0] ]] || BIN[fuse-overlayfs-2.0]=$c;;
      1.*) [[ -v BIN[fuse-overlayfs-1.10] ]] || BIN[fuse-overlayfs-1.10]=$c;;
    esac
  done
fi
for im in kernel layerfs fuse-overlayfs-2.0 fuse-overlayfs-1.10; do
  want_impl "$im" || continue
  case $im in
    kernel) grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || true
      if grep -qw overlay /proc/filesystems; then IMPLS+=(kernel); else skip "kernel: overlay filesystem not available"; fi;;
    layerfs)
      if [[ -x ${BIN[layerfs]:-} ]] && "${BIN[layerfs]}" --help >/dev/null 2>&1; then IMPLS+=(layerfs)
      else skip "layerfs: no working binary at ${BIN[layerfs]:-?} (build failed or --no-build)"; fi;;
    fuse-overlayfs-2.0)
      if [[ -v BIN[fuse-overlayfs-2.0] ]]; then IMPLS+=("$im")
      else skip "fuse-overlayfs-2.0: not found (set FUSE_OVERLAYFS or put it on PATH: cargo install fuse-overlayfs --version 2.0.0)"; fi;;
    fuse-overlayfs-1.10)
      if [[ -v BIN[fuse-overlayfs-1.10] ]]; then IMPLS+=("$im")
      else skip "fuse-overlayfs-1.10: not found (Debian: apt-get install fuse-overlayfs)"; fi;;
  esac
done
((${#IMPLS[@]})) || die "no implementation available"
echo "${IMPLS[*]}" >"$OUT/impls"
impl_cmd() { # IMPL -> mount command template (unionbench placeholders)
  case $1 in
    kernel) echo "mount -t overlay overlay -o lowerdir={lower},upperdir={upper},workdir={work} {mnt}";;
    *) printf '%q -o lowerdir={lower},upperdir={upper},workdir={work} {mnt}\n' "${BIN[$1]}";;
  esac
}

{
  echo "date: $(date -Is)"
  echo "machine: $(nproc) CPUs, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
  echo "command: $0 ${ARGS[*]}"
  echo "reps: $REPS${SUFFIX:+ (quick)}"
  [[ -v BIN[layerfs] ]] && echo "layerfs: ${BIN[layerfs]} ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$(git -C "$REPO" diff --quiet HEAD -- src Cargo.toml 2>/dev/null || echo '+dirty'))"
  for im in fuse-overlayfs-2.0 fuse-overlayfs-1.10; do [[ -v BIN[$im] ]] && echo "$im: ${BIN[$im]} (version $(fo_version "${BIN[$im]}"))"; done
  command -v podman >/dev/null && echo "podman: $(podman --version 2>/dev/null)"
  command -v umoci >/dev/null && echo "umoci: $(umoci --version 2>/dev/null)"
  command -v pigz >/dev/null && echo "pigz: $(pigz --version 2>&1)"
  echo "implementations: ${IMPLS[*]}"
} | tee "$OUT/machine.txt" >&2

# ------------------------------------------------------------------ mounts and cleanup
LOOPS=() DPIDS=() CURMNT="" REG_PID=""
is_mounted() { awk -v m="$1" '$5==m{f=1} END{exit !f}' /proc/self/mountinfo; }
fstype_of() { awk -v m="$1" '$5==m{for(i=6;i<=NF;i++) if($i=="-"){t=$(i+1)}} END{print t}' /proc/self/mountinfo; }
alive() { local s; read -r s 2>/dev/null <"/proc/$1/stat" || return 1; s=${s##*) }; [[ ${s:0:1} != Z ]]; }
unmount_path() {
  local p=$1 i
  for ((i = 0; i < 20; i++)); do
    is_mounted "$p" || return 0
    if [[ $(fstype_of "$p") == fuse* ]]; then fusermount3 -u "$p" 2>>"$LOG" || umount "$p" 2>>"$LOG" || true
    else umount "$p" 2>>"$LOG" || true; fi
    is_mounted "$p" && sleep 0.3
  done
  say "WARNING: lazy unmount of busy $p"; umount -l "$p" 2>>"$LOG" || true
}
reap() {
  local p i
  for p in "${DPIDS[@]}"; do
    for ((i = 0; i < 100; i++)); do alive "$p" || break; sleep 0.05; done
    if alive "$p"; then say "WARNING: daemon $p alive after unmount: TERM"; kill -TERM "$p" 2>/dev/null || true; sleep 1
      alive "$p" && kill -KILL "$p" 2>/dev/null; fi
  done
  DPIDS=()
}
reg_stop() { # the pull phase's registry (its storage is on the data fs: stop it before unmounting)
  local i
  [[ -n $REG_PID ]] || return 0
  kill -TERM "$REG_PID" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do alive "$REG_PID" || break; sleep 0.05; done
  alive "$REG_PID" && kill -KILL "$REG_PID" 2>/dev/null
  wait "$REG_PID" 2>/dev/null || true
  REG_PID=""
}
cleanup() {
  local rc=$? m l
  trap - EXIT INT TERM HUP
  [[ -n $CURMNT ]] && unmount_path "$CURMNT"
  reap
  reg_stop
  # hand the blocks freed by this run back to the sparse images
  if is_mounted "$BASE/x"; then sync; fstrim "$BASE/x" 2>/dev/null || true; fi
  # everything still mounted below BASE, deepest first
  while read -r m; do unmount_path "$m"; done < <(awk -v b="$BASE/" 'index($5, b)==1 {print $5}' /proc/self/mountinfo | sort -r)
  for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM HUP

loop_mount() { # IMG SIZE MNT INODES [ro]
  local img=$1 size=$2 mnt=$3 inodes=$4 ro=${5:-} dev new=0
  mkdir -p "$mnt"
  is_mounted "$mnt" && return 0
  if [[ ! -f $img ]]; then
    [[ -n $ro ]] && return 1
    truncate -s "$size" "$img"; new=1
  fi
  dev=$(losetup --direct-io=on --show -f ${ro:+-r} "$img")
  LOOPS+=("$dev")
  if ((new)); then mkfs.ext4 -q -F -N "$inodes" -E lazy_itable_init=0,lazy_journal_init=0 "$dev"; fi
  mount -t ext4 ${ro:+-o ro} "$dev" "$mnt"
}

mount_impl() { # IMPL LOWER UPPER WORK MNT
  local im=$1 lower=$2 upper=$3 work=$4 mnt=$5 before i
  rm -rf "$upper" "$work"; mkdir -p "$upper" "$work" "$mnt"
  before=$("${LIB[@]}" fuse-pids /nonexistent-mountpoint-none)
  CURMNT=$mnt
  if [[ $im == kernel ]]; then
    mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$mnt"
    return 0
  fi
  "${BIN[$im]}" -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$mnt" </dev/null >>"$LOG" 2>&1 8>&- || return 1
  for ((i = 0; i < 500; i++)); do is_mounted "$mnt" && break; sleep 0.02; done
  is_mounted "$mnt" || return 1
  # shellcheck disable=SC2086
  read -r -a DPIDS <<<"$("${LIB[@]}" fuse-pids "$mnt" $before)"
}
umount_impl() { unmount_path "$CURMNT"; reap; CURMNT=""; }
dstat() { if ((${#DPIDS[@]})); then "${LIB[@]}" proc-stat "${DPIDS[@]}"; else echo "- - -"; fi; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.6f", b-a}'; }
res() { printf 'res\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" >>"$XTSV"; say "  $(printf '%-20s %-28s rep %s %10ss' "$2" "$3" "$4" "$5")"; }
check() { printf 'check\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$XTSV"; say "  check $1/$2: $3 $4"; }
rotate() { # REP ITEMS... -> items rotated by REP-1 (interleaving with a changing order)
  local r=$1; shift; local a=("$@") n=$# k
  for ((k = 0; k < n; k++)); do echo "${a[$(((k + r - 1) % n))]}"; done
}

T_START=$EPOCHREALTIME
# ------------------------------------------------------------------ phase: union
UB_BASE=${UB_BASE:-$BASE/union}
if has_phase union; then
  if [[ -z $SHARED || ! -x $SHARED/bench/unionbench.sh ]]; then
    skip "union phase: ../shared/bench/unionbench.sh not found next to the repo"
  else
    ub=(--reps "$REPS" --out "$OUT/union")
    ((QUICK)) && ub+=(--quick)
    wl=$WORKLOADS
    if ! command -v fio >/dev/null; then
      # unionbench runs random 4k reads with fio; without it every row would read FAIL
      skip "randread: fio not installed (apt-get install fio)"
      wl=${wl:-walk,bigdir,seqread,randread,copyup,untar,rm,git,pcat}
      wl=$(tr , '\n' <<<"$wl" | grep -vx randread | paste -sd, -) || true
      [[ -n $wl ]] || wl=none
    fi
    [[ -n $wl ]] && ub+=(--workloads "$wl")
    for im in "${IMPLS[@]}"; do
      if [[ $im == kernel ]]; then ub+=(--impl kernel); else ub+=(--impl "$im=$(impl_cmd "$im")"); fi
    done
    if [[ $wl == none ]]; then
      skip "union phase: no workload left to run"
    else
      say "== union phase: unionbench.sh ${ub[*]}"
      # fd 8 (our lock) must not leak into the daemons unionbench starts
      UB_BASE=$UB_BASE "$SHARED/bench/unionbench.sh" "${ub[@]}" 8>&- || say "unionbench exited $? (see $OUT/union/run.log)"
    fi
  fi
fi

# ------------------------------------------------------------------ extra data fs
X=$BASE/x
if has_phase walk || has_phase verify || has_phase rss || has_phase image || has_phase pull || has_phase meta; then
  loop_mount "$BASE/extra.img" 60G "$X" 3000000
  mkdir -p "$X/run"
fi
FIMPLS=()   # FUSE impls (daemon figures)
for im in "${IMPLS[@]}"; do [[ $im == kernel ]] || FIMPLS+=("$im"); done

# ------------------------------------------------------------------ union dataset, read-only
U=$BASE/udata UDATA=0
if has_phase verify || has_phase walk || has_phase meta; then
  if loop_mount "$UB_BASE/data.img" 0 "$U" 0 ro && [[ -f $U/.complete ]]; then UDATA=1
  else skip "verify/walk phases: no union dataset at $UB_BASE/data.img (run the union phase once)"; fi
fi
LOWER="$U/layers/l2:$U/layers/l1:$U/layers/l0"

# ------------------------------------------------------------------ phase: walk (whole tree)
if has_phase walk && ((UDATA)); then
  say "== walk phase: find -printf (stat fields) over the whole merged tree, cold then warm"
  for ((rep = 1; rep <= REPS; rep++)); do
    mapfile -t order < <(rotate "$rep" "${IMPLS[@]}")
    for im in "${order[@]}"; do
      if ! mount_impl "$im" "$LOWER" "$X/run/upper" "$X/run/work" "$X/run/mnt"; then
        res walk "$im" walk-all-cold "$rep" ""; check walk-all "$im" FAIL "mount failed"; umount_impl; continue
      fi
      drop_caches
      t0=$(now); find "$X/run/mnt" -printf '%y %m %U %G %s %T@ %n\t%p\n' >"$X/run/walk.out"; t1=$(now)
      res walk "$im" walk-all-cold "$rep" "$(elapsed "$t0" "$t1")"
      t0=$(now); find "$X/run/mnt" -printf '%y %m %U %G %s %T@ %n\t%p\n' >/dev/null; t1=$(now)
      res walk "$im" walk-all-warm "$rep" "$(elapsed "$t0" "$t1")"
      if ((rep == 1)); then
        # names, sizes, modes, owners, types (not mtimes of dirs, not link counts: they may differ)
        awk -F'\t' '{ split($1, a, " "); if (a[1] == "d") a[5] = 0; print $2 "\t" a[1], a[2], a[3], a[4], a[5] }' "$X/run/walk.out" |
          sed "s|^$X/run/mnt||" | sort >"$OUT/walk.$im"
        ref=kernel; [[ -f $OUT/walk.kernel ]] || ref=$im
        if cmp -s "$OUT/walk.$ref" "$OUT/walk.$im"; then check walk-all "$im" OK "$(wc -l <"$OUT/walk.$im") entries, listing/sizes/modes identical to $ref"
        else check walk-all "$im" FAIL "$(diff "$OUT/walk.$ref" "$OUT/walk.$im" | grep -c '^[<>]') lines differ from $ref"; fi
      fi
      umount_impl
    done
  done
fi

# ------------------------------------------------------------------ phase: verify
if has_phase verify; then
  if ((UDATA)); then
    say "== verify phase (checksums of every file, then writes)"
    V=$OUT/verify; mkdir -p "$V"
    for im in "${IMPLS[@]}"; do
      if ! mount_impl "$im" "$LOWER" "$X/run/upper" "$X/run/work" "$X/run/mnt"; then
        check verify "$im" FAIL "mount failed"; umount_impl; continue
      fi
      t0=$(now)
      "${LIB[@]}" manifest "$X/run/mnt" --hash >"$V/$im.read" 2>>"$LOG" || echo "manifest error" >>"$V/$im.read"
      t1=$(now)
      if ! "${LIB[@]}" mutate "$X/run/mnt" "$U/copyup.list" >"$V/$im.paths" 2>"$V/$im.err"; then
        check verify "$im" FAIL "writes failed: $(tail -n1 "$V/$im.err" | cut -c1-200)"
      fi
      "${LIB[@]}" manifest "$X/run/mnt" >"$V/$im.after" 2>>"$LOG" || echo "manifest error" >>"$V/$im.after"
      "${LIB[@]}" manifest "$X/run/mnt" --hash --paths "$V/$im.paths" >>"$V/$im.after" 2>>"$LOG" || echo "manifest error" >>"$V/$im.after"
      say "  $im: $(wc -l <"$V/$im.read") entries hashed in $(elapsed "$t0" "$t1")s"
      umount_impl
    done
    ref=kernel; [[ -f $V/kernel.read ]] || ref=${IMPLS[0]}
    for im in "${IMPLS[@]}"; do
      [[ -f $V/$im.read ]] || continue
      for k in read after; do
        if cmp -s "$V/$ref.$k" "$V/$im.$k"; then
          check verify "$im" OK "$k: $(wc -l <"$V/$im.$k") manifest lines identical to $ref"
        else
          nd=$(diff "$V/$ref.$k" "$V/$im.$k" | grep -c '^[<>]' || true)
          check verify "$im" FAIL "$k: $nd manifest lines differ from $ref, e.g. $(diff "$V/$ref.$k" "$V/$im.$k" | grep -m2 '^[<>]' | tr '\n\t' '  ' | cut -c1-200)"
        fi
      done
    done
  fi
fi
# (the meta phase, at the end, reads it too)
if ((UDATA)) && ! has_phase meta; then unmount_path "$U"; fi

# ------------------------------------------------------------------ phase: rss (1M entries)
if has_phase rss; then
  N1M=$( ((QUICK)) && echo 1000000 || echo 1000000)
  M=$X/m1
  if [[ ! -f $M/.complete-$N1M ]]; then
    say "== building the 1M-entry lower layer"
    rm -rf "$M"; mkdir -p "$M/l1"
    "${LIB[@]}" build-1m "$M/l0" "$N1M"
    echo top >"$M/l1/top-file"
    touch "$M/.complete-$N1M"
  fi
  say "== rss phase: walk of $N1M lower entries, daemon memory before/after drop_caches"
  find "$M/l0" -printf '%s\n' >/dev/null   # lower inodes/dentries warm
  expect=$(($(find "$M/l0" "$M/l1" -mindepth 1 | wc -l) + 1))
  for im in "${IMPLS[@]}"; do
    if ! mount_impl "$im" "$M/l1:$M/l0" "$X/run/upper" "$X/run/work" "$X/run/mnt"; then
      check rss1m "$im" FAIL "mount failed"; umount_impl; continue
    fi
    read -r c0 _ _ <<<"$(dstat)"
    t0=$(now)
    n=$(find "$X/run/mnt" -printf '%s %m\n' | wc -l)
    t1=$(now)
    read -r c1 rss hwm <<<"$(dstat)"
    sync; echo 2 >/proc/sys/vm/drop_caches; sleep 3
    read -r _ rss2 _ <<<"$(dstat)"
    cpu=-; [[ $c0 != - ]] && cpu=$(awk -v a="$c0" -v b="$c1" -v h="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (b-a)/h}')
    res rss1m "$im" walk-1M 1 "$(elapsed "$t0" "$t1")"
    printf 'mem\t%s\t%s\t%s\t%s\t%s\t%s\n' "$im" "$(elapsed "$t0" "$t1")" "$cpu" "$hwm" "$rss" "$rss2" >>"$XTSV"
    say "  $im: cpu ${cpu}s, VmHWM ${hwm} KiB, RSS ${rss} KiB, after drop_caches ${rss2} KiB"
    if ((n == expect)); then check rss1m "$im" OK "walk saw $n entries"
    else check rss1m "$im" FAIL "walk saw $n entries, expected $expect"; fi
    umount_impl
  done
  echo 3 >/proc/sys/vm/drop_caches
fi

# ------------------------------------------------------------------ phase: image
if has_phase image; then
  I=$X/img
  if [[ ! -f $I/.complete ]]; then
    say "== generating the 3-layer gzip image (>= 200 MB)"
    rm -rf "$I"; mkdir -p "$I"
    "${LIB[@]}" gen-image "$I" /usr
    touch "$I/.complete"
  fi
  IMG_ID=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["image_id"])' "$I/image.json")
  xmeta image_gz_bytes "$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["gz_total"])' "$I/image.json")"
  mapfile -t BLOBS < <("$PY" -c 'import json,sys; [print(l["blob"]) for l in json.load(open(sys.argv[1]))["layers"]]' "$I/image.json")
  FIX=${SHARED:+$SHARED/fixtures}
  FIX_ID=sha256:f9576da6639db88f8bf094bf887a973dbceaa1e72036f2839deba6e9ffdefe63
  IIMPLS=(floor)
  [[ " ${IMPLS[*]} " == *" layerfs "* ]] && IIMPLS+=(layerfs)
  if command -v podman >/dev/null; then IIMPLS+=(podman); else skip "podman: not installed (apt-get install podman)"; fi
  if command -v umoci >/dev/null; then IIMPLS+=(umoci); else skip "umoci: not installed (apt-get install umoci)"; fi
  DECOMP="gzip -dc"; command -v pigz >/dev/null && DECOMP="pigz -dc"
  xmeta floor "$DECOMP | tar -x, one dir per layer"
  S=$X/run/store
  PCONF=$X/run/storage.conf
  # workload name|input|impls that take it
  IWL=("load-big-3layer-gzip-docker-archive|$I/big.docker.tar|floor layerfs podman"
       "load-big-3layer-gzip-oci-dir|$I/oci|layerfs umoci")
  if [[ -n $FIX && -d $FIX ]]; then
    IWL+=("load-busybox-docker-archive|$FIX/busybox.docker.tar|layerfs podman"
          "load-busybox-oci-archive|$FIX/busybox.oci-archive.tar|layerfs podman"
          "load-busybox-oci-dir|$FIX/busybox.oci|layerfs umoci")
  else
    skip "image fixtures: ../shared/fixtures not found"
  fi
  fresh_store() {
    local m
    while read -r m; do unmount_path "$m"; done < <(awk -v b="$S/" 'index($5, b)==1 {print $5}' /proc/self/mountinfo | sort -r)
    rm -rf "$S"; mkdir -p "$S/tmp"; sync
  }
  cat >"$PCONF" <<EOF
[storage]
driver = "overlay"
graphroot = "$S/podman/graph"
runroot = "$S/podman/run"
EOF
  floor_ref=""
  say "== image phase ($REPS reps; input cached in page cache, each timing includes a final sync)"
  for ((rep = 1; rep <= REPS; rep++)); do
    for spec in "${IWL[@]}"; do
      IFS='|' read -r wl input who <<<"$spec"
      read -r -a wl_impls <<<"$who"
      mapfile -t order < <(rotate "$rep" "${wl_impls[@]}")
      for im in "${order[@]}"; do
        [[ " ${IIMPLS[*]} " == *" $im "* ]] || continue
        fresh_store
        if [[ -d $input ]]; then find "$input" -type f -exec cat {} + >/dev/null; else cat "$input" >/dev/null; fi
        ok=1 t0=$(now)
        case $im in
          floor)
            k=0
            for b in "${BLOBS[@]}"; do
              k=$((k + 1)); mkdir -p "$S/floor/$k"
              $DECOMP "$I/oci/blobs/sha256/$b" | tar -x -C "$S/floor/$k" || ok=0
            done;;
          layerfs)
            out=$("${BIN[layerfs]}" --root "$S/layerfs" image load -q -i "$input" 2>>"$LOG") || ok=0;;
          podman)
            out=$(CONTAINERS_STORAGE_CONF=$PCONF TMPDIR=$S/tmp podman load -q -i "$input" 2>>"$LOG") || ok=0;;
          umoci)
            ref=latest
            umoci unpack --image "$input:$ref" "$S/umoci" >>"$LOG" 2>&1 || ok=0;;
        esac
        sync
        t1=$(now)
        if ((!ok)); then
          res image "$im" "$wl" "$rep" ""
          check "$wl" "$im" FAIL "load failed (see $LOG)"
          continue
        fi
        res image "$im" "$wl" "$rep" "$(elapsed "$t0" "$t1")"
        ((rep == 1)) || continue
        # correctness (first rep, untimed)
        want=$IMG_ID; [[ $wl == load-busybox-* ]] && want=$FIX_ID
        case $im in
          floor)
            floor_ref=""
            for k in 1 2 3; do floor_ref+="$("${LIB[@]}" tree-sum "$S/floor/$k")|"; done
            check "$wl" floor OK "3 layers extracted: $floor_ref";;
          layerfs)
            if [[ $out == *"${want#sha256:}"* ]]; then
              msg="image ID ${want:7:12} ok"
              mapfile -t dirs < <("${BIN[layerfs]}" --root "$S/layerfs" image layers "$want" --format json 2>>"$LOG" |
                "$PY" -c 'import json,sys; [print(json.loads(l)["Dir"]) for l in sys.stdin if l.strip()]')
              st=OK
              if [[ $wl == load-big-* && -n $floor_ref ]]; then
                IFS='|' read -r -a fr <<<"$floor_ref"
                for k in 0 1 2; do
                  got=$("${LIB[@]}" tree-sum "${dirs[$k]:-/nonexistent}" 2>/dev/null || echo "missing")
                  if ((k < 2)); then
                    [[ $got == "${fr[$k]}" ]] || { st=FAIL; msg+="; layer $((k + 1)) differs from the floor: $got vs ${fr[$k]}"; }
                  else # whiteouts change form (.wh.X -> 0:0 device, .wh..wh..opq -> xattr): compare bytes
                    [[ $(cut -d' ' -f2 <<<"$got") == $(cut -d' ' -f2 <<<"${fr[$k]}") ]] || { st=FAIL; msg+="; layer 3 bytes differ: $got vs ${fr[$k]}"; }
                  fi
                done
                [[ $st == OK ]] && msg+="; layer dirs match the floor's extraction"
              fi
              check "$wl" layerfs "$st" "$msg"
            else
              check "$wl" layerfs FAIL "load printed '$out', expected ID $want"
            fi;;
          podman)
            ids=$(CONTAINERS_STORAGE_CONF=$PCONF podman images -q --no-trunc 2>>"$LOG" | tr '\n' ' ')
            if [[ $ids == *"${want#sha256:}"* ]]; then check "$wl" podman OK "image ID ${want:7:12} listed"
            else check "$wl" podman FAIL "podman images: $ids, expected $want"; fi;;
          umoci)
            n=$(find "$S/umoci/rootfs" 2>/dev/null | wc -l)
            if ((n > 1)); then check "$wl" umoci OK "unpacked rootfs has $n entries"
            else check "$wl" umoci FAIL "empty rootfs"; fi;;
        esac
      done
    done
  done
  fresh_store
fi

# ------------------------------------------------------------------ phase: pull
if has_phase pull; then
  P=$X/pull PO=$OUT/pull
  mkdir -p "$PO"
  pull_ok=1
  for t in docker-registry skopeo curl jq; do
    command -v "$t" >/dev/null || { skip "pull phase: $t not installed (Debian package ${t/jq/jq})"; pull_ok=0; }
  done
  if ((pull_ok)) && [[ ! -f $P/.complete ]]; then
    say "== generating the 5-layer gzip image for the pull phase (>= 400 MB of gzip)"
    rm -rf "$P"; mkdir -p "$P"
    "${LIB[@]}" gen-pull-image "$P/img" /usr
    touch "$P/.complete"
  fi
fi
if has_phase pull && ((pull_ok)); then
  reg_start() { # a docker-registry on a free loopback port -> REG_PID, REG=127.0.0.1:PORT
    local port i try
    for ((try = 0; try < 3; try++)); do
      port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
      printf '%s\n' "version: 0.1" "log:" "  level: warn" "  accesslog:" "    disabled: true" \
        "storage:" "  filesystem:" "    rootdirectory: $P/registry" "http:" "  addr: 127.0.0.1:$port" >"$P/registry.yml"
      docker-registry serve "$P/registry.yml" </dev/null >>"$OUT/registry.log" 2>&1 8>&- &
      REG_PID=$!
      for ((i = 0; i < 600; i++)); do # poll /v2/ until it answers, at most ~60 s
        if curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/v2/" 2>/dev/null; then
          REG=127.0.0.1:$port; return 0
        fi
        alive "$REG_PID" || break # port taken meanwhile, or a bad config: try again
        sleep 0.1
      done
      reg_stop
    done
    return 1
  }
  pull_fresh() {
    local m
    while read -r m; do unmount_path "$m"; done < <(awk -v b="$S/" 'index($5, b)==1 {print $5}' /proc/self/mountinfo | sort -r)
    rm -rf "$S"; mkdir -p "$S/tmp"
  }
  pull_job() { # JOB REP: one timed pull into a fresh store
    local job=$1 rep=$2 im=$1 wl=pull-big-${NL}layer ok=1 tf=$PO/time.$1.$2 out=$PO/out.$1.$2 t0 t1 c0 c1
    [[ $job == layerfs-1 ]] && { im=layerfs; wl+=-1-download; }
    pull_fresh
    drop_caches
    read -r c0 _ _ <<<"$("${LIB[@]}" proc-stat "$REG_PID")"
    t0=$(now)
    case $job in
      floor) /usr/bin/time -v -o "$tf" "$HERE/pull-floor.sh" "$REG" bench/big v1 "$S/floor" >"$out" 2>>"$LOG" || ok=0;;
      layerfs) env "${PENV[@]}" /usr/bin/time -v -o "$tf" "${BIN[layerfs]}" --root "$S/layerfs" pull "$PREF" >"$out" 2>>"$LOG" 8>&- || ok=0;;
      layerfs-1) env "${PENV[@]}" /usr/bin/time -v -o "$tf" "${BIN[layerfs]}" --root "$S/layerfs" pull --max-concurrent-downloads 1 "$PREF" >"$out" 2>>"$LOG" 8>&- || ok=0;;
      podman) env CONTAINERS_STORAGE_CONF="$PCONF" TMPDIR="$S/tmp" /usr/bin/time -v -o "$tf" podman --root "$S/podman/graph" \
          --runroot "$S/podman/run" --tmpdir "$S/podman/tmp" --storage-driver overlay --events-backend none \
          pull --tls-verify=false "$PREF" >"$out" 2>>"$LOG" 8>&- || ok=0;;
    esac
    sync
    t1=$(now)
    read -r c1 _ _ <<<"$("${LIB[@]}" proc-stat "$REG_PID")"
    if ((!ok)); then
      res pull "$im" "$wl" "$rep" ""; check "$wl" "$im" FAIL "$job: pull failed: $(tail -n3 "$LOG" | tr '\n' ' ' | cut -c1-300)"
      return 0
    fi
    res pull "$im" "$wl" "$rep" "$(elapsed "$t0" "$t1")"
    read -r us ss rss <<<"$("${LIB[@]}" time-fields "$tf")"
    printf 'pmem\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$im" "$wl" "$rep" "$us" "$ss" "$rss" \
      "$(awk -v a="$c0" -v b="$c1" -v h="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (b-a)/h}')" >>"$XTSV"
    say "    $job: user ${us}s sys ${ss}s, peak RSS $((rss / 1024)) MiB"
    ((rep == 1)) && pull_check "$job" "$im" "$wl" "$out"
    return 0
  }
  pull_check() { # JOB IMPL WORKLOAD OUTPUT (first rep, untimed): manifests of the layers for pull_compare
    local job=$1 im=$2 wl=$3 out=$4 k id msg dirs=()
    case $job in
      floor)
        for ((k = 1; k <= NL; k++)); do "${LIB[@]}" layer-manifest "$S/floor/$k" >"$PO/floor.$k.manifest"; done
        id=sha256:$(sha256sum <"$S/floor/config.json" | cut -d' ' -f1)
        if [[ $id == "$PID_WANT" ]]; then check "$wl" floor OK "$NL layers extracted, $(cat "$PO"/floor.*.manifest | wc -l) entries"
        else check "$wl" floor FAIL "config digest $id, expected $PID_WANT"; fi;;
      layerfs*)
        id=$("${BIN[layerfs]}" --root "$S/layerfs" image inspect "$PREF" 2>>"$LOG" | jq -r '.[0].Id')
        mapfile -t dirs < <("${BIN[layerfs]}" --root "$S/layerfs" image layers "$PREF" --format json 2>>"$LOG" | jq -r .Dir)
        for ((k = 1; k <= ${#dirs[@]}; k++)); do "${LIB[@]}" layer-manifest "${dirs[$((k - 1))]}" >"$PO/$job.$k.manifest"; done
        msg=""
        [[ $id == "$PID_WANT" ]] || msg+="image ID $id, expected the config digest $PID_WANT; "
        ((${#dirs[@]} == NL)) || msg+="${#dirs[@]} layer dirs, expected $NL; "
        [[ $(tail -n1 "$out") == "$PREF" ]] || msg+="last line '$(tail -n1 "$out")', expected $PREF; "
        grep -qx "Digest: $MDIG" "$out" || msg+="no 'Digest: $MDIG' line; "
        if [[ -z $msg ]]; then echo "ok" >"$PO/$job.idcheck"; else echo "$msg" >"$PO/$job.idcheck"; fi;;
      podman)
        id=$(CONTAINERS_STORAGE_CONF=$PCONF podman --root "$S/podman/graph" --runroot "$S/podman/run" --tmpdir "$S/podman/tmp" \
          --storage-driver overlay --events-backend none images -q --no-trunc 2>>"$LOG" | tr '\n' ' ')
        if [[ $id == *"${PID_WANT#sha256:}"* ]]; then check "$wl" podman OK "image ID ${PID_WANT:7:12} listed"
        else check "$wl" podman FAIL "podman images: '$id', expected $PID_WANT"; fi;;
    esac
  }
  pull_compare() { # layerfs's layer dirs against the floor's extraction, entry by entry
    local job k wl st msg nd
    for job in layerfs layerfs-1; do
      [[ -f $PO/$job.idcheck ]] || continue
      wl=pull-big-${NL}layer; [[ $job == layerfs-1 ]] && wl+=-1-download
      st=OK msg=""
      [[ $(cat "$PO/$job.idcheck") == ok ]] || { st=FAIL; msg+="$(cat "$PO/$job.idcheck")"; }
      if [[ ! -f $PO/floor.1.manifest ]]; then st=FAIL; msg+="no floor extraction to compare with; "; fi
      for ((k = 1; k <= NL; k++)); do
        [[ -f $PO/floor.$k.manifest ]] || break
        if ! cmp -s "$PO/floor.$k.manifest" "$PO/$job.$k.manifest"; then
          nd=$(diff "$PO/floor.$k.manifest" "$PO/$job.$k.manifest" 2>/dev/null | grep -c '^[<>]' || true)
          st=FAIL; msg+="layer $k: $nd lines differ from the floor, e.g. $(diff "$PO/floor.$k.manifest" "$PO/$job.$k.manifest" 2>&1 | grep -m2 '^[<>]' | tr '\n\t' '  ' | cut -c1-200); "
        fi
      done
      [[ $st == OK ]] && msg="image ID = config digest ${PID_WANT:7:12}, $NL layer dirs identical to the floor's extraction ($(cat "$PO"/floor.*.manifest | wc -l) entries: type, mode, owner, size, mtime, hard links, sha256; whiteouts and opaque dirs)"
      check "$wl" layerfs "$st" "$msg"
    done
  }
  PINFO=$P/img/image.json
  PID_WANT=$(jq -r .image_id "$PINFO") MDIG=$(jq -r .manifest_digest "$PINFO") NL=$(jq '.layers | length' "$PINFO")
  xmeta pull_gz_bytes "$(jq .gz_total "$PINFO")"
  [[ -f $P/.pushed-${MDIG#sha256:} ]] || rm -rf "$P/registry"
  reg_start || die "pull phase: docker-registry did not answer on /v2/ (see $OUT/registry.log)"
  say "== pull phase: registry $REG (pid $REG_PID), storage $P/registry"
  if [[ ! -f $P/.pushed-${MDIG#sha256:} ]]; then
    skopeo copy -q --dest-tls-verify=false "oci:$P/img/oci:v1" "docker://$REG/bench/big:v1" >>"$LOG" 2>&1 ||
      die "pull phase: skopeo copy to $REG failed (see $LOG)"
    touch "$P/.pushed-${MDIG#sha256:}"
  fi
  got=$(curl -fsS -o /dev/null -D - -H "Accept: application/vnd.oci.image.manifest.v1+json" \
    "http://$REG/v2/bench/big/manifests/v1" | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}')
  [[ $got == "$MDIG" ]] || say "WARNING: the registry's manifest is $got, generated $MDIG (skopeo rewrote it?)"
  PREF=$REG/bench/big:v1
  S=$X/run/pstore
  PCONF=$X/run/pull-storage.conf
  cat >"$PCONF" <<EOC
[storage]
driver = "overlay"
graphroot = "$S/podman/graph"
runroot = "$S/podman/run"
EOC
  mkdir -p "$P/docker-config"
  # no host configuration or credentials: loopback is insecure (plain HTTP) by default
  PENV=(LAYERFS_CONFIG="$P/no-layerfs-config.json" DOCKER_CONFIG="$P/docker-config"
        REGISTRY_AUTH_FILE="$P/no-auth.json")
  PJOBS=(floor)
  [[ " ${IMPLS[*]} " == *" layerfs "* ]] && PJOBS+=(layerfs layerfs-1)
  if command -v podman >/dev/null; then PJOBS+=(podman); else skip "pull phase: podman not installed"; fi
  xmeta pull_floor "curl of every blob at once, each | pigz -dc | tar -x into its own dir"
  say "== pull phase: $REPS reps of ${PJOBS[*]} (fresh store, drop_caches before, sync in the timing)"
  for ((rep = 1; rep <= REPS; rep++)); do
    mapfile -t order < <(rotate "$rep" "${PJOBS[@]}")
    for job in "${order[@]}"; do pull_job "$job" "$rep"; done
    if ((rep == 1)); then pull_compare; fi
  done
  pull_fresh
  reg_stop
fi

# ------------------------------------------------------------------ phase: meta
if has_phase meta; then
  I=${I:-$X/img} FIX=${FIX:-${SHARED:+$SHARED/fixtures}}
  if ((!UDATA)); then skip "meta phase: no union dataset (run the union phase once)"
  elif [[ ! -f $I/.complete ]]; then skip "meta phase: no generated image at $I (run the image phase once)"
  elif [[ ! -v BIN[layerfs] ]]; then skip "meta phase: needs layerfs (its image store)"
  else
    # shellcheck source=bench/meta-phase.sh
    . "$HERE/meta-phase.sh"
    meta_phase
  fi
  if ((UDATA)); then unmount_path "$U"; fi
fi

# ------------------------------------------------------------------ report
say ""
{
  echo "# layerfs benchmark run"
  echo
  echo '```'
  cat "$OUT/machine.txt"
  [[ -f $OUT/union/raw.tsv ]] && grep -P '^meta\t(params|datafs|loadavg_start|loadavg_end|elapsed_s)\t' "$OUT/union/raw.tsv" | cut -f2- | sed 's/\t/: /; s/^/union phase /'
  echo "all phases: $(awk -v a="$T_START" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.0f", b-a}') s, load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo '```'
  echo
} >"$OUT/header.md"
"${LIB[@]}" report "$OUT" >"$OUT/report.md"
cat "$OUT/header.md" "$OUT/report.md" >"$OUT/table.md"
cat "$OUT/table.md"
say ""
say "results: $OUT/table.md (union details: $OUT/union/table.txt, log: $LOG)"
}
main "$@"; exit $?   # one line: bash has read it whole before main runs
