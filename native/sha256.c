// SHA-256 for the share hot path with the x86 SHA extensions (SHA-NI), as an N-API addon. A share with a new
// extranonce2 hashes its coinbase, climbs the merkle branch (12 levels for a 3,000-transaction template: three
// compressions each) and hashes the header: ~45 compressions, ~11 µs in JS words, ~1.5 µs here. The module
// loads on any machine; `supported` is false where the CPU lacks SHA-NI (the JS words are used then).
#include <node_api.h>
#include <stdint.h>
#include <string.h>
#include <cpuid.h>
#include <immintrin.h>

static const uint32_t K[64] = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};
static const uint32_t IV[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };
/* The padding block after a 64-byte message. */
static const uint32_t PAD64[16] = { 0x80000000, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 512 };

/* One compression of 16 message words (host-order values) into the state s. */
__attribute__((target("sha,sse4.1,ssse3")))
static void compress(uint32_t s[8], const uint32_t w[16]) {
  __m128i tmp = _mm_loadu_si128((const __m128i *)&s[0]);
  __m128i st1 = _mm_loadu_si128((const __m128i *)&s[4]);
  tmp = _mm_shuffle_epi32(tmp, 0xB1);          /* CDAB */
  st1 = _mm_shuffle_epi32(st1, 0x1B);          /* EFGH */
  __m128i st0 = _mm_alignr_epi8(tmp, st1, 8);  /* ABEF */
  st1 = _mm_blend_epi16(st1, tmp, 0xF0);       /* CDGH */
  const __m128i abef = st0, cdgh = st1;
  __m128i m[4];
  for (int i = 0; i < 4; i++) m[i] = _mm_loadu_si128((const __m128i *)&w[4 * i]);
  for (int r = 0; r < 16; r++) {
    __m128i msg = _mm_add_epi32(m[r & 3], _mm_loadu_si128((const __m128i *)&K[4 * r]));
    st1 = _mm_sha256rnds2_epu32(st1, st0, msg);
    msg = _mm_shuffle_epi32(msg, 0x0E);
    st0 = _mm_sha256rnds2_epu32(st0, st1, msg);
    if (r < 12) {
      /* Words of group r+4 from groups r..r+3. */
      __m128i t = _mm_add_epi32(_mm_sha256msg1_epu32(m[r & 3], m[(r + 1) & 3]), _mm_alignr_epi8(m[(r + 3) & 3], m[(r + 2) & 3], 4));
      m[r & 3] = _mm_sha256msg2_epu32(t, m[(r + 3) & 3]);
    }
  }
  st0 = _mm_add_epi32(st0, abef);
  st1 = _mm_add_epi32(st1, cdgh);
  tmp = _mm_shuffle_epi32(st0, 0x1B);          /* FEBA */
  st1 = _mm_shuffle_epi32(st1, 0xB1);          /* DCHG */
  st0 = _mm_blend_epi16(tmp, st1, 0xF0);       /* DCBA */
  st1 = _mm_alignr_epi8(st1, tmp, 8);          /* ABEF */
  _mm_storeu_si128((__m128i *)&s[0], st0);
  _mm_storeu_si128((__m128i *)&s[4], st1);
}

static inline uint32_t be32(const uint8_t *p) { return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]; }

/* The second hash of a double SHA-256: s = sha256(s as 32 bytes). */
static void second(uint32_t s[8]) {
  uint32_t w[16] = { s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], 0x80000000, 0, 0, 0, 0, 0, 0, 256 };
  memcpy(s, IV, 32);
  compress(s, w);
}

/* sha256d of msg[0..len) whose first `from` bytes (a multiple of 64) are compressed into mid. */
static void sha256d_from(const uint32_t mid[8], const uint8_t *msg, size_t from, size_t len, uint32_t out[8]) {
  uint32_t s[8], w[16];
  memcpy(s, mid, 32);
  size_t off = from;
  for (; off + 64 <= len; off += 64) {
    for (int i = 0; i < 16; i++) w[i] = be32(msg + off + 4 * i);
    compress(s, w);
  }
  uint8_t t[128];
  size_t rest = len - off, padded = rest + 9 <= 64 ? 64 : 128;
  memset(t, 0, padded);
  memcpy(t, msg + off, rest);
  t[rest] = 0x80;
  uint64_t bits = (uint64_t)len * 8;
  for (int i = 0; i < 8; i++) t[padded - 1 - i] = (uint8_t)(bits >> (8 * i));
  for (size_t b = 0; b < padded; b += 64) {
    for (int i = 0; i < 16; i++) w[i] = be32(t + b + 4 * i);
    compress(s, w);
  }
  second(s);
  memcpy(out, s, 32);
}

static void store_be(const uint32_t s[8], uint8_t *out) {
  for (int i = 0; i < 8; i++) { out[4 * i] = s[i] >> 24; out[4 * i + 1] = s[i] >> 16; out[4 * i + 2] = s[i] >> 8; out[4 * i + 3] = s[i]; }
}

static int have_shani(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
  if (!(b & (1u << 29))) return 0;                       /* SHA */
  if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
  return (c & (1u << 19)) && (c & (1u << 9));            /* SSE4.1, SSSE3 */
}

static const uint8_t EMPTY[1];

/* The bytes of a typed array (or Buffer), or NULL when v is not one. */
static void *data_of(napi_env env, napi_value v, size_t *len) {
  napi_typedarray_type type; size_t n = 0; void *data = NULL; napi_value ab; size_t off;
  *len = 0;
  if (napi_get_typedarray_info(env, v, &type, &n, &data, &ab, &off) != napi_ok) return NULL;
  size_t el = (type == napi_int32_array || type == napi_uint32_array) ? 4 : 1;
  *len = n * el;
  return data ? data : (void *)EMPTY;
}

/* merkleRoot(mid: Int32Array(8), coinbase: Uint8Array, from, branch: Int32Array(8 × levels), out: Uint8Array(32)) */
static napi_value merkle_root(napi_env env, napi_callback_info info) {
  size_t argc = 5; napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  size_t ml = 0, cl = 0, bl = 0, ol = 0; uint32_t from = 0;
  const uint32_t *mid = data_of(env, argv[0], &ml);
  const uint8_t *cb = data_of(env, argv[1], &cl);
  napi_get_value_uint32(env, argv[2], &from);
  const uint32_t *br = data_of(env, argv[3], &bl);
  uint8_t *out = data_of(env, argv[4], &ol);
  if (!mid || ml < 32 || !cb || from > cl || from % 64 || !br || bl % 32 || !out || ol < 32) {
    napi_throw_type_error(env, NULL, "merkleRoot: bad arguments");
    return NULL;
  }
  uint32_t node[8], w[16];
  sha256d_from(mid, cb, from, cl, node);
  for (size_t o = 0; o < bl / 4; o += 8) {
    memcpy(w, node, 32);
    memcpy(w + 8, br + o, 32);
    uint32_t s[8];
    memcpy(s, IV, 32);
    compress(s, w);
    compress(s, PAD64);
    second(s);
    memcpy(node, s, 32);
  }
  store_be(node, out);
  return NULL;
}

/* sha256d(msg: Uint8Array, out: Uint8Array(32)) */
static napi_value sha256d(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  size_t ml = 0, ol = 0;
  const uint8_t *msg = data_of(env, argv[0], &ml);
  uint8_t *out = data_of(env, argv[1], &ol);
  if (!msg || !out || ol < 32) { napi_throw_type_error(env, NULL, "sha256d: bad arguments"); return NULL; }
  uint32_t s[8];
  sha256d_from(IV, msg, 0, ml, s);
  store_be(s, out);
  return NULL;
}

/*
 * pairLevel(w: Int32Array(8 × nodes), from, len): one merkle level in place. Node j (from ≤ j, 2j < len) becomes
 * sha256d(node 2j ‖ node 2j+1), or of node 2j twice when 2j+1 is len (an odd level). Nodes are 8 words each, as
 * values (the JS words of sha256-words.ts). A 3,000-transaction template's branch is ~3,000 of these.
 */
static napi_value pair_level(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  size_t wl = 0; uint32_t from = 0, len = 0;
  uint32_t *w = data_of(env, argv[0], &wl);
  if (!w || napi_get_value_uint32(env, argv[1], &from) != napi_ok || napi_get_value_uint32(env, argv[2], &len) != napi_ok
      || (size_t)len * 32 > wl) {
    napi_throw_type_error(env, NULL, "pairLevel: bad arguments");
    return NULL;
  }
  uint32_t m[16], s[8];
  for (size_t j = from; 2 * j < len; j++) {
    size_t l = 2 * j, r = l + 1 < len ? l + 1 : l;
    memcpy(m, w + 8 * l, 32);
    memcpy(m + 8, w + 8 * r, 32);
    memcpy(s, IV, 32);
    compress(s, m);
    compress(s, PAD64);
    second(s);
    memcpy(w + 8 * j, s, 32);
  }
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value v;
  napi_get_boolean(env, have_shani(), &v);
  napi_set_named_property(env, exports, "supported", v);
  napi_create_function(env, "merkleRoot", NAPI_AUTO_LENGTH, merkle_root, NULL, &v);
  napi_set_named_property(env, exports, "merkleRoot", v);
  napi_create_function(env, "sha256d", NAPI_AUTO_LENGTH, sha256d, NULL, &v);
  napi_set_named_property(env, exports, "sha256d", v);
  napi_create_function(env, "pairLevel", NAPI_AUTO_LENGTH, pair_level, NULL, &v);
  napi_set_named_property(env, exports, "pairLevel", v);
  return exports;
}
