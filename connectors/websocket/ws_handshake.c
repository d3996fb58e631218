#include "ws_handshake.h"
#include "core/rand.h"
#include "core/xalloc.h"
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* host[:port] at p into u (u->port holds the default); *rest: what follows. */
static int parse_host(const char *p, sl_wsh_url_t *u, const char **rest, char **why) {
  size_t hl;
  if (*p == '[') {
    const char *e = strchr(p, ']');
    if (!e) {
      *why = sl_xstrdup("an IPv6 address lacks its ]");
      return -1;
    }
    u->host = sl_xstrndup(p + 1, (size_t)(e - p - 1));
    *rest = e + 1;
  } else {
    hl = strcspn(p, ":/?#");
    u->host = sl_xstrndup(p, hl);
    *rest = p + hl;
  }
  if (!*u->host) {
    *why = sl_xstrdup("no host");
    return -1;
  }
  if (**rest == ':') {
    char *end;
    long port = strtol(*rest + 1, &end, 10);
    if (end == *rest + 1 || port < 1 || port > 65535) {
      *why = sl_xstrdup("a port is 1-65535");
      return -1;
    }
    u->port = (int)port;
    *rest = end;
  }
  return 0;
}

static char *host_port(const sl_wsh_url_t *u) {
  return strchr(u->host, ':') ? sl_xasprintf("[%s]:%d", u->host, u->port) : sl_xasprintf("%s:%d", u->host, u->port);
}

int sl_wsh_parse_url(const char *url, sl_wsh_url_t *u, char **why) {
  *u = (sl_wsh_url_t){0};
  const char *p;
  if (!strncasecmp(url, "ws://", 5)) {
    p = url + 5;
    u->port = 80;
  } else if (!strncasecmp(url, "wss://", 6)) {
    p = url + 6;
    u->port = 443;
    u->tls = 1;
  } else {
    *why = sl_xstrdup("the scheme must be ws:// or wss://");
    return -1;
  }
  size_t al = strcspn(p, "/?#");
  if (memchr(p, '@', al)) {
    *why = sl_xstrdup("user info in the URL: give it in basic_auth");
    return -1;
  }
  const char *rest;
  if (parse_host(p, u, &rest, why) != 0) return -1;
  if (*rest && *rest != '/' && *rest != '?') {
    *why = sl_xasprintf("unexpected '%c' after the host", *rest);
    return -1;
  }
  for (const char *q = rest; *q; q++)
    if ((unsigned char)*q <= ' ' || *q == 0x7f) {
      *why = sl_xstrdup("spaces and control characters must be %-encoded");
      return -1;
    }
  size_t tl = strcspn(rest, "#");
  u->target = *rest == '/' ? sl_xstrndup(rest, tl) : sl_xasprintf("/%.*s", (int)tl, rest);
  u->hostport = host_port(u);
  return 0;
}

static int hexval(char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* n bytes of s, %XX decoded (a bad escape stays as it is). */
static char *unescape(const char *s, size_t n, size_t *len) {
  char *o = sl_xmalloc(n + 1);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
      o[k++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
      i += 2;
    } else {
      o[k++] = s[i];
    }
  }
  o[k] = 0;
  *len = k;
  return o;
}

int sl_wsh_parse_proxy(const char *url, sl_wsh_url_t *u, char **auth, char **why) {
  *u = (sl_wsh_url_t){.port = 80};
  *auth = NULL;
  if (!strncasecmp(url, "https://", 8)) {
    *why = sl_xstrdup("an https:// proxy is not supported: give an http:// one (CONNECT; a wss:// URL's TLS still "
                      "runs end to end through it)");
    return -1;
  }
  if (strncasecmp(url, "http://", 7)) {
    *why = sl_xstrdup("the scheme must be http://");
    return -1;
  }
  const char *p = url + 7, *at = NULL;
  size_t al = strcspn(p, "/?#");
  for (size_t i = 0; i < al; i++)
    if (p[i] == '@') at = p + i;
  if (at) {
    size_t n;
    char *ui = unescape(p, (size_t)(at - p), &n);
    char *b64 = sl_xmalloc(4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)ui, (int)n);
    *auth = sl_xasprintf("Basic %s", b64);
    free(b64);
    free(ui);
    p = at + 1;
  }
  const char *rest;
  int bad = parse_host(p, u, &rest, why) != 0;
  if (!bad && *rest && strcmp(rest, "/")) {
    *why = sl_xstrdup("a proxy URL has no path, query or fragment");
    bad = 1;
  }
  if (bad) {
    free(*auth);
    *auth = NULL;
    return -1;
  }
  u->hostport = host_port(u);
  u->target = sl_xstrdup("/");
  return 0;
}

char *sl_wsh_connect_request(const sl_wsh_url_t *to, const char *proxy_auth, size_t *len) {
  char *r = sl_xasprintf("CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s%s%s\r\n", to->hostport, to->hostport,
                         proxy_auth ? "Proxy-Authorization: " : "", proxy_auth ? proxy_auth : "", proxy_auth ? "\r\n" : "");
  *len = strlen(r);
  return r;
}

int sl_wsh_check_connect(const char *head, char **why) {
  int st = 0;
  if (sscanf(head, "HTTP/1.%*d %3d", &st) == 1 && st >= 200 && st < 300) return 0;
  *why = sl_xasprintf("the proxy refused the tunnel: %.*s", (int)strcspn(head, "\r\n"), head);
  return -1;
}

void sl_wsh_url_clear(sl_wsh_url_t *u) {
  free(u->host);
  free(u->hostport);
  free(u->target);
  *u = (sl_wsh_url_t){0};
}

char *sl_wsh_request(const sl_wsh_url_t *u, const char *auth, char key[32], size_t *len) {
  unsigned char raw[16];
  for (int i = 0; i < 16; i += 8) {
    uint64_t r = sl_rand64();
    memcpy(raw + i, &r, 8);
  }
  EVP_EncodeBlock((unsigned char *)key, raw, 16);
  int default_port = u->port == (u->tls ? 443 : 80);
  char *req = sl_xasprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nUser-Agent: sluice\r\n%s%s%s\r\n",
                           u->target, default_port && !strchr(u->host, ':') ? u->host : u->hostport, key,
                           auth ? "Authorization: " : "", auth ? auth : "", auth ? "\r\n" : "");
  *len = strlen(req);
  return req;
}

static const char *header_value(const char *head, const char *name, size_t *len) {
  size_t nl = strlen(name);
  for (const char *l = strstr(head, "\r\n"); l && l[2] != '\r'; l = strstr(l + 2, "\r\n")) {
    if (!strncasecmp(l + 2, name, nl) && l[2 + nl] == ':') {
      const char *v = l + 3 + nl;
      while (*v == ' ' || *v == '\t') v++;
      *len = strcspn(v, "\r");
      while (*len && (v[*len - 1] == ' ' || v[*len - 1] == '\t')) (*len)--;
      return v;
    }
  }
  return NULL;
}

int sl_wsh_check_response(const char *head, const char *key, char **why) {
  int code = 0;
  if (sscanf(head, "HTTP/1.%*[01] %d", &code) != 1 || code != 101) {
    *why = code ? sl_xasprintf("upgrade refused: HTTP %d", code) : sl_xstrdup("the server did not answer in HTTP");
    return -1;
  }
  char material[128];
  snprintf(material, sizeof material, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1((const unsigned char *)material, strlen(material), digest);
  unsigned char want[64];
  EVP_EncodeBlock(want, digest, SHA_DIGEST_LENGTH);
  size_t al = 0;
  const char *acc = header_value(head, "sec-websocket-accept", &al);
  if (!acc || al != strlen((char *)want) || memcmp(acc, want, al) != 0) {
    *why = sl_xstrdup("upgrade answer without the right Sec-WebSocket-Accept");
    return -1;
  }
  return 0;
}
