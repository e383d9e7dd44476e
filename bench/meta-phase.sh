# bench/meta-phase.sh - the `meta` phase of bench/run.sh (sourced by it; uses its helpers):
# metadata workloads beyond ../shared/bench/unionbench.sh, each on a fresh mount per rep,
# implementations interleaved, listings checked against kernel overlayfs:
#   hl-walk-fresh, hl-walk-again   find -printf '%i %n %s' over a lower tree whose files all
#                                  have 3 names (usr/include of the union dataset, hard-linked)
#   imgmount-find, imgmount-tar    a read-only mount of the 3-layer image of the `image` phase,
#                                  walked with find -printf, then tar -c >/dev/null
#                                  (layerfs: `image mount` from its store; the others: the
#                                  same layer dirs as lowerdirs)
#   exec-busybox-1000              1,000 execs of `bin/busybox true` from a read-only mount of
#                                  the shared busybox image

meta_phase() {
  local M=$X/meta R=$OUT/meta im rep order t0 t1 ref
  mkdir -p "$M" "$R"
  # --- the hard-link-heavy tree
  if [[ ! -f $M/hl/.complete ]]; then
    say "== meta phase: building the hard-link tree (every file 3 names)"
    rm -rf "$M/hl"; mkdir -p "$M/hl/l"
    cp -a "$U/layers/l0/usr/include" "$M/hl/l/tree"
    find "$M/hl/l/tree" -type f -exec sh -c 'for f; do ln "$f" "$f.hl1" && ln "$f" "$f.hl2"; done' sh {} +
    touch "$M/hl/.complete"
  fi
  # --- the image store: the image phase's 3-layer image and the busybox fixture
  local S=$X/run/mstore BB=""
  [[ -n ${FIX:-} && -f $FIX/busybox.docker.tar ]] && BB=$FIX/busybox.docker.tar
  rm -rf "$S"; mkdir -p "$S"
  "${BIN[layerfs]}" --root "$S" load -q -i "$I/big.docker.tar" >>"$LOG" 2>&1 || { skip "meta phase: layerfs load of the image failed"; return 0; }
  [[ -n $BB ]] && "${BIN[layerfs]}" --root "$S" load -q -i "$BB" >>"$LOG" 2>&1
  local BIGIMG BIGL BBL=""
  BIGIMG=$(jq -r '.image_id' "$I/image.json")
  BIGL=$("${BIN[layerfs]}" --root "$S" image inspect "$BIGIMG" | jq -r '.[0].GraphDriver.Data.LayerDirs | join(":")')
  [[ -n $BB ]] && BBL=$("${BIN[layerfs]}" --root "$S" image inspect busybox | jq -r '.[0].GraphDriver.Data.LayerDirs | join(":")')
  ro_mount() { # IMPL LOWERS IMAGE MNT: a read-only mount of an image's layers
    mkdir -p "$4"; CURMNT=$4
    case $1 in
      kernel) mount -t overlay overlay -o "ro,lowerdir=$2" "$4";;
      layerfs) "${BIN[layerfs]}" --root "$S" image mount "$3" "$4" </dev/null >>"$LOG" 2>&1 8>&-;;
      *) "${BIN[$1]}" -o "lowerdir=$2" "$4" </dev/null >>"$LOG" 2>&1 8>&-;;
    esac
  }
  listing() { # MNT OUT: what a walk shows (names, types, modes, owners, sizes, the link
    # counts of non-directories: a merged directory's count differs by design, as in the
    # walk phase)
    (cd "$1" && find . -printf '%p %y %m %U %G %s %n\n' | awk '$2 == "d" { $7 = "-" } 1' | sort) >"$2"
  }
  same_as_kernel() { # GROUP IMPL FILE
    ref=$R/$1.kernel
    [[ -f $ref ]] || ref=$3
    if cmp -s "$ref" "$3"; then check "$1" "$2" OK "$(wc -l <"$3") entries identical to $(basename "$ref")"
    else check "$1" "$2" FAIL "$(diff "$ref" "$3" | grep -c '^[<>]') lines differ from $(basename "$ref")"; fi
  }
  say "== meta phase: hard-link tree, image mount walk, busybox execs ($REPS reps)"
  for ((rep = 1; rep <= REPS; rep++)); do
    mapfile -t order < <(rotate "$rep" "${IMPLS[@]}")
    for im in "${order[@]}"; do
      if mount_impl "$im" "$M/hl/l" "$X/run/upper" "$X/run/work" "$X/run/mnt"; then
        t0=$(now); find "$X/run/mnt" -printf '%i %n %s\n' >/dev/null; t1=$(now)
        res meta "$im" hl-walk-fresh "$rep" "$(elapsed "$t0" "$t1")"
        t0=$(now); find "$X/run/mnt" -printf '%i %n %s\n' >/dev/null; t1=$(now)
        res meta "$im" hl-walk-again "$rep" "$(elapsed "$t0" "$t1")"
        if ((rep == 1)); then
          # the names of one file show one number, as on the kernel's mount
          (cd "$X/run/mnt" && find . -type f -printf '%i %p\n' | sort -k2 |
            awk '{ n = $2; sub(/\.hl[12]$/, "", n); if (!(n in g)) g[n] = $1; else if (g[n] != $1) bad++ }
                 END { print "files whose names show different numbers:", bad + 0 }') >"$R/hardlinks.$im"
          listing "$X/run/mnt" "$R/hl-list.$im"; cat "$R/hardlinks.$im" >>"$R/hl-list.$im"
          same_as_kernel hl-list "$im" "$R/hl-list.$im"
        fi
      else res meta "$im" hl-walk-fresh "$rep" ""; check hl-list "$im" FAIL "mount failed"; fi
      umount_impl
      if ro_mount "$im" "$BIGL" "$BIGIMG" "$X/run/mnt"; then
        t0=$(now); find "$X/run/mnt" -printf '%y %m %U %G %s %T@\t%p\n' >/dev/null; t1=$(now)
        res meta "$im" imgmount-find "$rep" "$(elapsed "$t0" "$t1")"
        t0=$(now); tar -C "$X/run/mnt" -cf - . | cat >/dev/null; t1=$(now)
        res meta "$im" imgmount-tar "$rep" "$(elapsed "$t0" "$t1")"
        if ((rep == 1)); then listing "$X/run/mnt" "$R/imgmount.$im"; same_as_kernel imgmount "$im" "$R/imgmount.$im"; fi
      else res meta "$im" imgmount-find "$rep" ""; check imgmount "$im" FAIL "mount failed"; fi
      umount_impl
      if [[ -n $BBL ]] && ro_mount "$im" "$BBL" busybox "$X/run/mnt"; then
        local i ok=0
        t0=$(now); for ((i = 0; i < 1000; i++)); do "$X/run/mnt/bin/busybox" true && ok=$((ok + 1)); done; t1=$(now)
        res meta "$im" exec-busybox-1000 "$rep" "$(elapsed "$t0" "$t1")"
        if ((rep == 1)); then
          if ((ok == 1000)); then check exec "$im" OK "1000 of 1000 execs succeeded"
          else check exec "$im" FAIL "$ok of 1000 execs succeeded"; fi
        fi
      elif [[ -n $BBL ]]; then res meta "$im" exec-busybox-1000 "$rep" ""; check exec "$im" FAIL "mount failed"; fi
      umount_impl
    done
  done
  [[ -n $BB ]] || skip "meta phase: exec-busybox-1000 needs ../shared/fixtures/busybox.docker.tar"
  rm -rf "$S"
}
