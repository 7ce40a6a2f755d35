/*
 * ferry media's native packet path: the forwarder core (relay.c) and its N-API face (addon.c).
 * docs/native-relay.md describes the design; src/media/native/native-relay.ts is the JavaScript wrapper.
 */
#ifndef FERRY_RELAY_H
#define FERRY_RELAY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Indices of the route state array (a Float64Array on the JavaScript side, native-relay.ts STATE). */
enum {
  ST_RW_LAST_IN_SSRC = 0,
  ST_RW_SEQ_DELTA,
  ST_RW_TS_DELTA,
  ST_RW_LAST_OUT_SEQ,
  ST_RW_LAST_OUT_TS,
  ST_RW_LAST_OUT_AT,
  ST_RW_STARTED,
  ST_RS_SSRC, /* 7 */
  ST_RS_BASE_SEQ,
  ST_RS_MAX_SEQ,
  ST_RS_BAD_SEQ,
  ST_RS_CYCLES,
  ST_RS_RECEIVED,
  ST_RS_EXPECTED_PRIOR,
  ST_RS_RECEIVED_PRIOR,
  ST_RS_TRANSIT,
  ST_RS_JITTER,
  ST_RS_HAVE_TRANSIT, /* 17 */
  ST_IN_PACKETS, /* 18: increments since the last sync from here on */
  ST_IN_BYTES,
  ST_IN_LAST_AT,
  ST_RTP_RECEIVED,
  ST_SOURCE_CHANGES,
  ST_SRTP_REFUSED,
  ST_OUT_PACKETS,
  ST_OUT_BYTES,
  ST_OUT_PAYLOAD,
  ST_OUT_LAST_AT,
  ST_OUT_LAST_TS,
  ST_FLOW_OUT,
  ST_FLOW_IN,
  ST_DROPPED_NO_CODEC,
  ST_FORWARDED,
  ST_SEND_ERRORS,
  ST_COUNT /* 34 */
};

#define FERRY_PT_UNKNOWN 255
#define FERRY_PT_NOT_NEGOTIATED 254

typedef struct ferry_rewriter {
  int64_t last_in_ssrc; /* -1 = none */
  uint32_t seq_delta;
  uint32_t ts_delta;
  uint32_t last_out_seq;
  uint32_t last_out_ts;
  double last_out_at_ms;
  int started;
} ferry_rewriter;

typedef struct ferry_reception {
  int64_t ssrc; /* -1 = none */
  uint32_t base_seq;
  uint32_t max_seq;
  uint32_t bad_seq;
  double cycles;
  double received;
  double expected_prior;
  double received_prior;
  int32_t transit;
  double jitter_units;
  int have_transit;
  uint32_t clock_rate;
} ferry_reception;

/* Increments since the last sync (times absolute, NaN = none since). */
typedef struct ferry_deltas {
  double in_packets, in_bytes, in_last_at, rtp_received, source_changes, srtp_refused;
  double out_packets, out_bytes, out_payload, out_last_at, out_last_ts;
  double flow_out, flow_in, dropped_no_codec, forwarded, send_errors;
} ferry_deltas;

typedef struct ferry_route {
  int in_fd;
  int out_fd;
  /* the out socket's identity when the route was installed (fstat st_dev, st_ino): the fd number is only
     used while it still names that socket (addon.c out_ok) */
  uint64_t out_dev, out_ino;
  uint64_t out_checked; /* the relay's epoch when the identity was last confirmed */
  int out_lost;         /* the out fd no longer names the out socket: the route forwards nothing more */
  int has_peer;
  struct sockaddr_storage peer;
  socklen_t peer_len;
  int has_dest;
  struct sockaddr_storage dest;
  socklen_t dest_len;
  uint32_t out_ssrc;
  uint8_t pt_map[128];
  uint32_t clock_rates[128];
  void *srtp_in;
  void *srtp_out;
  ferry_rewriter rw;
  ferry_reception rs;
  ferry_deltas d;
  int notify_pending;
} ferry_route;

/* Pure per-packet pieces (relay.c), also used by the tests through addon.c. */
void ferry_rewrite(ferry_rewriter *rw, uint8_t *p, uint8_t pt, uint32_t clock_rate, uint32_t out_ssrc, double now);
/* Returns 1 when the source changed SSRC (counters restarted). */
int ferry_reception_on_packet(ferry_reception *rs, uint32_t ssrc, uint32_t seq, uint32_t ts, double arrival_ms);
void ferry_reception_reset(ferry_reception *rs);

void ferry_route_import(ferry_route *r, const double *st);
void ferry_route_export(ferry_route *r, double *st, int reset_deltas);
void ferry_deltas_reset(ferry_deltas *d);

/* Outcome of one datagram on a routed socket. */
enum { FERRY_FWD_SEND = 0, FERRY_FWD_DROP = 1, FERRY_FWD_PASS = 2 };
/* Checks and transforms `p` in place (len updated, cap = buffer size); FERRY_FWD_SEND: send it from r->out_fd. */
int ferry_route_packet(ferry_route *r, uint8_t *p, size_t *len, size_t cap, const struct sockaddr *src, socklen_t src_len, double now);

int ferry_sockaddr_equal(const struct sockaddr *a, const struct sockaddr *b);

#endif
