{
  "targets": [{
    "target_name": "hashhub_sha",
    "sources": ["sha256.c"],
    "cflags": ["-O3"]
  }]
}
