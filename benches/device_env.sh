# Sourced by the device-side scripts (benches/device_ab.sh, benches/device_suites.sh): the CUDA
# toolkit's NVRTC on the library path, and `unpack_build NAME`, which unpacks the staged build
# `.gpu-pack/NAME.tgz` (benches/stage_variant.sh, benches/device_pack.sh) to /tmp/v/NAME once
# per machine. Run from the repository root.
for d in /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda/lib64; do
  [ -e "$d/libnvrtc.so" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}" && break
done
unpack_build() {
  [ -d "/tmp/v/$1" ] && return 0
  mkdir -p "/tmp/v/$1" && tar xzf ".gpu-pack/$1.tgz" -C "/tmp/v/$1" --strip-components=1 || return 1
  chmod 700 "/tmp/v/$1/cache"   # the compile cache refuses a folder others may write
}
