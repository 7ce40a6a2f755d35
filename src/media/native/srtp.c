/*
 * ferry native SRTP for RTP: see srtp.h. Mirrors src/media/srtp/srtp-context.ts (and its transforms) step
 * for step, so a stream can be handed between the two mid-call (state export/import per SSRC).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* RTLD_DEFAULT */
#endif
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#define OPENSSL_SUPPRESS_DEPRECATED 1 /* SHA1_Init/Update/Final: deprecated in OpenSSL 3, exported by Node */

#include "srtp.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/modes.h>
#include <openssl/sha.h>

#define HMAC_TAG 10
#define GCM_TAG 16

typedef struct {
  uint32_t ssrc;
  int64_t highest; /* -1 before the first commit */
  uint64_t seen[2]; /* bit (index & 127): that index was accepted (the layout of replay-window.ts) */
} recv_stream;

typedef struct {
  uint32_t ssrc;
  uint32_t roc;
  uint16_t last_seq;
} send_stream;

struct ferry_srtp_ctx {
  int refs;
  int profile;
  int aead;
  size_t tag_len;
  EVP_CIPHER_CTX *cipher; /* aes-128-ecb, keyed once: the AES-CM keystream, GCM's counter blocks and H */
  GCM128_CONTEXT *gcm;    /* AEAD: OpenSSL's GCM (GHASH) over that cipher (no EVP parameter look-ups per packet) */
  uint8_t salt[14];
  SHA_CTX inner; /* HMAC-SHA1: the states after (key ^ ipad) and (key ^ opad) */
  SHA_CTX outer;
  recv_stream recv[FERRY_SRTP_MAX_STREAMS];
  int nrecv;
  int last_recv; /* index into recv of the last stream accepted, -1 none */
  send_stream send[FERRY_SRTP_MAX_STREAMS];
  int nsend;
  int last_send;
  ferry_srtp_counters counters;
};

static atomic_int live_contexts = 0;

/* ---- helpers -------------------------------------------------------------------------------- */

static inline uint32_t rd32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline void wr32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* Length of the RTP header (fixed part, CSRCs, extension) within len bytes, or -1 (srtp-context.ts rtpHeaderLength). */
static long rtp_header_length(const uint8_t *p, size_t len) {
  if (len < 12 || (p[0] >> 6) != 2) return -1;
  size_t h = 12 + 4 * (size_t)(p[0] & 0x0f);
  if (h > len) return -1;
  if (p[0] & 0x10) {
    if (h + 4 > len) return -1;
    h += 4 + 4 * (size_t)rd16(p + h + 2);
    if (h > len) return -1;
  }
  return (long)h;
}

/* RFC 3711 Appendix A (srtp-context.ts estimateIndex): -1 when it would lie before index 0. */
static int64_t estimate_index(int64_t highest, uint32_t seq) {
  int64_t roc = highest >> 16;
  int64_t sl = highest & 0xffff;
  int64_t v = roc;
  int64_t s = seq;
  if (sl < 0x8000) {
    if (s - sl > 0x8000) v = roc - 1;
  } else if (sl - 0x8000 > s) {
    v = roc + 1;
  }
  if (v < 0) return -1;
  return v * 0x10000 + s;
}

static inline int window_is_new(const recv_stream *w, int64_t index) {
  if (index > w->highest) return 1;
  if (index <= w->highest - FERRY_SRTP_WINDOW) return 0;
  unsigned slot = (unsigned)(index & 127);
  return ((w->seen[slot >> 6] >> (slot & 63)) & 1) == 0;
}

static inline void window_clear_slot(recv_stream *w, int64_t index) {
  unsigned slot = (unsigned)(index & 127);
  w->seen[slot >> 6] &= ~((uint64_t)1 << (slot & 63));
}

static void window_commit(recv_stream *w, int64_t index) {
  if (index > w->highest) {
    if (w->highest < 0 || index - w->highest >= FERRY_SRTP_WINDOW) {
      w->seen[0] = 0;
      w->seen[1] = 0;
    } else {
      for (int64_t i = w->highest + 1; i <= index; i++) window_clear_slot(w, i);
    }
    w->highest = index;
  }
  unsigned slot = (unsigned)(index & 127);
  w->seen[slot >> 6] |= (uint64_t)1 << (slot & 63);
}

static recv_stream *find_recv(ferry_srtp_ctx *c, uint32_t ssrc) {
  if (c->last_recv >= 0 && c->recv[c->last_recv].ssrc == ssrc) return &c->recv[c->last_recv];
  for (int i = 0; i < c->nrecv; i++)
    if (c->recv[i].ssrc == ssrc) return &c->recv[i];
  return NULL;
}

/* A new stream; the table is emptied first when full (srtp-context.ts: map.clear() at MAX_STREAMS). */
static recv_stream *add_recv(ferry_srtp_ctx *c, uint32_t ssrc) {
  if (c->nrecv >= FERRY_SRTP_MAX_STREAMS) {
    c->nrecv = 0;
    c->last_recv = -1;
  }
  recv_stream *w = &c->recv[c->nrecv++];
  w->ssrc = ssrc;
  w->highest = -1;
  w->seen[0] = 0;
  w->seen[1] = 0;
  return w;
}

static send_stream *find_send(ferry_srtp_ctx *c, uint32_t ssrc) {
  if (c->last_send >= 0 && c->send[c->last_send].ssrc == ssrc) return &c->send[c->last_send];
  for (int i = 0; i < c->nsend; i++)
    if (c->send[i].ssrc == ssrc) return &c->send[i];
  return NULL;
}

static send_stream *add_send(ferry_srtp_ctx *c, uint32_t ssrc) {
  if (c->nsend >= FERRY_SRTP_MAX_STREAMS) {
    c->nsend = 0;
    c->last_send = -1;
  }
  send_stream *s = &c->send[c->nsend++];
  s->ssrc = ssrc;
  s->roc = 0;
  s->last_seq = 0;
  return s;
}

/* The sender's ROC for this packet (srtp-context.ts nextSendRoc): it steps when SEQ wraps; a late one keeps the older. */
static uint32_t next_send_roc(ferry_srtp_ctx *c, uint32_t ssrc, uint16_t seq) {
  send_stream *s = find_send(c, ssrc);
  if (s == NULL) {
    s = add_send(c, ssrc);
    s->last_seq = seq;
    c->last_send = (int)(s - c->send);
    return 0;
  }
  c->last_send = (int)(s - c->send);
  int64_t highest = (int64_t)s->roc * 0x10000 + s->last_seq;
  int64_t index = estimate_index(highest, seq);
  if (index < 0) return 0;
  if (index > highest) {
    s->roc = (uint32_t)(index >> 16);
    s->last_seq = seq;
  }
  return (uint32_t)(index >> 16);
}

static void hmac_sha1(const ferry_srtp_ctx *c, const uint8_t *data, size_t len, uint32_t roc, uint8_t out[20]) {
  SHA_CTX s = c->inner;
  uint8_t r[4];
  uint8_t d[20];
  wr32(r, roc);
  SHA1_Update(&s, data, len);
  SHA1_Update(&s, r, 4);
  SHA1_Final(d, &s);
  s = c->outer;
  SHA1_Update(&s, d, 20);
  SHA1_Final(out, &s);
}

static void aes_cm_iv(const ferry_srtp_ctx *c, uint32_t ssrc, uint32_t roc, uint16_t seq, uint8_t iv[16]) {
  memcpy(iv, c->salt, 14);
  iv[14] = 0;
  iv[15] = 0;
  iv[4] ^= (uint8_t)(ssrc >> 24);
  iv[5] ^= (uint8_t)(ssrc >> 16);
  iv[6] ^= (uint8_t)(ssrc >> 8);
  iv[7] ^= (uint8_t)ssrc;
  iv[8] ^= (uint8_t)(roc >> 24);
  iv[9] ^= (uint8_t)(roc >> 16);
  iv[10] ^= (uint8_t)(roc >> 8);
  iv[11] ^= (uint8_t)roc;
  iv[12] ^= (uint8_t)(seq >> 8);
  iv[13] ^= (uint8_t)seq;
}

static void gcm_iv(const ferry_srtp_ctx *c, uint32_t ssrc, uint32_t roc, uint16_t seq, uint8_t iv[12]) {
  memcpy(iv, c->salt, 12);
  iv[2] ^= (uint8_t)(ssrc >> 24);
  iv[3] ^= (uint8_t)(ssrc >> 16);
  iv[4] ^= (uint8_t)(ssrc >> 8);
  iv[5] ^= (uint8_t)ssrc;
  iv[6] ^= (uint8_t)(roc >> 24);
  iv[7] ^= (uint8_t)(roc >> 16);
  iv[8] ^= (uint8_t)(roc >> 8);
  iv[9] ^= (uint8_t)roc;
  iv[10] ^= (uint8_t)(seq >> 8);
  iv[11] ^= (uint8_t)seq;
}

/* XOR buf[0, n) with the AES-CM keystream of this IV (RFC 3711 §4.1.1): E(k, IV + j) for block j, the
 * low 16 bits counting blocks, made by the context's persistent AES-128-ECB cipher KS_BLOCKS blocks at a
 * time (no cipher re-initialisation per packet: in OpenSSL 3 that costs parameter look-ups). */
#define KS_BLOCKS 32
static int ctr_xor(ferry_srtp_ctx *c, const uint8_t iv[16], uint8_t *buf, size_t n) {
  uint8_t ctr[KS_BLOCKS * 16];
  uint8_t ks[KS_BLOCKS * 16];
  uint32_t j = 0;
  while (n > 0) {
    size_t blocks = (n + 15) / 16;
    if (blocks > KS_BLOCKS) blocks = KS_BLOCKS;
    for (size_t b = 0; b < blocks; b++, j++) {
      memcpy(ctr + 16 * b, iv, 14);
      ctr[16 * b + 14] = (uint8_t)(j >> 8);
      ctr[16 * b + 15] = (uint8_t)j;
    }
    int outl = 0;
    if (EVP_CipherUpdate(c->cipher, ks, &outl, ctr, (int)(blocks * 16)) != 1 || outl != (int)(blocks * 16)) return 0;
    size_t m = blocks * 16 < n ? blocks * 16 : n;
    size_t i = 0;
    for (; i + 8 <= m; i += 8) {
      uint64_t a, k;
      memcpy(&a, buf + i, 8);
      memcpy(&k, ks + i, 8);
      a ^= k;
      memcpy(buf + i, &a, 8);
    }
    for (; i < m; i++) buf[i] ^= ks[i];
    buf += m;
    n -= m;
  }
  return 1;
}

/* GCM's block function over the context's ECB cipher (H at set-up, E(K, J0) per packet). */
static void gcm_block(const unsigned char in[16], unsigned char out[16], const void *key) {
  int outl = 0;
  EVP_CipherUpdate(((const ferry_srtp_ctx *)key)->cipher, out, &outl, in, 16);
}

/* GCM's counter-mode stream: out = in XOR E(K, ivec), E(K, ivec + 1), ... (32-bit big-endian counter). */
static void gcm_ctr32(const unsigned char *in, unsigned char *out, size_t blocks, const void *key, const unsigned char ivec[16]) {
  const ferry_srtp_ctx *c = key;
  uint8_t ctr[KS_BLOCKS * 16];
  uint8_t ks[KS_BLOCKS * 16];
  uint32_t count = rd32(ivec + 12);
  while (blocks > 0) {
    size_t m = blocks < KS_BLOCKS ? blocks : KS_BLOCKS;
    for (size_t b = 0; b < m; b++) {
      memcpy(ctr + 16 * b, ivec, 12);
      wr32(ctr + 16 * b + 12, count++);
    }
    int outl = 0;
    EVP_CipherUpdate(c->cipher, ks, &outl, ctr, (int)(m * 16));
    for (size_t i = 0; i < m * 16; i += 8) {
      uint64_t a, k;
      memcpy(&a, in + i, 8);
      memcpy(&k, ks + i, 8);
      a ^= k;
      memcpy(out + i, &a, 8);
    }
    in += m * 16;
    out += m * 16;
    blocks -= m;
  }
}

/* ---- context -------------------------------------------------------------------------------- */

ferry_srtp_ctx *ferry_srtp_create(int profile, const uint8_t *enc_key, size_t enc_len, const uint8_t *auth_key,
                                  size_t auth_len, const uint8_t *salt, size_t salt_len) {
  int aead;
  if (profile == FERRY_SRTP_AES_CM_128_HMAC_SHA1_80) {
    if (enc_len != 16 || auth_len != 20 || salt_len != 14) return NULL;
    aead = 0;
  } else if (profile == FERRY_SRTP_AEAD_AES_128_GCM) {
    if (enc_len != 16 || auth_len != 0 || salt_len != 12) return NULL;
    aead = 1;
  } else {
    return NULL;
  }
  ferry_srtp_ctx *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  c->refs = 1;
  c->profile = profile;
  c->aead = aead;
  c->tag_len = aead ? GCM_TAG : HMAC_TAG;
  c->last_recv = -1;
  c->last_send = -1;
  memcpy(c->salt, salt, salt_len);
  c->cipher = EVP_CIPHER_CTX_new();
  if (c->cipher == NULL ||
      EVP_CipherInit_ex(c->cipher, EVP_aes_128_ecb(), NULL, enc_key, NULL, 1) != 1 ||
      EVP_CIPHER_CTX_set_padding(c->cipher, 0) != 1 || (aead && (c->gcm = CRYPTO_gcm128_new(c, gcm_block)) == NULL)) {
    if (c->cipher != NULL) EVP_CIPHER_CTX_free(c->cipher);
    free(c);
    return NULL;
  }
  if (!aead) {
    uint8_t pad[64];
    memset(pad, 0x36, sizeof pad);
    for (size_t i = 0; i < auth_len; i++) pad[i] ^= auth_key[i];
    SHA1_Init(&c->inner);
    SHA1_Update(&c->inner, pad, 64);
    memset(pad, 0x5c, sizeof pad);
    for (size_t i = 0; i < auth_len; i++) pad[i] ^= auth_key[i];
    SHA1_Init(&c->outer);
    SHA1_Update(&c->outer, pad, 64);
    memset(pad, 0, sizeof pad);
  }
  atomic_fetch_add(&live_contexts, 1);
  return c;
}

void ferry_srtp_retain(ferry_srtp_ctx *c) { c->refs++; }

void ferry_srtp_release(ferry_srtp_ctx *c) {
  if (c == NULL || --c->refs > 0) return;
  if (c->gcm != NULL) CRYPTO_gcm128_release(c->gcm);
  EVP_CIPHER_CTX_free(c->cipher);
  memset(c, 0, sizeof *c); /* keys and states */
  free(c);
  atomic_fetch_sub(&live_contexts, 1);
}

size_t ferry_srtp_overhead(const ferry_srtp_ctx *c) { return c->tag_len; }
int ferry_srtp_profile(const ferry_srtp_ctx *c) { return c->profile; }
void ferry_srtp_get_counters(const ferry_srtp_ctx *c, ferry_srtp_counters *out) { *out = c->counters; }

/* ---- packets -------------------------------------------------------------------------------- */

int ferry_srtp_unprotect_rtp(void *vctx, uint8_t *pkt, size_t *lenp) {
  ferry_srtp_ctx *c = vctx;
  size_t len = *lenp;
  if (len > FERRY_SRTP_MAX_PACKET) {
    c->counters.malformed++;
    return FERRY_SRTP_ERR_TOO_LONG;
  }
  if (len < 12 + c->tag_len) {
    c->counters.malformed++;
    return FERRY_SRTP_ERR_MALFORMED;
  }
  size_t body = len - c->tag_len;
  long h = rtp_header_length(pkt, body);
  if (h < 0) {
    c->counters.malformed++;
    return FERRY_SRTP_ERR_MALFORMED;
  }
  uint32_t ssrc = rd32(pkt + 8);
  uint16_t seq = rd16(pkt + 2);
  recv_stream *w = find_recv(c, ssrc);
  int64_t index = w == NULL || w->highest < 0 ? (int64_t)seq : estimate_index(w->highest, seq);
  if (index < 0 || (w != NULL && !window_is_new(w, index))) {
    c->counters.replays++;
    return FERRY_SRTP_ERR_REPLAY;
  }
  uint32_t roc = (uint32_t)(index >> 16);
  size_t n = body - (size_t)h;
  if (c->aead) {
    uint8_t iv[16];
    gcm_iv(c, ssrc, roc, seq, iv);
    CRYPTO_gcm128_setiv(c->gcm, iv, 12);
    /* GHASH of the ciphertext before it is decrypted in place; the tag compare is CRYPTO_memcmp */
    int ok = CRYPTO_gcm128_aad(c->gcm, pkt, (size_t)h) == 0 &&
             (n == 0 || CRYPTO_gcm128_decrypt_ctr32(c->gcm, pkt + h, pkt + h, n, gcm_ctr32) == 0) &&
             CRYPTO_gcm128_finish(c->gcm, pkt + body, GCM_TAG) == 0;
    if (!ok) {
      /* the payload was decrypted before the tag was checked: encrypt it back (the data's counters start at J0 + 1) */
      if (n > 0) {
        uint8_t tail[16];
        size_t full = n / 16 * 16;
        wr32(iv + 12, 2);
        if (full > 0) gcm_ctr32(pkt + h, pkt + h, full / 16, c, iv);
        if (n > full) {
          memset(tail, 0, sizeof tail);
          memcpy(tail, pkt + h + full, n - full);
          wr32(iv + 12, 2 + (uint32_t)(full / 16));
          gcm_ctr32(tail, tail, 1, c, iv);
          memcpy(pkt + h + full, tail, n - full);
        }
      }
      c->counters.auth_failures++;
      return FERRY_SRTP_ERR_AUTH;
    }
  } else {
    uint8_t mac[20];
    uint8_t iv[16];
    hmac_sha1(c, pkt, body, roc, mac);
    unsigned diff = 0;
    for (int i = 0; i < HMAC_TAG; i++) diff |= (unsigned)(mac[i] ^ pkt[body + i]);
    if (diff != 0) {
      c->counters.auth_failures++;
      return FERRY_SRTP_ERR_AUTH;
    }
    aes_cm_iv(c, ssrc, roc, seq, iv);
    if (!ctr_xor(c, iv, pkt + h, n)) {
      c->counters.auth_failures++; /* OpenSSL refused (not expected): the packet is not delivered */
      return FERRY_SRTP_ERR_AUTH;
    }
  }
  if (w == NULL) w = add_recv(c, ssrc);
  window_commit(w, index);
  c->last_recv = (int)(w - c->recv);
  c->counters.unprotected++;
  *lenp = body;
  return FERRY_SRTP_OK;
}

int ferry_srtp_protect_rtp(void *vctx, uint8_t *pkt, size_t *lenp, size_t cap) {
  ferry_srtp_ctx *c = vctx;
  size_t len = *lenp;
  if (len > FERRY_SRTP_MAX_PACKET) return FERRY_SRTP_ERR_TOO_LONG;
  long h = rtp_header_length(pkt, len);
  if (h < 0) return FERRY_SRTP_ERR_MALFORMED;
  if (cap < len + c->tag_len) return FERRY_SRTP_ERR_SPACE;
  uint32_t ssrc = rd32(pkt + 8);
  uint16_t seq = rd16(pkt + 2);
  uint32_t roc = next_send_roc(c, ssrc, seq);
  size_t n = len - (size_t)h;
  if (c->aead) {
    uint8_t iv[12];
    gcm_iv(c, ssrc, roc, seq, iv);
    CRYPTO_gcm128_setiv(c->gcm, iv, 12);
    if (CRYPTO_gcm128_aad(c->gcm, pkt, (size_t)h) != 0 ||
        (n > 0 && CRYPTO_gcm128_encrypt_ctr32(c->gcm, pkt + h, pkt + h, n, gcm_ctr32) != 0))
      return FERRY_SRTP_ERR_MALFORMED; /* OpenSSL refused (not expected) */
    CRYPTO_gcm128_tag(c->gcm, pkt + len, GCM_TAG);
  } else {
    uint8_t iv[16];
    uint8_t mac[20];
    aes_cm_iv(c, ssrc, roc, seq, iv);
    if (!ctr_xor(c, iv, pkt + h, n)) return FERRY_SRTP_ERR_MALFORMED;
    hmac_sha1(c, pkt, len, roc, mac);
    memcpy(pkt + len, mac, HMAC_TAG);
  }
  *lenp = len + c->tag_len;
  return FERRY_SRTP_OK;
}

/* ---- state ---------------------------------------------------------------------------------- */

size_t ferry_srtp_export_recv(const ferry_srtp_ctx *c, ferry_srtp_recv_state *out, size_t max) {
  size_t n = 0;
  for (int k = 0; k < c->nrecv; k++) {
    const recv_stream *w = &c->recv[k];
    if (w->highest < 0) continue;
    if (n < max) {
      ferry_srtp_recv_state *s = &out[n];
      s->ssrc = w->ssrc;
      s->highest = w->highest;
      memset(s->window, 0, sizeof s->window);
      for (int i = 0; i < FERRY_SRTP_WINDOW && w->highest - i >= 0; i++) {
        unsigned slot = (unsigned)((w->highest - i) & 127);
        if ((w->seen[slot >> 6] >> (slot & 63)) & 1) s->window[i >> 3] |= (uint8_t)(1u << (i & 7));
      }
    }
    n++;
  }
  return n;
}

size_t ferry_srtp_export_send(const ferry_srtp_ctx *c, ferry_srtp_send_state *out, size_t max) {
  size_t n = 0;
  for (int k = 0; k < c->nsend; k++, n++) {
    if (n < max) {
      out[n].ssrc = c->send[k].ssrc;
      out[n].roc = c->send[k].roc;
      out[n].last_seq = c->send[k].last_seq;
    }
  }
  return n;
}

int ferry_srtp_import_recv(ferry_srtp_ctx *c, const ferry_srtp_recv_state *st) {
  if (st->highest < 0 || st->highest >= ((int64_t)1 << 48)) return -1;
  recv_stream *w = find_recv(c, st->ssrc);
  if (w == NULL) w = add_recv(c, st->ssrc);
  w->highest = st->highest;
  w->seen[0] = 0;
  w->seen[1] = 0;
  for (int i = 0; i < FERRY_SRTP_WINDOW && st->highest - i >= 0; i++) {
    if ((st->window[i >> 3] >> (i & 7)) & 1) {
      unsigned slot = (unsigned)((st->highest - i) & 127);
      w->seen[slot >> 6] |= (uint64_t)1 << (slot & 63);
    }
  }
  return 0;
}

int ferry_srtp_import_send(ferry_srtp_ctx *c, const ferry_srtp_send_state *st) {
  send_stream *s = find_send(c, st->ssrc);
  if (s == NULL) s = add_send(c, st->ssrc);
  s->roc = st->roc;
  s->last_seq = st->last_seq;
  return 0;
}

/* ---- N-API ---------------------------------------------------------------------------------- */

static const napi_type_tag SRTP_TAG = {0x6665727279737274ULL, 0x7028736f75726365ULL};

#define NAPI_OK(call)                                                                                               \
  do {                                                                                                              \
    if ((call) != napi_ok) return NULL;                                                                             \
  } while (0)

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

ferry_srtp_ctx *ferry_srtp_from_value(napi_env env, napi_value value) {
  napi_valuetype t;
  bool tagged = false;
  void *data = NULL;
  if (napi_typeof(env, value, &t) != napi_ok || t != napi_external) return NULL;
  if (napi_check_object_type_tag(env, value, &SRTP_TAG, &tagged) != napi_ok || !tagged) return NULL;
  if (napi_get_value_external(env, value, &data) != napi_ok) return NULL;
  return data;
}

static void finalize_ctx(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  ferry_srtp_release(data);
}

/* bytes of a Buffer / Uint8Array argument */
static int get_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  bool is_ta = false;
  napi_typedarray_type type;
  size_t length;
  void *p;
  napi_value ab;
  size_t off;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta) return 0;
  if (napi_get_typedarray_info(env, v, &type, &length, &p, &ab, &off) != napi_ok || type != napi_uint8_array) return 0;
  *data = p;
  *len = length;
  return 1;
}

static int get_ctx_arg(napi_env env, napi_value v, ferry_srtp_ctx **out) {
  *out = ferry_srtp_from_value(env, v);
  return *out != NULL;
}

/* srtpCreate(profileId, encryptionKey, authKey, salt) -> handle */
static napi_value js_create(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  int32_t profile;
  uint8_t *k, *a, *s;
  size_t kl, al, sl;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4 || napi_get_value_int32(env, argv[0], &profile) != napi_ok) return throw_type(env, "srtpCreate(profileId, encryptionKey, authKey, salt)");
  if (!get_bytes(env, argv[1], &k, &kl) || !get_bytes(env, argv[2], &a, &al) || !get_bytes(env, argv[3], &s, &sl))
    return throw_type(env, "srtpCreate: keys must be Uint8Arrays");
  ferry_srtp_ctx *c = ferry_srtp_create(profile, k, kl, a, al, s, sl);
  if (c == NULL) return throw_type(env, "srtpCreate: unknown profile or wrong key/auth key/salt lengths for it");
  napi_value ext;
  if (napi_create_external(env, c, finalize_ctx, NULL, &ext) != napi_ok) {
    ferry_srtp_release(c);
    return NULL;
  }
  NAPI_OK(napi_type_tag_object(env, ext, &SRTP_TAG));
  return ext;
}

/* srtpUnprotectRtp(handle, buf, length?) / srtpProtectRtp(handle, buf, length): new length, or a negative code */
static napi_value js_packet(napi_env env, napi_callback_info info, int protect) {
  size_t argc = 3;
  napi_value argv[3];
  ferry_srtp_ctx *c;
  uint8_t *p;
  size_t cap;
  napi_value out;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || !get_ctx_arg(env, argv[0], &c)) return throw_type(env, "expected an SRTP context handle");
  if (!get_bytes(env, argv[1], &p, &cap)) return throw_type(env, "expected a Uint8Array");
  size_t len = cap;
  if (argc >= 3) {
    napi_valuetype t;
    NAPI_OK(napi_typeof(env, argv[2], &t));
    if (t != napi_undefined) {
      double d;
      if (napi_get_value_double(env, argv[2], &d) != napi_ok || !(d >= 0) || d > (double)cap || d != (double)(size_t)d)
        return throw_type(env, "length must be an integer within the buffer");
      len = (size_t)d;
    }
  }
  int rc = protect ? ferry_srtp_protect_rtp(c, p, &len, cap) : ferry_srtp_unprotect_rtp(c, p, &len);
  NAPI_OK(napi_create_double(env, rc == FERRY_SRTP_OK ? (double)len : (double)rc, &out));
  return out;
}

static napi_value js_unprotect(napi_env env, napi_callback_info info) { return js_packet(env, info, 0); }
static napi_value js_protect(napi_env env, napi_callback_info info) { return js_packet(env, info, 1); }

static napi_status set_double(napi_env env, napi_value obj, const char *name, double v) {
  napi_value n;
  napi_status st = napi_create_double(env, v, &n);
  if (st != napi_ok) return st;
  return napi_set_named_property(env, obj, name, n);
}

static napi_value js_counters(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], obj;
  ferry_srtp_ctx *c;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !get_ctx_arg(env, argv[0], &c)) return throw_type(env, "expected an SRTP context handle");
  NAPI_OK(napi_create_object(env, &obj));
  NAPI_OK(set_double(env, obj, "unprotected", c->counters.unprotected));
  NAPI_OK(set_double(env, obj, "authFailures", c->counters.auth_failures));
  NAPI_OK(set_double(env, obj, "replays", c->counters.replays));
  NAPI_OK(set_double(env, obj, "malformed", c->counters.malformed));
  return obj;
}

static napi_value js_overhead(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  ferry_srtp_ctx *c;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !get_ctx_arg(env, argv[0], &c)) return throw_type(env, "expected an SRTP context handle");
  NAPI_OK(napi_create_uint32(env, (uint32_t)c->tag_len, &out));
  return out;
}

static napi_value js_live(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  NAPI_OK(napi_create_int32(env, atomic_load(&live_contexts), &out));
  return out;
}

/* srtpExportState(handle) -> { receive: [{ ssrc, highestIndex, window: Buffer(16) }], send: [{ ssrc, roc, lastSeq }] } */
static napi_value js_export(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], obj, recv, send;
  ferry_srtp_ctx *c;
  ferry_srtp_recv_state rs[FERRY_SRTP_MAX_STREAMS];
  ferry_srtp_send_state ss[FERRY_SRTP_MAX_STREAMS];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !get_ctx_arg(env, argv[0], &c)) return throw_type(env, "expected an SRTP context handle");
  size_t nr = ferry_srtp_export_recv(c, rs, FERRY_SRTP_MAX_STREAMS);
  size_t ns = ferry_srtp_export_send(c, ss, FERRY_SRTP_MAX_STREAMS);
  NAPI_OK(napi_create_object(env, &obj));
  NAPI_OK(napi_create_array_with_length(env, nr, &recv));
  for (size_t i = 0; i < nr; i++) {
    napi_value e, buf;
    void *bp;
    NAPI_OK(napi_create_object(env, &e));
    NAPI_OK(set_double(env, e, "ssrc", rs[i].ssrc));
    NAPI_OK(set_double(env, e, "highestIndex", (double)rs[i].highest));
    NAPI_OK(napi_create_buffer_copy(env, 16, rs[i].window, &bp, &buf));
    NAPI_OK(napi_set_named_property(env, e, "window", buf));
    NAPI_OK(napi_set_element(env, recv, (uint32_t)i, e));
  }
  NAPI_OK(napi_create_array_with_length(env, ns, &send));
  for (size_t i = 0; i < ns; i++) {
    napi_value e;
    NAPI_OK(napi_create_object(env, &e));
    NAPI_OK(set_double(env, e, "ssrc", ss[i].ssrc));
    NAPI_OK(set_double(env, e, "roc", ss[i].roc));
    NAPI_OK(set_double(env, e, "lastSeq", ss[i].last_seq));
    NAPI_OK(napi_set_element(env, send, (uint32_t)i, e));
  }
  NAPI_OK(napi_set_named_property(env, obj, "receive", recv));
  NAPI_OK(napi_set_named_property(env, obj, "send", send));
  return obj;
}

static int get_num(napi_env env, napi_value obj, const char *name, double min, double max, double *out) {
  napi_value v;
  double d;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok) return 0;
  if (napi_get_value_double(env, v, &d) != napi_ok) return 0;
  if (!(d >= min && d <= max) || d != (double)(int64_t)d) return 0;
  *out = d;
  return 1;
}

static int get_array(napi_env env, napi_value obj, const char *name, napi_value *arr, uint32_t *len) {
  bool is_array = false;
  napi_valuetype t;
  if (napi_get_named_property(env, obj, name, arr) != napi_ok) return 0;
  if (napi_typeof(env, *arr, &t) != napi_ok) return 0;
  if (t == napi_undefined) {
    *len = 0;
    return 1;
  }
  if (napi_is_array(env, *arr, &is_array) != napi_ok || !is_array) return 0;
  return napi_get_array_length(env, *arr, len) == napi_ok;
}

/* srtpImportState(handle, { receive?, send? }): each entry sets that SSRC's state (validated first, all or nothing) */
static napi_value js_import(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], recv, send;
  ferry_srtp_ctx *c;
  uint32_t nr, ns;
  ferry_srtp_recv_state rs[FERRY_SRTP_MAX_STREAMS];
  ferry_srtp_send_state ss[FERRY_SRTP_MAX_STREAMS];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || !get_ctx_arg(env, argv[0], &c)) return throw_type(env, "expected an SRTP context handle");
  napi_valuetype t;
  NAPI_OK(napi_typeof(env, argv[1], &t));
  if (t != napi_object) return throw_type(env, "srtpImportState: state must be an object");
  if (!get_array(env, argv[1], "receive", &recv, &nr) || !get_array(env, argv[1], "send", &send, &ns))
    return throw_type(env, "srtpImportState: receive/send must be arrays");
  if (nr > FERRY_SRTP_MAX_STREAMS || ns > FERRY_SRTP_MAX_STREAMS) return throw_type(env, "srtpImportState: more than 64 streams");
  for (uint32_t i = 0; i < nr; i++) {
    napi_value e, w;
    double ssrc, highest;
    uint8_t *wp;
    size_t wl;
    NAPI_OK(napi_get_element(env, recv, i, &e));
    NAPI_OK(napi_typeof(env, e, &t));
    if (t != napi_object || !get_num(env, e, "ssrc", 0, 4294967295.0, &ssrc) ||
        !get_num(env, e, "highestIndex", 0, 281474976710655.0, &highest) ||
        napi_get_named_property(env, e, "window", &w) != napi_ok || !get_bytes(env, w, &wp, &wl) || wl != 16)
      return throw_type(env, "srtpImportState: receive entries are { ssrc, highestIndex (0 .. 2^48-1), window: 16 bytes }");
    rs[i].ssrc = (uint32_t)ssrc;
    rs[i].highest = (int64_t)highest;
    memcpy(rs[i].window, wp, 16);
  }
  for (uint32_t i = 0; i < ns; i++) {
    napi_value e;
    double ssrc, roc, seq;
    NAPI_OK(napi_get_element(env, send, i, &e));
    NAPI_OK(napi_typeof(env, e, &t));
    if (t != napi_object || !get_num(env, e, "ssrc", 0, 4294967295.0, &ssrc) || !get_num(env, e, "roc", 0, 4294967295.0, &roc) ||
        !get_num(env, e, "lastSeq", 0, 65535, &seq))
      return throw_type(env, "srtpImportState: send entries are { ssrc, roc (0 .. 2^32-1), lastSeq (0 .. 65535) }");
    ss[i].ssrc = (uint32_t)ssrc;
    ss[i].roc = (uint32_t)roc;
    ss[i].last_seq = (uint16_t)seq;
  }
  for (uint32_t i = 0; i < nr; i++) ferry_srtp_import_recv(c, &rs[i]);
  for (uint32_t i = 0; i < ns; i++) ferry_srtp_import_send(c, &ss[i]);
  napi_value undef;
  NAPI_OK(napi_get_undefined(env, &undef));
  return undef;
}

/* the OpenSSL functions this file calls, all resolved from the running node binary */
static const char *const OPENSSL_SYMBOLS[] = {
    "EVP_CIPHER_CTX_new", "EVP_CIPHER_CTX_free", "EVP_CIPHER_CTX_ctrl", "EVP_CIPHER_CTX_set_padding",
    "EVP_CipherInit_ex",  "EVP_CipherUpdate",    "EVP_CipherFinal_ex",  "EVP_aes_128_ecb",
    "SHA1_Init",          "SHA1_Update",         "SHA1_Final",          "CRYPTO_gcm128_new",
    "CRYPTO_gcm128_release", "CRYPTO_gcm128_setiv", "CRYPTO_gcm128_aad",   "CRYPTO_gcm128_encrypt_ctr32",
    "CRYPTO_gcm128_decrypt_ctr32", "CRYPTO_gcm128_finish", "CRYPTO_gcm128_tag",
};

napi_status ferry_srtp_register(napi_env env, napi_value exports) {
  for (size_t i = 0; i < sizeof OPENSSL_SYMBOLS / sizeof OPENSSL_SYMBOLS[0]; i++) {
    if (dlsym(RTLD_DEFAULT, OPENSSL_SYMBOLS[i]) == NULL) {
      char msg[160];
      snprintf(msg, sizeof msg, "ferry native SRTP: this Node does not export OpenSSL's %s", OPENSSL_SYMBOLS[i]);
      napi_throw_error(env, "ERR_FERRY_NATIVE_OPENSSL", msg);
      return napi_pending_exception;
    }
  }
  napi_property_descriptor props[] = {
      {"srtpCreate", NULL, js_create, NULL, NULL, NULL, napi_enumerable, NULL},
      {"srtpUnprotectRtp", NULL, js_unprotect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"srtpProtectRtp", NULL, js_protect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"srtpCounters", NULL, js_counters, NULL, NULL, NULL, napi_enumerable, NULL},
      {"srtpExportState", NULL, js_export, NULL, NULL, NULL, napi_enumerable, NULL},
      {"srtpImportState", NULL, js_import, NULL, NULL, NULL, napi_enumerable, NULL},
      {"srtpOverhead", NULL, js_overhead, NULL, NULL, NULL, napi_enumerable, NULL},
      {"srtpLiveContexts", NULL, js_live, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
