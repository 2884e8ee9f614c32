#!/bin/sh
# Builds the C timing harness against the libtensorflowlite_c.so that tfjs-tflite-node
# bundles (the runtime's own library). Run by `edge-exit bench --suites cpu-path` when the
# binary is missing or older than its source; by hand: tools/bench/native/build.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
tflite=$(cd "$root" && node -p "require('path').dirname(require.resolve('tfjs-tflite-node/package.json'))")
case "$(uname -m)" in
  x86_64) arch=linux_amd64 ;;
  aarch64) arch=linux_arm64 ;;
  *) echo "cpu_harness: tfjs-tflite-node ships no libtensorflowlite_c.so for $(uname -m)" >&2; exit 1 ;;
esac
lib="$tflite/cc_deps/$arch"
mkdir -p "$here/build"
${CC:-cc} -O2 -std=c11 -Wall -Wextra -I"$tflite/cc_deps/include" -I"$root/agent/runtime/xnnpack-shim" "$here/cpu_harness.c" -o "$here/build/cpu_harness" \
  "$lib/libtensorflowlite_c.so" "$lib/libexternal_delegate_obj.so" -Wl,-rpath,"$lib"
echo "$here/build/cpu_harness"
