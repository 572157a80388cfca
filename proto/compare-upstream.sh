#!/usr/bin/env bash
# Checks that Berth's proto/runtime/v1/api.proto is wire-identical to an upstream
# CRI api.proto (path given as the only argument). Both files are compiled on
# their own, as "api.proto" in a fresh directory and without source info, into
# a FileDescriptorSet; both sets are decoded to text with protoc --decode and
# the texts are diffed. Comments and formatting therefore do not matter, while
# every service, rpc, message, enum, field, option and their order do.
# Exits 0 when identical; otherwise prints the diff and exits 1 (2 on usage or
# tool errors).
#
# Compiler: protoc if it can compile both files; otherwise (e.g. Debian 12's
# protoc 3.21 does not know the [debug_redact] field option that upstream uses)
# the buf CLI from the workspace's node_modules, or BUF=/path/to/buf.
# Decoding always uses protoc with the system descriptor.proto (DESCRIPTOR_INCLUDE
# overrides /usr/include); options unknown to it print as "<number>: <value>" on
# both sides alike.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ours="$repo_root/proto/runtime/v1/api.proto"

if [[ $# -ne 1 ]]; then
  echo "usage: $0 /path/to/upstream/api.proto" >&2
  exit 2
fi
upstream="$1"
[[ -f "$upstream" ]] || { echo "no such file: $upstream" >&2; exit 2; }
command -v protoc >/dev/null || { echo "protoc not found (apt-get install protobuf-compiler)" >&2; exit 2; }
include="${DESCRIPTOR_INCLUDE:-/usr/include}"
[[ -f "$include/google/protobuf/descriptor.proto" ]] ||
  { echo "no google/protobuf/descriptor.proto under $include" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir "$work/upstream" "$work/berth"
cp "$upstream" "$work/upstream/api.proto"
cp "$ours" "$work/berth/api.proto"

compile_protoc() { # dir out
  protoc --descriptor_set_out="$2" -I"$1" api.proto
}
compile_buf() { # dir out
  "$buf" build "$1" --as-file-descriptor-set --exclude-source-info --exclude-imports -o "$2"
}

compiler=protoc
if ! { compile_protoc "$work/upstream" "$work/upstream.pb" 2>"$work/protoc.err" &&
       compile_protoc "$work/berth" "$work/berth.pb" 2>>"$work/protoc.err"; }; then
  buf="${BUF:-$repo_root/node_modules/.bin/buf}"
  if [[ ! -x "$buf" ]]; then
    cat "$work/protoc.err" >&2
    echo "protoc failed and no buf CLI at $buf (npm ci, or set BUF)" >&2
    exit 2
  fi
  echo "protoc $(protoc --version | cut -d' ' -f2) cannot compile these files:" >&2
  sed 's/^/  /' "$work/protoc.err" >&2
  echo "compiling with buf $("$buf" --version) instead; decoding with protoc" >&2
  compiler=buf
  compile_buf "$work/upstream" "$work/upstream.pb"
  compile_buf "$work/berth" "$work/berth.pb"
fi

for side in upstream berth; do
  protoc --decode=google.protobuf.FileDescriptorSet -I"$include" \
    google/protobuf/descriptor.proto <"$work/$side.pb" >"$work/$side.txt"
done

if diff -u --label "upstream ($upstream)" --label "berth (proto/runtime/v1/api.proto)" \
  "$work/upstream.txt" "$work/berth.txt"; then
  echo "identical: $(grep -c '^  message_type {' "$work/berth.txt") messages," \
    "$(grep -c '^  enum_type {' "$work/berth.txt") top-level enums," \
    "$(grep -c '^    method {' "$work/berth.txt") rpcs (compiled with $compiler)"
  exit 0
fi
echo "DIFFERENT: the descriptors above do not match (compiled with $compiler)" >&2
exit 1
