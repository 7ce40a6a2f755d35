/*
 * ferry native SRTP (RTP only; SRTCP stays in JavaScript): RFC 3711 AES_CM_128_HMAC_SHA1_80 and RFC 7714
 * AEAD_AES_128_GCM with the same behaviour as src/media/srtp/srtp-context.ts: per-SSRC rollover counter
 * with RFC 3711 Appendix A index estimation, a 128-packet replay window checked before authentication and
 * committed only after it, constant-time tag check, decrypt in place (nothing changed on refusal), protect
 * appends the trailer (10 or 16 bytes), at most FERRY_SRTP_MAX_STREAMS SSRCs per direction (the table is
 * emptied when a new SSRC would exceed it, as the JavaScript does).
 *
 * Crypto: Node's own OpenSSL, one persistent AES-128-ECB EVP_CIPHER_CTX per context making the counter-mode
 * keystream (AES-CM, and GCM's counters); GCM's GHASH and tag by OpenSSL's CRYPTO_gcm128_* over that cipher;
 * HMAC-SHA1 from precomputed inner/outer SHA-1 states. No cipher re-initialisation, no allocation per packet.
 * Single-threaded per context: a context belongs to one JavaScript thread.
 */
#ifndef FERRY_SRTP_H
#define FERRY_SRTP_H

#include <stddef.h>
#include <stdint.h>
#include <node_api.h>

/* profiles, by their DTLS-SRTP protection profile ids (RFC 5764 §4.1.2, RFC 7714 §14.2) */
#define FERRY_SRTP_AES_CM_128_HMAC_SHA1_80 0x0001
#define FERRY_SRTP_AEAD_AES_128_GCM 0x0007

/* results: 0 = ok, negative = refused */
#define FERRY_SRTP_OK 0
#define FERRY_SRTP_ERR_MALFORMED (-1) /* not an RTP v2 packet whose header (CSRCs, extension) and trailer fit */
#define FERRY_SRTP_ERR_REPLAY (-2)    /* index already seen, older than the window, or before index 0 */
#define FERRY_SRTP_ERR_AUTH (-3)      /* tag mismatch */
#define FERRY_SRTP_ERR_SPACE (-4)     /* protect: cap < len + trailer */
#define FERRY_SRTP_ERR_TOO_LONG (-5)  /* longer than FERRY_SRTP_MAX_PACKET */

#define FERRY_SRTP_MAX_STREAMS 64
#define FERRY_SRTP_WINDOW 128
/* the largest packet either call accepts (protected length for unprotect, plain length for protect) */
#define FERRY_SRTP_MAX_PACKET 65536

typedef struct ferry_srtp_ctx ferry_srtp_ctx;

typedef struct {
  double unprotected; /* protected packets accepted */
  double auth_failures;
  double replays;
  double malformed;
} ferry_srtp_counters;

/* Receive state of one SSRC: the highest accepted 48-bit index and the window below it:
 * bit i (byte i >> 3, bit i & 7, least significant first) set = index (highest - i) was accepted. */
typedef struct {
  uint32_t ssrc;
  int64_t highest;
  uint8_t window[16];
} ferry_srtp_recv_state;

/* Send state of one SSRC (RFC 3711 §3.3.1): the sender's ROC and the highest sequence number sent. */
typedef struct {
  uint32_t ssrc;
  uint32_t roc;
  uint16_t last_seq;
} ferry_srtp_send_state;

/*
 * A context from one direction's RTP session keys (the SessionKeys the JavaScript derives):
 * enc_key 16 bytes, auth_key 20 bytes (AES-CM) or 0 (GCM), salt 14 (AES-CM) or 12 (GCM).
 * Returns NULL on wrong lengths/profile or when OpenSSL refuses. Reference count 1.
 */
ferry_srtp_ctx *ferry_srtp_create(int profile, const uint8_t *enc_key, size_t enc_len, const uint8_t *auth_key,
                                  size_t auth_len, const uint8_t *salt, size_t salt_len);
/* Reference counting: a route holding a context retains it; the JavaScript handle's finalizer releases its own. */
void ferry_srtp_retain(ferry_srtp_ctx *ctx);
void ferry_srtp_release(ferry_srtp_ctx *ctx);

/* In place: on success *len becomes the plain length (trailer removed). On refusal nothing in pkt or
 * in the context's state changes except the counter of the reason. */
int ferry_srtp_unprotect_rtp(void *ctx, uint8_t *pkt, size_t *len);
/* In place: pkt[0, *len) is a plain RTP packet with cap bytes of room; on success *len grows by the trailer.
 * Refusals (malformed, space, too long) leave pkt and the state unchanged and are not counted. */
int ferry_srtp_protect_rtp(void *ctx, uint8_t *pkt, size_t *len, size_t cap);

size_t ferry_srtp_overhead(const ferry_srtp_ctx *ctx);
int ferry_srtp_profile(const ferry_srtp_ctx *ctx);
void ferry_srtp_get_counters(const ferry_srtp_ctx *ctx, ferry_srtp_counters *out);

/* State export: copies up to max entries, returns how many there are. */
size_t ferry_srtp_export_recv(const ferry_srtp_ctx *ctx, ferry_srtp_recv_state *out, size_t max);
size_t ferry_srtp_export_send(const ferry_srtp_ctx *ctx, ferry_srtp_send_state *out, size_t max);
/* State import: sets (adds or replaces) that SSRC's state. 0 ok, -1 invalid (highest outside 0 .. 2^48-1). */
int ferry_srtp_import_recv(ferry_srtp_ctx *ctx, const ferry_srtp_recv_state *st);
int ferry_srtp_import_send(ferry_srtp_ctx *ctx, const ferry_srtp_send_state *st);

/*
 * N-API: adds srtpCreate, srtpProtectRtp, srtpUnprotectRtp, srtpCounters, srtpExportState, srtpImportState,
 * srtpOverhead, srtpLiveContexts to `exports`. Called from the addon's module init. Throws (and returns
 * napi_pending_exception) when Node's OpenSSL does not export a function this file uses.
 */
napi_status ferry_srtp_register(napi_env env, napi_value exports);

/* The context behind a handle made by srtpCreate (type-tagged external), or NULL (no exception thrown). */
ferry_srtp_ctx *ferry_srtp_from_value(napi_env env, napi_value value);

#endif
