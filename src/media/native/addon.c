/*
 * ferry media's native relay: the N-API face and the socket loop (docs/native-relay.md).
 *
 * One relay per JavaScript environment (main thread or a relay worker): an epoll fd holding the watched
 * sockets, itself watched by ONE uv_poll_t on the environment's libuv loop. When it is readable, every
 * ready socket is read with recvmmsg (batches of BATCH) until EAGAIN; each datagram is either forwarded
 * by its socket's route (relay.c, then sendmmsg batched per out socket) or passed up to JavaScript
 * (passUp -> socket.emit('message')). Receive errors go up as errorUp(socket, errno) -> socket 'error'.
 * Everything runs on the JavaScript thread: no locks. JavaScript is called with napi_make_callback, so
 * microtasks run after each call as after Node's own 'message' dispatch.
 *
 * fd numbers are only used while they still name the socket they were given for: each watched socket and each
 * route's out socket keeps its identity (st_dev, st_ino of fstat), confirmed again before the first use after
 * any JavaScript may have run (the relay's epoch moves on at each wake and after each call into JavaScript).
 * A socket closed behind the relay's back (its fd freed, the number maybe taken by a new socket) is then
 * never read, routed or sent on again; JavaScript is told (lost(fd, outSide)) and takes the route's figures
 * back before it unwatches.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <node_api.h>
#include <uv.h>

#include "relay.h"
#include "srtp.h"

#define BATCH 32
/* Receive slots take any UDP datagram whole (the largest UDP payload is 65 527 bytes over IPv6, 65 507 over
 * IPv4; iov 65 536 so MSG_TRUNC never happens), plus room for the SRTP trailer protect appends. BATCH slots
 * are one private anonymous mapping (about 2 MiB of address space per environment); the kernel only
 * commits the pages datagrams are written into, so small RTP keeps it at a page or two per slot. */
#define RECV_LEN 65536
#define SLOT (RECV_LEN + 64)
#define BUFS_LEN ((size_t)BATCH * SLOT)
/* Bounds per environment: watched sockets (each holds at most one route), and the fd numbers accepted. */
#define MAX_WATCHED 16384
#define MAX_FD (1 << 20)

typedef struct sockent {
  napi_ref socket; /* NULL = not watched */
  ferry_route *route;
  uint64_t gen; /* which watch this is: a JavaScript callback may unwatch and watch the same fd again */
  uint64_t dev, ino; /* the socket's identity (fstat) when watched */
  uint64_t checked;  /* the relay's epoch when the identity was last confirmed */
  int lost;          /* the fd no longer names the socket: never read or routed again (until unwatch) */
} sockent;

typedef struct relay {
  napi_env env;
  int epfd;
  uv_poll_t *poll;
  int polling;
  napi_ref pass_up, error_up, notify, lost, resource;
  napi_async_context actx;
  sockent *socks;
  int nsocks; /* capacity (indexed by fd) */
  int watched;
  int max_watched; /* MAX_WATCHED unless lowered by limits() */
  int routes;
  uint64_t next_gen;
  uint8_t *bufs;
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_storage addrs[BATCH];
  /* send queue (entries point into bufs and at a route's dest; flushed before any JavaScript call) */
  struct mmsghdr smsgs[BATCH];
  struct iovec siov[BATCH];
  ferry_route *sroute[BATCH]; /* whose packet each entry is (alive until the flush: no JavaScript runs before it) */
  int sfd;
  int scount;
  int notify_fds[BATCH * 4];
  int nnotify;
  /* sockets found closed behind the relay's back, told to JavaScript after the wake: fd * 2 + (1 = the out side of its route) */
  int lost_fds[BATCH * 4];
  int nlost;
  /* moves on at every wake and after every call into JavaScript: an identity confirmed in this epoch holds */
  uint64_t epoch;
  double passed_up, forwarded, dropped, recv_errors, send_errors, batches;
} relay;

static void free_route(ferry_route *r);

/* ---- helpers ------------------------------------------------------------------------------------ */

#define CHECK(call)                                                                                        \
  do {                                                                                                     \
    if ((call) != napi_ok) goto fail;                                                                      \
  } while (0)

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  /* Date.now(): whole milliseconds */
  return floor((double)ts.tv_sec * 1000.0 + (double)(ts.tv_nsec / 1000000));
}

static napi_value throw_error(napi_env env, const char *msg) {
  napi_throw_error(env, "ERR_FERRY_NATIVE", msg);
  return NULL;
}

static relay *get_relay(napi_env env) {
  void *data = NULL;
  if (napi_get_instance_data(env, &data) != napi_ok) return NULL;
  return (relay *)data;
}

static sockent *sock_of(relay *R, int fd) {
  if (fd < 0 || fd >= R->nsocks) return NULL;
  sockent *s = &R->socks[fd];
  return s->socket ? s : NULL;
}

static int parse_addr(const char *addr, int port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof(*ss));
  if (strchr(addr, ':') != NULL) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, addr, &a->sin6_addr) != 1) return -1;
    *len = sizeof(*a);
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, addr, &a->sin_addr) != 1) return -1;
    *len = sizeof(*a);
  }
  return 0;
}

static void report_js_exception(napi_env env) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) return;
  napi_value err;
  if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
}

static void call_js(relay *R, napi_ref fn_ref, size_t argc, napi_value *argv) {
  napi_env env = R->env;
  napi_value fn, recv, result;
  if (napi_get_reference_value(env, fn_ref, &fn) != napi_ok || fn == NULL) return;
  /* napi_make_callback needs an object receiver */
  if (napi_get_reference_value(env, R->resource, &recv) != napi_ok || recv == NULL) return;
  if (napi_make_callback(env, R->actx, recv, fn, argc, argv, &result) != napi_ok) report_js_exception(env);
  /* JavaScript may have closed sockets (and watched or routed others, confirming them in the epoch it ran in):
     identities are confirmed again before the next use */
  R->epoch++;
}

/* ---- socket identity ---------------------------------------------------------------------------- */

static int identity_of(int fd, uint64_t *dev, uint64_t *ino) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return -1;
  *dev = (uint64_t)st.st_dev;
  *ino = (uint64_t)st.st_ino;
  return 0;
}

static int same_socket(int fd, uint64_t dev, uint64_t ino) {
  uint64_t d, i;
  return identity_of(fd, &d, &i) == 0 && d == dev && i == ino;
}

/* Queued for lost() after the wake (code = fd * 2 + outSide); a full list drops it: the JavaScript side's 'close'
   hook tells as well, and the entry stays lost (never used) whatever JavaScript hears. */
static void add_lost(relay *R, int code) {
  for (int i = 0; i < R->nlost; i++)
    if (R->lost_fds[i] == code) return;
  if (R->nlost < (int)(sizeof(R->lost_fds) / sizeof(R->lost_fds[0]))) R->lost_fds[R->nlost++] = code;
}

/* A queued lost() no longer applies once JavaScript unwatched the fd (both sides) or changed its route (out
   side): the number may name another socket, or the route another out socket, by the time it would be told. */
static void forget_lost(relay *R, int fd, int both) {
  int k = 0;
  for (int i = 0; i < R->nlost; i++) {
    int c = R->lost_fds[i];
    if ((c >> 1) == fd && (both || (c & 1))) continue;
    R->lost_fds[k++] = c;
  }
  R->nlost = k;
}

/* The watched fd still names its socket (checked once per epoch); otherwise the entry is lost for good. */
static int in_ok(relay *R, int fd, sockent *s) {
  if (s->lost) return 0;
  if (s->checked == R->epoch) return 1;
  if (!same_socket(fd, s->dev, s->ino)) {
    s->lost = 1;
    /* a closed fd left the epoll set with its socket; a number taken by a new socket names a file that is not
       in the set (ENOENT): harmless either way */
    epoll_ctl(R->epfd, EPOLL_CTL_DEL, fd, NULL);
    add_lost(R, fd * 2);
    return 0;
  }
  s->checked = R->epoch;
  return 1;
}

/* The route's out fd still names its out socket (checked once per epoch); otherwise the route sends no more. */
static int out_ok(relay *R, ferry_route *r) {
  if (r->out_lost) return 0;
  if (r->out_checked == R->epoch) return 1;
  if (!same_socket(r->out_fd, r->out_dev, r->out_ino)) {
    r->out_lost = 1;
    add_lost(R, r->in_fd * 2 + 1);
    return 0;
  }
  r->out_checked = R->epoch;
  return 1;
}

/* ---- sending ------------------------------------------------------------------------------------ */

static void flush_sends(relay *R) {
  int done = 0;
  while (done < R->scount) {
    int n = sendmmsg(R->sfd, R->smsgs + done, (unsigned)(R->scount - done), MSG_DONTWAIT);
    if (n > 0) {
      done += n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    /* n == 0 or -1: the first message of the rest was not sent. EAGAIN/ENOBUFS (a full send buffer:
       dropped, as a real-time relay must), EMSGSIZE, or a pending error on the out socket (ICMP): that
       message is dropped and counted (relay-wide and on its route); the rest are tried. */
    R->send_errors += 1;
    if (R->sroute[done]) R->sroute[done]->d.send_errors += 1;
    done += 1;
  }
  R->scount = 0;
}

static void queue_send(relay *R, int fd, uint8_t *buf, size_t len, ferry_route *r) {
  if (R->scount > 0 && (R->sfd != fd || R->scount == BATCH)) flush_sends(R);
  int i = R->scount++;
  R->sfd = fd;
  R->siov[i].iov_base = buf;
  R->siov[i].iov_len = len;
  R->sroute[i] = r;
  struct msghdr *h = &R->smsgs[i].msg_hdr;
  memset(h, 0, sizeof(*h));
  h->msg_iov = &R->siov[i];
  h->msg_iovlen = 1;
  if (r->has_dest) {
    h->msg_name = &r->dest;
    h->msg_namelen = r->dest_len;
  }
}

/* ---- receiving ---------------------------------------------------------------------------------- */

static void pass_up(relay *R, napi_value sock, uint8_t *buf, size_t len, struct sockaddr_storage *from) {
  napi_env env = R->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value argv[5];
  void *data;
  char text[INET6_ADDRSTRLEN] = "";
  int port = 0, family = 4;
  if (from->ss_family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)from;
    inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof(text));
    port = ntohs(a->sin6_port);
    family = 6;
  } else if (from->ss_family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)from;
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof(text));
    port = ntohs(a->sin_port);
  }
  argv[0] = sock;
  if (napi_create_buffer_copy(env, len, buf, &data, &argv[1]) != napi_ok) goto done;
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &argv[2]);
  napi_create_int32(env, port, &argv[3]);
  napi_create_int32(env, family, &argv[4]);
  R->passed_up += 1;
  call_js(R, R->pass_up, 5, argv);
done:
  napi_close_handle_scope(env, scope);
}

static void error_up(relay *R, napi_value sock, int err) {
  napi_env env = R->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value argv[2];
  argv[0] = sock;
  napi_create_int32(env, -err, &argv[1]);
  call_js(R, R->error_up, 2, argv);
  napi_close_handle_scope(env, scope);
}

/* 0 when the list is full: the route keeps its notify_pending and asks again with its next packet */
static int add_notify(relay *R, int fd) {
  for (int i = 0; i < R->nnotify; i++)
    if (R->notify_fds[i] == fd) return 1;
  if (R->nnotify >= (int)(sizeof(R->notify_fds) / sizeof(R->notify_fds[0]))) return 0;
  R->notify_fds[R->nnotify++] = fd;
  return 1;
}

static void read_socket(relay *R, int fd) {
  napi_env env = R->env;
  sockent *s = sock_of(R, fd);
  if (!s || !in_ok(R, fd, s)) return;
  uint64_t gen = s->gen;
  napi_value sock;
  if (napi_get_reference_value(env, s->socket, &sock) != napi_ok || sock == NULL) return;
  for (int round = 0; round < 8; round++) {
    s = sock_of(R, fd);
    if (!s || s->gen != gen) break; /* unwatched (and maybe watched again) by JavaScript meanwhile */
    if (!in_ok(R, fd, s)) break;    /* closed behind the relay's back by JavaScript meanwhile */
    for (int i = 0; i < BATCH; i++) {
      R->iov[i].iov_base = R->bufs + (size_t)i * SLOT;
      R->iov[i].iov_len = RECV_LEN;
      struct msghdr *h = &R->msgs[i].msg_hdr;
      memset(h, 0, sizeof(*h));
      h->msg_name = &R->addrs[i];
      h->msg_namelen = sizeof(R->addrs[i]);
      h->msg_iov = &R->iov[i];
      h->msg_iovlen = 1;
    }
    int got = recvmmsg(fd, R->msgs, BATCH, MSG_DONTWAIT, NULL);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      int e = errno;
      R->recv_errors += 1;
      error_up(R, sock, e);
      if (e == ECONNREFUSED) continue; /* the ICMP error is consumed: the socket reads on */
      break;
    }
    R->batches += 1;
    double now = now_ms();
    for (int i = 0; i < got; i++) {
      uint8_t *buf = R->bufs + (size_t)i * SLOT;
      size_t len = R->msgs[i].msg_len;
      /* looked up again for each datagram: a JavaScript callback for the previous one may have unrouted,
         unwatched or closed this socket (the rest of the batch, already read, then goes up as 'message') */
      sockent *cur = sock_of(R, fd);
      ferry_route *r = (cur && cur->gen == gen && !cur->lost) ? cur->route : NULL;
      /* the out socket closed behind the relay's back: the datagram goes up untouched, the route stays for its figures */
      if (r && !out_ok(R, r)) r = NULL;
      int outcome = FERRY_FWD_PASS;
      if (r && !(R->msgs[i].msg_hdr.msg_flags & MSG_TRUNC))
        outcome = ferry_route_packet(r, buf, &len, SLOT, (struct sockaddr *)&R->addrs[i], R->msgs[i].msg_hdr.msg_namelen, now);
      if (outcome == FERRY_FWD_SEND) {
        R->forwarded += 1;
        queue_send(R, r->out_fd, buf, len, r);
        if (r->notify_pending && add_notify(R, fd)) r->notify_pending = 0;
      } else if (outcome == FERRY_FWD_DROP) {
        R->dropped += 1;
      } else {
        flush_sends(R);
        pass_up(R, sock, buf, len, &R->addrs[i]);
      }
    }
    flush_sends(R);
    if (got < BATCH) break;
  }
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  (void)status;
  (void)events;
  relay *R = (relay *)handle->data;
  napi_env env = R->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  R->epoch++; /* JavaScript ran since the last wake */
  struct epoll_event evs[64];
  int n = epoll_wait(R->epfd, evs, 64, 0);
  for (int i = 0; i < n; i++) {
    if (evs[i].events & (EPOLLIN | EPOLLERR)) read_socket(R, evs[i].data.fd);
  }
  if (R->nnotify > 0) {
    int fds[BATCH * 4];
    int k = R->nnotify;
    memcpy(fds, R->notify_fds, sizeof(int) * (size_t)k);
    R->nnotify = 0;
    for (int i = 0; i < k; i++) {
      napi_handle_scope s2;
      if (napi_open_handle_scope(env, &s2) != napi_ok) continue;
      napi_value argv[1];
      napi_create_int32(env, fds[i], &argv[0]);
      call_js(R, R->notify, 1, argv);
      napi_close_handle_scope(env, s2);
    }
  }
  /* one at a time from the list: a lost() handler that unwatches or unroutes takes that fd's other codes out */
  while (R->nlost > 0 && R->lost) {
    int code = R->lost_fds[0];
    R->nlost--;
    memmove(R->lost_fds, R->lost_fds + 1, sizeof(int) * (size_t)R->nlost);
    napi_handle_scope s2;
    if (napi_open_handle_scope(env, &s2) != napi_ok) continue;
    napi_value argv[2];
    napi_create_int32(env, code >> 1, &argv[0]);
    napi_get_boolean(env, (code & 1) != 0, &argv[1]);
    call_js(R, R->lost, 2, argv);
    napi_close_handle_scope(env, s2);
  }
  R->nlost = 0;
  napi_close_handle_scope(env, scope);
}

static void update_polling(relay *R) {
  if (R->watched > 0 && !R->polling) {
    uv_poll_start(R->poll, UV_READABLE, on_poll);
    R->polling = 1;
  } else if (R->watched == 0 && R->polling) {
    uv_poll_stop(R->poll);
    R->polling = 0;
  }
}

/* ---- lifetime ------------------------------------------------------------------------------------ */

static void free_poll(uv_handle_t *h) { free(h); }

static void relay_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  relay *R = (relay *)data;
  if (!R) return;
  if (R->poll) {
    uv_poll_stop(R->poll);
    uv_close((uv_handle_t *)R->poll, free_poll);
  }
  for (int fd = 0; fd < R->nsocks; fd++) {
    if (R->socks[fd].route) free_route(R->socks[fd].route);
    if (R->socks[fd].socket) napi_delete_reference(env, R->socks[fd].socket);
  }
  if (R->actx) napi_async_destroy(env, R->actx);
  if (R->epfd >= 0) close(R->epfd);
  free(R->socks);
  if (R->bufs) munmap(R->bufs, BUFS_LEN);
  free(R);
}

/* init(passUp, errorUp, notify, lost?): once per environment; lost(fd, outSide) tells of a socket closed behind the relay's back */
static napi_value js_init(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) return throw_error(env, "init(passUp, errorUp, notify, lost?)");
  if (get_relay(env) != NULL) return throw_error(env, "the native relay of this environment is already initialised");
  relay *R = calloc(1, sizeof(relay));
  if (!R) return throw_error(env, "out of memory");
  R->env = env;
  R->max_watched = MAX_WATCHED;
  R->epoch = 1;
  R->epfd = epoll_create1(EPOLL_CLOEXEC);
  R->bufs = mmap(NULL, BUFS_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (R->bufs == MAP_FAILED) R->bufs = NULL;
  R->poll = calloc(1, sizeof(uv_poll_t));
  if (R->epfd < 0 || !R->bufs || !R->poll) {
    relay_finalize(env, R, NULL);
    return throw_error(env, "cannot create the relay's epoll fd or buffers");
  }
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  if (uv_poll_init(loop, R->poll, R->epfd) != 0) {
    free(R->poll);
    R->poll = NULL;
    relay_finalize(env, R, NULL);
    return throw_error(env, "uv_poll_init failed on the relay's epoll fd");
  }
  R->poll->data = R;
  CHECK(napi_create_reference(env, argv[0], 1, &R->pass_up));
  CHECK(napi_create_reference(env, argv[1], 1, &R->error_up));
  CHECK(napi_create_reference(env, argv[2], 1, &R->notify));
  if (argc >= 4) {
    napi_valuetype t;
    CHECK(napi_typeof(env, argv[3], &t));
    if (t == napi_function) CHECK(napi_create_reference(env, argv[3], 1, &R->lost));
  }
  napi_value resource, name;
  CHECK(napi_create_object(env, &resource));
  CHECK(napi_create_string_utf8(env, "FerryNativeRelay", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_reference(env, resource, 1, &R->resource));
  CHECK(napi_async_init(env, resource, name, &R->actx));
  CHECK(napi_set_instance_data(env, R, relay_finalize, NULL));
  return NULL;
fail:
  return throw_error(env, "init failed");
}

static relay *need_relay(napi_env env) {
  relay *R = get_relay(env);
  if (!R) throw_error(env, "the native relay is not initialised (init first)");
  return R;
}

static int get_int(napi_env env, napi_value v, int *out) {
  return napi_get_value_int32(env, v, out) == napi_ok ? 0 : -1;
}

/* watch(fd, socket) */
static napi_value js_watch(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int fd;
  relay *R = need_relay(env);
  if (!R) return NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 || get_int(env, argv[0], &fd) || fd < 0)
    return throw_error(env, "watch(fd, socket)");
  if (fd >= MAX_FD) {
    char msg[128];
    snprintf(msg, sizeof(msg), "native relay: fd %d is above the relay's limit (%d)", fd, MAX_FD);
    return throw_error(env, msg);
  }
  if (fd < R->nsocks && R->socks[fd].socket) return throw_error(env, "fd is already watched");
  if (R->watched >= R->max_watched) {
    char msg[128];
    snprintf(msg, sizeof(msg), "native relay: at most %d watched sockets per environment (fd %d refused)", R->max_watched, fd);
    return throw_error(env, msg);
  }
  if (fd >= R->nsocks) {
    int cap = R->nsocks ? R->nsocks : 64;
    while (cap <= fd) cap *= 2;
    sockent *n = realloc(R->socks, sizeof(sockent) * (size_t)cap);
    if (!n) return throw_error(env, "out of memory");
    memset(n + R->nsocks, 0, sizeof(sockent) * (size_t)(cap - R->nsocks));
    R->socks = n;
    R->nsocks = cap;
  }
  if (R->socks[fd].socket) return throw_error(env, "fd is already watched");
  uint64_t dev, ino;
  if (identity_of(fd, &dev, &ino) != 0) return throw_error(env, "watch: the fd is not an open socket");
  struct epoll_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (epoll_ctl(R->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
    char msg[96];
    snprintf(msg, sizeof(msg), "epoll_ctl(ADD, %d): %s", fd, strerror(errno));
    return throw_error(env, msg);
  }
  if (napi_create_reference(env, argv[1], 1, &R->socks[fd].socket) != napi_ok) {
    epoll_ctl(R->epfd, EPOLL_CTL_DEL, fd, NULL);
    return throw_error(env, "cannot reference the socket");
  }
  R->socks[fd].gen = ++R->next_gen;
  R->socks[fd].dev = dev;
  R->socks[fd].ino = ino;
  R->socks[fd].checked = 0; /* confirmed at the first use (epochs start at 1) */
  R->socks[fd].lost = 0;
  R->watched++;
  update_polling(R);
  return NULL;
}

static void free_route(ferry_route *r) {
  if (r->srtp_in) ferry_srtp_release((ferry_srtp_ctx *)r->srtp_in);
  if (r->srtp_out) ferry_srtp_release((ferry_srtp_ctx *)r->srtp_out);
  free(r);
}

static void drop_route(relay *R, sockent *s) {
  if (s->route) {
    free_route(s->route);
    s->route = NULL;
    R->routes--;
  }
}

/* unwatch(fd): synchronous; the relay never touches fd afterwards. A route on it is dropped (unroute first to keep its state). */
static napi_value js_unwatch(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int fd;
  relay *R = need_relay(env);
  if (!R) return NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || get_int(env, argv[0], &fd))
    return throw_error(env, "unwatch(fd)");
  sockent *s = sock_of(R, fd);
  napi_value result;
  if (!s) {
    napi_get_boolean(env, false, &result);
    return result;
  }
  /* a lost entry left the set already; its number may name a stranger's socket now (not in the set) */
  if (!s->lost) epoll_ctl(R->epfd, EPOLL_CTL_DEL, fd, NULL);
  forget_lost(R, fd, 1);
  drop_route(R, s);
  napi_delete_reference(env, s->socket);
  s->socket = NULL;
  s->gen = 0;
  s->lost = 0;
  R->watched--;
  update_polling(R);
  napi_get_boolean(env, true, &result);
  return result;
}

static int get_state_array(napi_env env, napi_value v, double **out) {
  napi_typedarray_type type;
  size_t length, offset;
  void *data;
  napi_value ab;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, &ab, &offset) != napi_ok) return -1;
  if (type != napi_float64_array || length < ST_COUNT) return -1;
  *out = (double *)data;
  return 0;
}

static int get_bytes(napi_env env, napi_value v, napi_typedarray_type want, size_t count, void **out) {
  napi_typedarray_type type;
  size_t length, offset;
  napi_value ab;
  if (napi_get_typedarray_info(env, v, &type, &length, out, &ab, &offset) != napi_ok) return -1;
  return type == want && length >= count ? 0 : -1;
}

/* An SRTP context handle made by srtpCreate (srtp.c), or null/undefined for plain RTP. */
static int get_srtp_ctx(napi_env env, napi_value v, void **out) {
  napi_valuetype t;
  *out = NULL;
  if (napi_typeof(env, v, &t) != napi_ok) return -1;
  if (t == napi_null || t == napi_undefined) return 0;
  ferry_srtp_ctx *c = ferry_srtp_from_value(env, v);
  if (!c) return -1;
  *out = c;
  return 0;
}

static int get_addr_arg(napi_env env, napi_value addr, napi_value port, int *has, struct sockaddr_storage *ss, socklen_t *len) {
  napi_valuetype t;
  *has = 0;
  if (napi_typeof(env, addr, &t) != napi_ok) return -1;
  if (t == napi_null || t == napi_undefined) return 0;
  char text[INET6_ADDRSTRLEN + 1];
  size_t n;
  int p;
  if (napi_get_value_string_utf8(env, addr, text, sizeof(text), &n) != napi_ok || get_int(env, port, &p)) return -1;
  if (p <= 0 || p > 65535 || parse_addr(text, p, ss, len) != 0) return -1;
  *has = 1;
  return 0;
}

/*
 * route(inFd, outFd, peerAddress|null, peerPort, destAddress|null, destPort, outSsrc, ptMap Uint8Array(128),
 *       clockRates Uint32Array(128), receiveClockRate, srtpIn|null, srtpOut|null, state Float64Array(ST_COUNT))
 * inFd must be watched; a route already on it is replaced (its unsynced figures are lost: unroute first).
 */
static napi_value js_route(napi_env env, napi_callback_info info) {
  size_t argc = 13;
  napi_value a[13];
  relay *R = need_relay(env);
  if (!R) return NULL;
  if (napi_get_cb_info(env, info, &argc, a, NULL, NULL) != napi_ok || argc < 13) return throw_error(env, "route: 13 arguments");
  int in_fd, out_fd, rate;
  uint32_t ssrc;
  if (get_int(env, a[0], &in_fd) || get_int(env, a[1], &out_fd) || napi_get_value_uint32(env, a[6], &ssrc) != napi_ok ||
      get_int(env, a[9], &rate))
    return throw_error(env, "route: bad fd, ssrc or clock rate");
  sockent *s = sock_of(R, in_fd);
  if (!s) return throw_error(env, "route: the in fd is not watched");
  if (s->lost) return throw_error(env, "route: the in fd no longer names the watched socket (closed)");
  uint64_t out_dev, out_ino;
  if (out_fd < 0 || identity_of(out_fd, &out_dev, &out_ino) != 0) return throw_error(env, "route: bad out fd (not an open socket)");
  ferry_route *r = calloc(1, sizeof(ferry_route));
  if (!r) return throw_error(env, "out of memory");
  void *pt_map, *rates;
  double *st;
  if (get_addr_arg(env, a[2], a[3], &r->has_peer, &r->peer, &r->peer_len) ||
      get_addr_arg(env, a[4], a[5], &r->has_dest, &r->dest, &r->dest_len) ||
      get_bytes(env, a[7], napi_uint8_array, 128, &pt_map) || get_bytes(env, a[8], napi_uint32_array, 128, &rates) ||
      get_srtp_ctx(env, a[10], &r->srtp_in) || get_srtp_ctx(env, a[11], &r->srtp_out) || get_state_array(env, a[12], &st)) {
    free(r);
    return throw_error(env, "route: bad peer/dest address, ptMap, clockRates, SRTP context or state array");
  }
  if (r->srtp_in) ferry_srtp_retain((ferry_srtp_ctx *)r->srtp_in);
  if (r->srtp_out) ferry_srtp_retain((ferry_srtp_ctx *)r->srtp_out);
  r->in_fd = in_fd;
  r->out_fd = out_fd;
  r->out_dev = out_dev;
  r->out_ino = out_ino;
  r->out_checked = 0; /* confirmed at the first use */
  r->out_ssrc = ssrc;
  for (int i = 0; i < 128; i++) {
    uint8_t v = ((const uint8_t *)pt_map)[i];
    if (v >= 128 && v != FERRY_PT_UNKNOWN && v != FERRY_PT_NOT_NEGOTIATED) {
      free_route(r);
      return throw_error(env, "route: ptMap values must be payload types 0..127, 254 (not negotiated) or 255 (unknown)");
    }
  }
  memcpy(r->pt_map, pt_map, 128);
  memcpy(r->clock_rates, rates, sizeof(uint32_t) * 128);
  r->rs.clock_rate = (uint32_t)rate;
  ferry_route_import(r, st);
  forget_lost(R, in_fd, 0);
  drop_route(R, s);
  s->route = r;
  R->routes++;
  return NULL;
}

/* sync(inFd, state) / unroute(inFd, state): state exported (increments since the last sync); false when no route */
static napi_value sync_or_unroute(napi_env env, napi_callback_info info, int remove) {
  size_t argc = 2;
  napi_value a[2], result;
  int fd;
  double *st;
  relay *R = need_relay(env);
  if (!R) return NULL;
  if (napi_get_cb_info(env, info, &argc, a, NULL, NULL) != napi_ok || argc < 2 || get_int(env, a[0], &fd) || get_state_array(env, a[1], &st))
    return throw_error(env, "sync/unroute(fd, state Float64Array)");
  sockent *s = sock_of(R, fd);
  if (!s || !s->route) {
    napi_get_boolean(env, false, &result);
    return result;
  }
  ferry_route_export(s->route, st, 1);
  if (remove) {
    forget_lost(R, fd, 0);
    drop_route(R, s);
  }
  napi_get_boolean(env, true, &result);
  return result;
}

static napi_value js_sync(napi_env env, napi_callback_info info) { return sync_or_unroute(env, info, 0); }
static napi_value js_unroute(napi_env env, napi_callback_info info) { return sync_or_unroute(env, info, 1); }

/* armNotify(inFd): call notify(inFd) once after the route's next forwarded packet */
static napi_value js_arm_notify(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1], result;
  int fd;
  relay *R = need_relay(env);
  if (!R) return NULL;
  if (napi_get_cb_info(env, info, &argc, a, NULL, NULL) != napi_ok || argc < 1 || get_int(env, a[0], &fd)) return throw_error(env, "armNotify(fd)");
  sockent *s = sock_of(R, fd);
  if (s && s->route) s->route->notify_pending = 1;
  napi_get_boolean(env, s && s->route, &result);
  return result;
}

static void set_num(napi_env env, napi_value obj, const char *name, double v) {
  napi_value n;
  napi_create_double(env, v, &n);
  napi_set_named_property(env, obj, name, n);
}

/* counters(): the relay's own figures */
static napi_value js_counters(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value obj;
  napi_create_object(env, &obj);
  relay *R = get_relay(env);
  if (!R) return obj;
  set_num(env, obj, "watched", R->watched);
  set_num(env, obj, "routes", R->routes);
  set_num(env, obj, "passedUp", R->passed_up);
  set_num(env, obj, "forwarded", R->forwarded);
  set_num(env, obj, "dropped", R->dropped);
  set_num(env, obj, "recvErrors", R->recv_errors);
  set_num(env, obj, "sendErrors", R->send_errors);
  set_num(env, obj, "batches", R->batches);
  return obj;
}

/* limits(maxWatched?): the relay's bounds { maxWatched, maxFd, datagram }; maxWatched (1..MAX_WATCHED) lowers the cap */
static napi_value js_limits(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1], obj;
  relay *R = need_relay(env);
  if (!R) return NULL;
  if (napi_get_cb_info(env, info, &argc, a, NULL, NULL) != napi_ok) return throw_error(env, "limits(maxWatched?)");
  if (argc >= 1) {
    napi_valuetype t;
    int n;
    if (napi_typeof(env, a[0], &t) != napi_ok) return throw_error(env, "limits(maxWatched?)");
    if (t != napi_undefined) {
      if (get_int(env, a[0], &n) || n < 1 || n > MAX_WATCHED) return throw_error(env, "limits: maxWatched must be 1..16384");
      R->max_watched = n;
    }
  }
  napi_create_object(env, &obj);
  set_num(env, obj, "maxWatched", R->max_watched);
  set_num(env, obj, "maxFd", MAX_FD);
  set_num(env, obj, "datagram", RECV_LEN - 1);
  return obj;
}

/* ---- the pure per-packet pieces, for tests: same code as the forwarder runs ------------------------ */

/* rewrite(state Float64Array, packet Buffer, payloadType, clockRate, outSsrc, nowMs): rewrites in place, state in/out */
static napi_value js_rewrite(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value a[6];
  double *st, now;
  void *data;
  size_t len;
  int pt, rate;
  uint32_t ssrc;
  if (napi_get_cb_info(env, info, &argc, a, NULL, NULL) != napi_ok || argc < 6 || get_state_array(env, a[0], &st) ||
      napi_get_buffer_info(env, a[1], &data, &len) != napi_ok || len < 12 || get_int(env, a[2], &pt) || get_int(env, a[3], &rate) ||
      napi_get_value_uint32(env, a[4], &ssrc) != napi_ok || napi_get_value_double(env, a[5], &now) != napi_ok)
    return throw_error(env, "rewrite(state, packet, pt, clockRate, outSsrc, now)");
  ferry_route r;
  memset(&r, 0, sizeof(r));
  ferry_route_import(&r, st);
  ferry_rewrite(&r.rw, (uint8_t *)data, (uint8_t)pt, (uint32_t)rate, ssrc, now);
  ferry_route_export(&r, st, 1);
  return NULL;
}

/* reception(state Float64Array, clockRate, ssrc, seq, ts, arrivalMs): state in/out; returns true on a source change */
static napi_value js_reception(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value a[6], result;
  double *st, arrival;
  uint32_t rate, ssrc, seq, ts;
  if (napi_get_cb_info(env, info, &argc, a, NULL, NULL) != napi_ok || argc < 6 || get_state_array(env, a[0], &st) ||
      napi_get_value_uint32(env, a[1], &rate) != napi_ok || napi_get_value_uint32(env, a[2], &ssrc) != napi_ok ||
      napi_get_value_uint32(env, a[3], &seq) != napi_ok || napi_get_value_uint32(env, a[4], &ts) != napi_ok ||
      napi_get_value_double(env, a[5], &arrival) != napi_ok)
    return throw_error(env, "reception(state, clockRate, ssrc, seq, ts, arrivalMs)");
  ferry_route r;
  memset(&r, 0, sizeof(r));
  ferry_route_import(&r, st);
  r.rs.clock_rate = rate;
  int changed = ferry_reception_on_packet(&r.rs, ssrc, seq & 0xffff, ts, arrival);
  ferry_route_export(&r, st, 1);
  napi_get_boolean(env, changed != 0, &result);
  return result;
}

/*
 * Node unloads an addon with the last environment (worker) that loaded it, and a worker's loop runs its
 * closing handles after that: the relay's uv_poll_t close callback (free_poll) would then jump into unmapped
 * code. The library pins itself (RTLD_NODELETE) so its code outlives every environment.
 */
static void pin_library(void) {
  Dl_info info;
  if (dladdr((void *)pin_library, &info) != 0 && info.dli_fname != NULL) (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

NAPI_MODULE_INIT() {
  pin_library();
  napi_property_descriptor props[] = {
      {"init", NULL, js_init, NULL, NULL, NULL, napi_enumerable, NULL},
      {"watch", NULL, js_watch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unwatch", NULL, js_unwatch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"route", NULL, js_route, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unroute", NULL, js_unroute, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sync", NULL, js_sync, NULL, NULL, NULL, napi_enumerable, NULL},
      {"armNotify", NULL, js_arm_notify, NULL, NULL, NULL, napi_enumerable, NULL},
      {"counters", NULL, js_counters, NULL, NULL, NULL, napi_enumerable, NULL},
      {"limits", NULL, js_limits, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rewrite", NULL, js_rewrite, NULL, NULL, NULL, napi_enumerable, NULL},
      {"reception", NULL, js_reception, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) != napi_ok) return NULL;
  if (ferry_srtp_register(env, exports) != napi_ok) return NULL;
  return exports;
}
