/* Broadcast delivery latency measured by a client that costs little: N
 * non-blocking SSE or WebSocket connections on one epoll loop, a drop-in for
 * one `node bench/latency.js` client process (the same arguments, the same
 * "ready"/"start" lines, the same JSON report, merged by
 * `node bench/latency.js merge`). A measuring tool only: the specs' real
 * clients stay npm `eventsource` and `ws`.
 *
 *   bench/fanclient sse|ws URL CONNS      (built by bench/latency.sh with cc)
 *
 * URL: http://IPv4:PORT/path (sse) or ws://IPv4:PORT/path (ws). Connects at
 * most 64 at a time, prints "ready OPEN FAILED", waits for one stdin line
 * "start T0 SECS" (T0: Unix ms). Each event's content carries
 * "t":"<RFC 3339 UTC send time, µs>" and "i":<sequence> (the generate
 * mapping of bench/latency.sh, now() being CLOCK_REALTIME on the same
 * machine); events sent in [T0, T0 + SECS s) are measured: delay = the
 * CLOCK_REALTIME of the read that brought it − t. The histogram's bins are
 * latency.js's (10 µs below 100 ms, 1 ms above). 2 s after the window it
 * prints the report and exits; every wait is bounded. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { PENDING_MAX = 64, CONNECT_S = 120, START_WAIT_S = 300, GRACE_MS = 2000, RBUF = 1 << 16 };
enum { FINE = 10000, COARSE = 100000 };
enum { CONNECTING, HEAD, OPEN, DONE };

typedef struct conn {
  int fd, state, settled;
  long long last;   /* last sequence seen, -1: none */
  char *tail;       /* bytes of an unfinished head, line or frame */
  size_t tlen, tcap;
} conn_t;

static int ws;   /* 1: WebSocket, 0: SSE */
static char req[1024];
static size_t reqlen;
static struct sockaddr_in addr;
static conn_t *conns;
static int n, next, pending, nopen, nfailed, nclosed, nerrors, ready_sent;
static int efd;
static double t0 = 1e300, t1 = -1e300;   /* the window, Unix ms */
static uint32_t hist[FINE + COARSE];
static long long events, gaps, reordered, negative, imin = -1, imax = -1;
static double maxd;
static double cpu_at_t0 = -1, cpu_in_window = -1;   /* ms of this process's CPU */

static double cpu_ms(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void die(const char *what) {
  perror(what);
  exit(2);
}

static void error_once(const char *msg) {
  if (++nerrors <= 3) fprintf(stderr, "%s\n", msg);
}

static void settle(conn_t *c, int ok) {
  if (c->settled) return;
  c->settled = 1;
  pending--;
  if (ok) nopen++;
  else nfailed++;
}

static void conn_end(conn_t *c) {
  if (c->state == DONE) return;
  if (c->state == OPEN) nclosed++;
  settle(c, 0);
  c->state = DONE;
  epoll_ctl(efd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c->tail);
  c->tail = NULL;
  c->tlen = c->tcap = 0;
}

static void connect_one(void) {
  conn_t *c = &conns[next++];
  pending++;
  c->last = -1;
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) die("socket");
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->state = CONNECTING;
  if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
    error_once(strerror(errno));
    settle(c, 0);
    close(c->fd);
    c->state = DONE;
    return;
  }
  struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
  if (epoll_ctl(efd, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
}

static void pump(void) {
  while (pending < PENDING_MAX && next < n) connect_one();
  if (!ready_sent && nopen + nfailed == n) {
    ready_sent = 1;
    printf("ready %d %d\n", nopen, nfailed);
    fflush(stdout);
  }
}

static int digits(const char *p, int k) {
  int v = 0;
  for (int i = 0; i < k; i++) {
    if (p[i] < '0' || p[i] > '9') return -1;
    v = v * 10 + (p[i] - '0');
  }
  return v;
}

/* "YYYY-MM-DDTHH:MM:SS.ffffff…" (UTC) → Unix ms; the day's start is
 * computed once per day seen. <0: not such a time. */
static double rfc3339_ms(const char *p, size_t len) {
  static char day[10];
  static double day_ms = -1;
  if (len < 26 || p[10] != 'T' || p[19] != '.') return -1;
  if (day_ms < 0 || memcmp(day, p, 10)) {
    struct tm tm = {0};
    tm.tm_year = digits(p, 4) - 1900;
    tm.tm_mon = digits(p + 5, 2) - 1;
    tm.tm_mday = digits(p + 8, 2);
    if (tm.tm_year < 0 || tm.tm_mon < 0 || tm.tm_mday < 1) return -1;
    day_ms = (double)timegm(&tm) * 1e3;
    memcpy(day, p, 10);
  }
  int h = digits(p + 11, 2), m = digits(p + 14, 2), s = digits(p + 17, 2), us = digits(p + 20, 6);
  if (h < 0 || m < 0 || s < 0 || us < 0) return -1;
  return day_ms + (h * 3600 + m * 60 + s) * 1e3 + us / 1e3;
}

/* One event's content, received on c at `now`. */
static void got(conn_t *c, const char *s, size_t len, double now) {
  const char *t = memmem(s, len, "\"t\":\"", 5), *i = memmem(s, len, "\"i\":", 4);
  if (!t || !i) {
    error_once("an event without \"t\" and \"i\"");
    return;
  }
  double ts = rfc3339_ms(t + 5, len - (size_t)(t + 5 - s));
  long long seq = strtoll(i + 4, NULL, 10);
  if (ts < 0) {
    error_once("an event whose \"t\" is not an RFC 3339 time with µs");
    return;
  }
  if (c->last >= 0) {
    if (seq > c->last + 1) gaps += seq - c->last - 1;
    else if (seq <= c->last) reordered++;
  }
  c->last = seq;
  if (ts < t0 || ts >= t1) return;
  double d = now - ts;
  if (d < 0) {
    negative++;
    d = 0;
  }
  events++;
  long b = d < 100 ? (long)(d * 100) : FINE + (long)(d - 100);
  if (b > FINE + COARSE - 1) b = FINE + COARSE - 1;
  hist[b]++;
  if (d > maxd) maxd = d;
  if (imin < 0 || seq < imin) imin = seq;
  if (imax < 0 || seq > imax) imax = seq;
}

static void send_frame(conn_t *c, int op, const char *payload, size_t len) {
  char f[6 + 125];
  if (len > 125) len = 125;
  f[0] = (char)(0x80 | op);
  f[1] = (char)(0x80 | len);
  memset(f + 2, 0, 4);   /* a zero mask: the payload as it is */
  memcpy(f + 6, payload, len);
  if (write(c->fd, f, 6 + len) < 0) error_once(strerror(errno));
}

/* Parses what c received (its tail, then the new bytes) at `now`; returns
 * how many bytes of s were used up (the rest is kept as the tail). */
static size_t parse(conn_t *c, const char *s, size_t len, double now) {
  size_t p = 0;
  if (c->state == HEAD) {
    const char *h = memmem(s, len, "\r\n\r\n", 4);
    if (!h) return 0;
    const char *want = ws ? "HTTP/1.1 101" : "HTTP/1.1 200";
    if (len < 12 || memcmp(s, want, 12)) {
      const char *eol = memchr(s, '\r', len);
      char msg[128];
      snprintf(msg, sizeof msg, "%.*s", (int)(eol - s), s);
      error_once(msg);
      settle(c, 0);
      conn_end(c);
      return len;
    }
    c->state = OPEN;
    settle(c, 1);
    p = (size_t)(h + 4 - s);
  }
  if (!ws) {
    /* Each event is a "data: …\n" line; the chunk framing around it is skipped. */
    for (;;) {
      const char *k = memmem(s + p, len - p, "data: ", 6);
      if (!k) return len > p + 5 ? len - 5 : p;   /* keep what may start a "data: " */
      const char *e = memchr(k + 6, '\n', len - (size_t)(k + 6 - s));
      if (!e) return (size_t)(k - s);
      got(c, k + 6, (size_t)(e - k - 6), now);
      p = (size_t)(e + 1 - s);
    }
  }
  while (len - p >= 2) {
    const unsigned char *f = (const unsigned char *)s + p;
    int op = f[0] & 15, masked = f[1] & 0x80;
    uint64_t plen = f[1] & 127;
    size_t at = 2;
    if (plen == 126) {
      if (len - p < 4) break;
      plen = (uint64_t)f[2] << 8 | f[3];
      at = 4;
    } else if (plen == 127) {
      if (len - p < 10) break;
      plen = 0;
      for (int i = 0; i < 8; i++) plen = plen << 8 | f[2 + i];
      at = 10;
    }
    if (masked) at += 4;   /* servers do not mask; such a frame is read as it is */
    if (len - p < at + plen) break;
    const char *payload = s + p + at;
    p += at + plen;
    if (op == 9) send_frame(c, 10, payload, plen);
    else if (op == 8) {
      send_frame(c, 8, payload, plen < 2 ? plen : 2);
      conn_end(c);
      return len;
    } else if (op == 1 || op == 2 || op == 0) {
      got(c, payload, plen, now);   /* the generate mapping's events are one frame each */
    }
  }
  return p;
}

static void on_readable(conn_t *c) {
  static char rbuf[RBUF];
  ssize_t r = read(c->fd, rbuf, sizeof rbuf);
  if (r <= 0) {
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (r < 0) error_once(strerror(errno));
    conn_end(c);
    return;
  }
  double now = now_ms();
  const char *s = rbuf;
  size_t len = (size_t)r;
  if (c->tlen) {   /* rare: an event split over two reads */
    if (c->tcap < c->tlen + len) {
      c->tcap = c->tlen + len;
      c->tail = realloc(c->tail, c->tcap);
      if (!c->tail) die("realloc");
    }
    memcpy(c->tail + c->tlen, rbuf, len);
    s = c->tail;
    len += c->tlen;
  }
  size_t used = parse(c, s, len, now);
  if (c->state == DONE) return;
  size_t rest = len - used;
  if (rest > 1 << 20) {
    error_once("more than 1 MiB without a whole event");
    conn_end(c);
    return;
  }
  if (rest && s == rbuf && c->tcap < rest) {
    c->tcap = rest < 256 ? 256 : rest;
    c->tail = realloc(c->tail, c->tcap);
    if (!c->tail) die("realloc");
  }
  if (rest) memmove(c->tail, s + used, rest);
  c->tlen = rest;
}

static void on_writable(conn_t *c) {
  int err = 0;
  socklen_t el = sizeof err;
  getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
  if (err || write(c->fd, req, reqlen) != (ssize_t)reqlen) {
    error_once(strerror(err ? err : errno));
    conn_end(c);
    return;
  }
  c->state = HEAD;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  epoll_ctl(efd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void report(void) {
  int open_at_end = 0;
  for (int i = 0; i < next; i++) open_at_end += conns[i].state == OPEN;
  printf("{\"conns\":%d,\"open_at_end\":%d,\"failed\":%d,\"closed\":%d,\"errors\":%d,\"events\":%lld,"
         "\"gaps\":%lld,\"reordered\":%lld,\"negative\":%lld,\"max\":%.3f,\"imin\":",
         n, open_at_end, nfailed, nclosed, nerrors, events, gaps, reordered, negative, maxd);
  if (imin < 0) printf("null,\"imax\":null");
  else printf("%lld,\"imax\":%lld", imin, imax);
  printf(",\"drift_ms\":0,\"cpu_ms\":%.1f,\"hist\":[", cpu_in_window);
  const char *sep = "";
  for (long b = 0; b < FINE + COARSE; b++)
    if (hist[b]) {
      printf("%s[%ld,%u]", sep, b, hist[b]);
      sep = ",";
    }
  printf("]}\n");
  fflush(stdout);
}

int main(int argc, char **argv) {
  if (argc != 4 || (strcmp(argv[1], "sse") && strcmp(argv[1], "ws")) || atoi(argv[3]) <= 0) {
    fprintf(stderr, "usage: fanclient sse|ws URL CONNS\n");
    return 2;
  }
  ws = !strcmp(argv[1], "ws");
  n = atoi(argv[3]);
  char host[64], path[512];
  int port;
  if (sscanf(argv[2], "%*[a-z]://%63[0-9.]:%d%511s", host, &port, path) != 3) {
    fprintf(stderr, "URL must be scheme://IPv4:PORT/path\n");
    return 2;
  }
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
    fprintf(stderr, "not an IPv4 address: %s\n", host);
    return 2;
  }
  if (ws)
    reqlen = (size_t)snprintf(req, sizeof req,
                              "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                              path, host, port);
  else
    reqlen = (size_t)snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n\r\n",
                              path, host, port);
  conns = calloc((size_t)n, sizeof(*conns));
  efd = epoll_create1(EPOLL_CLOEXEC);
  if (!conns || efd < 0) die("setup");
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  struct epoll_event sev = {.events = EPOLLIN, .data.ptr = NULL};   /* NULL: stdin */
  if (epoll_ctl(efd, EPOLL_CTL_ADD, 0, &sev) < 0) die("epoll_ctl stdin");
  char line[128];
  size_t llen = 0;
  int started = 0;
  double begun = now_ms(), end_at = 1e300;
  pump();
  struct epoll_event evs[1024];
  for (;;) {
    double now = now_ms();
    if (!ready_sent && now - begun > CONNECT_S * 1e3) {
      ready_sent = 1;
      printf("ready %d %d\n", nopen, n - nopen);
      fflush(stdout);
    }
    if (!started && now - begun > START_WAIT_S * 1e3) {
      fprintf(stderr, "no start line\n");
      return 2;
    }
    if (now >= end_at) break;
    /* The CPU this client spent in the window (its own figure: bench/latency.sh
     * reading /proc after the window raced with the clients' exit). */
    if (cpu_at_t0 < 0 && now >= t0) cpu_at_t0 = cpu_ms();
    if (cpu_in_window < 0 && cpu_at_t0 >= 0 && now >= t1) cpu_in_window = cpu_ms() - cpu_at_t0;
    double until = end_at;
    if (cpu_at_t0 < 0 && t0 > now && t0 < until) until = t0;
    if (cpu_in_window < 0 && t1 > now && t1 < until) until = t1;
    int wait = until < 1e299 ? (int)(until - now) + 1 : 1000;
    int k = epoll_wait(efd, evs, 1024, wait);
    if (k < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < k; i++) {
      conn_t *c = evs[i].data.ptr;
      if (!c) {
        ssize_t r = read(0, line + llen, sizeof line - 1 - llen);
        if (r <= 0) {
          if (r == 0 || errno != EAGAIN) epoll_ctl(efd, EPOLL_CTL_DEL, 0, NULL);
          continue;
        }
        llen += (size_t)r;
        line[llen] = 0;
        double a, secs;
        if (!started && strchr(line, '\n') && sscanf(line, "start %lf %lf", &a, &secs) == 2) {
          started = 1;
          t0 = a;
          t1 = a + secs * 1e3;
          end_at = t1 + GRACE_MS;
        }
        if (llen == sizeof line - 1) llen = 0;
        continue;
      }
      if (c->state == DONE) continue;
      if (c->state == CONNECTING) on_writable(c);
      else on_readable(c);
    }
    pump();
  }
  report();
  return 0;
}
