#!/usr/bin/env bash
# bench/pull-floor.sh REGISTRY REPO TAG DEST - the pull phase's floor: what any pull must do
# at least. GET the manifest and the config, then every layer blob at once with curl, each
# piped through `pigz -dc | tar -x` into DEST/1, DEST/2, ... (no digest checks, no store).
set -euo pipefail
reg=$1 repo=$2 tag=$3 dest=$4
base=http://$reg/v2/$repo
DECOMP="gzip -dc"; command -v pigz >/dev/null && DECOMP="pigz -dc"
mf=$(curl -fsS -H "Accept: application/vnd.oci.image.manifest.v1+json" \
  -H "Accept: application/vnd.docker.distribution.manifest.v2+json" "$base/manifests/$tag")
mapfile -t digests < <(jq -r '.layers[].digest' <<<"$mf")
cfg=$(jq -r '.config.digest' <<<"$mf")
mkdir -p "$dest"
curl -fsS -o "$dest/config.json" "$base/blobs/$cfg"
pids=()
for i in "${!digests[@]}"; do
  d=$dest/$((i + 1))
  mkdir -p "$d"
  # shellcheck disable=SC2086  # DECOMP is a command and its flag
  (curl -fsS "$base/blobs/${digests[$i]}" | $DECOMP | tar -x --numeric-owner -C "$d") &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
exit "$rc"
