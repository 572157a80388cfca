# Built by scripts/build-addon.mjs (the nx `build` target), never by npm:
# package.json sets "gypfile": false so npm install / npm ci do not run an
# implicit `node-gyp rebuild` for this workspace package.
{
  "targets": [
    {
      "target_name": "berth_native",
      "sources": ["csrc/berth_native.c", "csrc/args.c", "csrc/layer.c", "csrc/hpack.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-lm", "-larchive", "-lzstd", "-lz", "-lnghttp2"]
    }
  ]
}
