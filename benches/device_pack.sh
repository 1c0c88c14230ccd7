#!/usr/bin/env bash
# Packs staged builds for a device call: `.gpu-NAME/` (benches/stage_variant.sh) becomes
# `.gpu-pack/NAME.tgz`, about 4× smaller than the folder (binaries and compiled modules
# compress well), so that an A/B of several builds travels in one carry under the 64 MiB limit.
#
#   bash benches/device_pack.sh NAME ...     then carry [".gpu-pack"] and run benches/device_ab.sh
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
exclude=$(realpath "$(git rev-parse --git-common-dir)")/info/exclude
grep -qx "/.gpu-pack/" "$exclude" 2>/dev/null || echo "/.gpu-pack/" >> "$exclude"
mkdir -p .gpu-pack
for name in "$@"; do
  [ -d ".gpu-$name" ] || { echo "device_pack: no .gpu-$name (benches/stage_variant.sh $name ...)" >&2; exit 1; }
  tar czf ".gpu-pack/$name.tgz" ".gpu-$name"
done
du -sh .gpu-pack
