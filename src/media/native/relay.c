/*
 * ferry media's native forwarder, per-packet part: source filter, RTP checks, SRTP (through srtp.c),
 * payload type map, counters, RFC 3550 reception statistics and the stream rewriter. No allocation, no
 * system calls: addon.c reads and sends the datagrams.
 *
 * SRTP (srtp.c's side of the contract): addon.c's module init calls ferry_srtp_register(env, exports);
 * route() takes srtpIn/srtpOut handles through ferry_srtp_from_value and holds them with ferry_srtp_retain
 * until the route goes (ferry_srtp_release); per packet relay.c calls
 * ferry_srtp_unprotect_rtp / ferry_srtp_protect_rtp of srtp.c (srtp.h), any non-zero result = refused.
 * A route's contexts come from JavaScript handles made by srtp.c's srtpCreate.
 *
 * Semantics are those of the JavaScript relay, line for line:
 *  - the rewriter of src/media/relay/rtp-stream-rewriter.ts (SSRC change -> continuity + marker),
 *  - the reception statistics of src/media/rtcp/reception-statistics.ts (A.1 without probation, A.3, A.8),
 *  - the counters of RtpLeg / RtcpSession / MediaElement (src/media/native/offload-types.ts).
 */
#include <math.h>
#include <string.h>
#include <netinet/in.h>

#include "relay.h"
#include "srtp.h"

#define SEQ_MOD 65536u
#define MAX_DROPOUT 3000u
#define MAX_MISORDER 100u

static inline uint32_t rd16(const uint8_t *p) { return ((uint32_t)p[0] << 8) | p[1]; }
static inline uint32_t rd32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void wr16(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static inline void wr32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* JavaScript's Math.round for the values used here (half rounds up). */
static inline double js_round(double x) { return floor(x + 0.5); }

/* ToUint32 of an integral double (NaN and infinities, which JavaScript's ToUint32 also makes 0, give 0: a
 * state array from JavaScript is not trusted to hold only sane numbers). */
static inline uint32_t to_u32(double x) {
  if (!isfinite(x)) return 0;
  double m = fmod(x, 4294967296.0);
  if (m < 0) m += 4294967296.0;
  return (uint32_t)m;
}

void ferry_rewrite(ferry_rewriter *rw, uint8_t *p, uint8_t pt, uint32_t clock_rate, uint32_t out_ssrc, double now) {
  uint32_t in_ssrc = rd32(p + 8);
  uint32_t in_seq = rd16(p + 2);
  uint32_t in_ts = rd32(p + 4);
  uint8_t marker = p[1] & 0x80;
  if ((int64_t)in_ssrc != rw->last_in_ssrc) {
    if (rw->started) {
      double elapsed = js_round(((now - rw->last_out_at_ms) * (double)clock_rate) / 1000.0);
      if (!(elapsed >= 1)) elapsed = 1;
      rw->seq_delta = (rw->last_out_seq + 1 - in_seq) & 0xffff;
      rw->ts_delta = rw->last_out_ts + to_u32(elapsed) - in_ts;
      marker = 0x80;
    }
    rw->last_in_ssrc = in_ssrc;
    rw->started = 1;
  }
  uint32_t out_seq = (in_seq + rw->seq_delta) & 0xffff;
  uint32_t out_ts = in_ts + rw->ts_delta;
  p[1] = (uint8_t)(marker | (pt & 0x7f));
  wr16(p + 2, out_seq);
  wr32(p + 4, out_ts);
  wr32(p + 8, out_ssrc);
  rw->last_out_seq = out_seq;
  rw->last_out_ts = out_ts;
  rw->last_out_at_ms = now;
}

static void reception_restart(ferry_reception *rs, uint32_t seq) {
  rs->base_seq = seq;
  rs->max_seq = seq;
  rs->bad_seq = SEQ_MOD + 1;
  rs->cycles = 0;
  rs->received = 0;
  rs->expected_prior = 0;
  rs->received_prior = 0;
}

void ferry_reception_reset(ferry_reception *rs) {
  uint32_t rate = rs->clock_rate;
  memset(rs, 0, sizeof(*rs));
  rs->ssrc = -1;
  rs->bad_seq = SEQ_MOD + 1;
  rs->clock_rate = rate;
}

/* RFC 3550 A.1 update_seq without probation; 0 = not counted. */
static int update_seq(ferry_reception *rs, uint32_t seq) {
  uint32_t udelta = (seq - rs->max_seq + SEQ_MOD) % SEQ_MOD;
  if (udelta < MAX_DROPOUT) {
    if (seq < rs->max_seq) rs->cycles += SEQ_MOD;
    rs->max_seq = seq;
  } else if (udelta <= SEQ_MOD - MAX_MISORDER) {
    if (seq == rs->bad_seq) {
      reception_restart(rs, seq);
    } else {
      rs->bad_seq = (seq + 1) % SEQ_MOD;
      return 0;
    }
  }
  return 1;
}

int ferry_reception_on_packet(ferry_reception *rs, uint32_t ssrc, uint32_t seq, uint32_t ts, double arrival_ms) {
  int changed = 0;
  if ((int64_t)ssrc != rs->ssrc) {
    rs->ssrc = ssrc;
    reception_restart(rs, seq);
    rs->have_transit = 0;
    rs->jitter_units = 0;
    changed = 1;
  } else if (!update_seq(rs, seq)) {
    return 0;
  }
  rs->received += 1;
  double arrival = fmod(floor((arrival_ms * (double)rs->clock_rate) / 1000.0), 4294967296.0);
  if (!isfinite(arrival)) arrival = 0; /* a NaN or infinite arrival time (the test entry point takes any number) */
  int32_t transit = (int32_t)(uint32_t)(int64_t)(arrival - (double)ts);
  if (rs->have_transit) {
    int32_t d = (int32_t)((uint32_t)transit - (uint32_t)rs->transit);
    double ad = fabs((double)d);
    rs->jitter_units += (ad - rs->jitter_units) / 16.0;
  }
  rs->transit = transit;
  rs->have_transit = 1;
  return changed;
}

void ferry_deltas_reset(ferry_deltas *d) {
  memset(d, 0, sizeof(*d));
  d->in_last_at = NAN;
  d->out_last_at = NAN;
}

/* An SSRC from the state array, or -1 (none) for anything that is not one (negative, NaN, too large). */
static inline int64_t ssrc_of(double x) { return x >= 0 && x < 4294967296.0 ? (int64_t)x : -1; }

/* A count or time from the state array; NaN and infinities are taken as 0 (counts) or left NaN (times). */
static inline double finite_or(double x, double otherwise) { return isfinite(x) ? x : otherwise; }

void ferry_route_import(ferry_route *r, const double *st) {
  r->rw.last_in_ssrc = ssrc_of(st[ST_RW_LAST_IN_SSRC]);
  r->rw.seq_delta = to_u32(st[ST_RW_SEQ_DELTA]) & 0xffff;
  r->rw.ts_delta = to_u32(st[ST_RW_TS_DELTA]);
  r->rw.last_out_seq = to_u32(st[ST_RW_LAST_OUT_SEQ]) & 0xffff;
  r->rw.last_out_ts = to_u32(st[ST_RW_LAST_OUT_TS]);
  r->rw.last_out_at_ms = finite_or(st[ST_RW_LAST_OUT_AT], NAN);
  r->rw.started = st[ST_RW_STARTED] != 0;
  r->rs.ssrc = ssrc_of(st[ST_RS_SSRC]);
  r->rs.base_seq = to_u32(st[ST_RS_BASE_SEQ]);
  r->rs.max_seq = to_u32(st[ST_RS_MAX_SEQ]);
  r->rs.bad_seq = to_u32(st[ST_RS_BAD_SEQ]);
  r->rs.cycles = finite_or(st[ST_RS_CYCLES], 0);
  r->rs.received = finite_or(st[ST_RS_RECEIVED], 0);
  r->rs.expected_prior = finite_or(st[ST_RS_EXPECTED_PRIOR], 0);
  r->rs.received_prior = finite_or(st[ST_RS_RECEIVED_PRIOR], 0);
  r->rs.transit = (int32_t)to_u32(st[ST_RS_TRANSIT]);
  r->rs.jitter_units = finite_or(st[ST_RS_JITTER], 0);
  r->rs.have_transit = st[ST_RS_HAVE_TRANSIT] != 0;
  ferry_deltas_reset(&r->d);
}

void ferry_route_export(ferry_route *r, double *st, int reset_deltas) {
  st[ST_RW_LAST_IN_SSRC] = (double)r->rw.last_in_ssrc;
  st[ST_RW_SEQ_DELTA] = r->rw.seq_delta;
  st[ST_RW_TS_DELTA] = r->rw.ts_delta;
  st[ST_RW_LAST_OUT_SEQ] = r->rw.last_out_seq;
  st[ST_RW_LAST_OUT_TS] = r->rw.last_out_ts;
  st[ST_RW_LAST_OUT_AT] = r->rw.last_out_at_ms;
  st[ST_RW_STARTED] = r->rw.started ? 1 : 0;
  st[ST_RS_SSRC] = (double)r->rs.ssrc;
  st[ST_RS_BASE_SEQ] = r->rs.base_seq;
  st[ST_RS_MAX_SEQ] = r->rs.max_seq;
  st[ST_RS_BAD_SEQ] = r->rs.bad_seq;
  st[ST_RS_CYCLES] = r->rs.cycles;
  st[ST_RS_RECEIVED] = r->rs.received;
  st[ST_RS_EXPECTED_PRIOR] = r->rs.expected_prior;
  st[ST_RS_RECEIVED_PRIOR] = r->rs.received_prior;
  st[ST_RS_TRANSIT] = r->rs.transit;
  st[ST_RS_JITTER] = r->rs.jitter_units;
  st[ST_RS_HAVE_TRANSIT] = r->rs.have_transit ? 1 : 0;
  const ferry_deltas *d = &r->d;
  st[ST_IN_PACKETS] = d->in_packets;
  st[ST_IN_BYTES] = d->in_bytes;
  st[ST_IN_LAST_AT] = d->in_last_at;
  st[ST_RTP_RECEIVED] = d->rtp_received;
  st[ST_SOURCE_CHANGES] = d->source_changes;
  st[ST_SRTP_REFUSED] = d->srtp_refused;
  st[ST_OUT_PACKETS] = d->out_packets;
  st[ST_OUT_BYTES] = d->out_bytes;
  st[ST_OUT_PAYLOAD] = d->out_payload;
  st[ST_OUT_LAST_AT] = d->out_last_at;
  st[ST_OUT_LAST_TS] = d->out_last_ts;
  st[ST_FLOW_OUT] = d->flow_out;
  st[ST_FLOW_IN] = d->flow_in;
  st[ST_DROPPED_NO_CODEC] = d->dropped_no_codec;
  st[ST_FORWARDED] = d->forwarded;
  st[ST_SEND_ERRORS] = d->send_errors;
  if (reset_deltas) ferry_deltas_reset(&r->d);
}

int ferry_sockaddr_equal(const struct sockaddr *a, const struct sockaddr *b) {
  if (a->sa_family != b->sa_family) return 0;
  if (a->sa_family == AF_INET) {
    const struct sockaddr_in *x = (const struct sockaddr_in *)a, *y = (const struct sockaddr_in *)b;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a->sa_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a, *y = (const struct sockaddr_in6 *)b;
    return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
  }
  return 0;
}

int ferry_route_packet(ferry_route *r, uint8_t *p, size_t *len, size_t cap, const struct sockaddr *src, socklen_t src_len, double now) {
  (void)src_len;
  if (r->has_peer && !ferry_sockaddr_equal(src, (const struct sockaddr *)&r->peer)) return FERRY_FWD_PASS;
  size_t n = *len;
  if (n < 12 || (p[0] >> 6) != 2) return FERRY_FWD_PASS;
  if (p[1] >= 192 && p[1] <= 223) return FERRY_FWD_PASS; /* RTCP (RFC 5761) */
  if (r->srtp_in != NULL) {
    if (ferry_srtp_unprotect_rtp(r->srtp_in, p, &n) != 0) {
      r->d.srtp_refused += 1;
      return FERRY_FWD_DROP;
    }
    if (n < 12) return FERRY_FWD_DROP;
  }
  /* the in leg: counters and the RtcpSession's reception statistics */
  r->d.in_packets += 1;
  r->d.in_bytes += (double)n;
  r->d.in_last_at = now;
  r->d.rtp_received += 1;
  if (ferry_reception_on_packet(&r->rs, rd32(p + 8), rd16(p + 2), rd32(p + 4), now)) r->d.source_changes += 1;
  /* the source element: flowOut; the map by codec */
  r->d.flow_out += 1;
  uint8_t out_pt = r->pt_map[p[1] & 0x7f];
  if (out_pt == FERRY_PT_UNKNOWN || (out_pt >= 128 && out_pt != FERRY_PT_NOT_NEGOTIATED)) return FERRY_FWD_DROP;
  r->d.flow_in += 1;
  if (out_pt == FERRY_PT_NOT_NEGOTIATED) {
    r->d.dropped_no_codec += 1;
    return FERRY_FWD_DROP;
  }
  ferry_rewrite(&r->rw, p, out_pt, r->clock_rates[out_pt], r->out_ssrc, now);
  /* the out leg: counters and the RtcpSession's sender counters (clear length) */
  r->d.out_packets += 1;
  r->d.out_bytes += (double)n;
  r->d.out_payload += (double)(n - 12);
  r->d.out_last_at = now;
  r->d.out_last_ts = rd32(p + 4);
  if (r->srtp_out != NULL) {
    if (ferry_srtp_protect_rtp(r->srtp_out, p, &n, cap) != 0) {
      r->d.send_errors += 1;
      return FERRY_FWD_DROP;
    }
  }
  r->d.forwarded += 1;
  *len = n;
  return FERRY_FWD_SEND;
}
