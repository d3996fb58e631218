/* Files are read synchronously: static content here is small pages and
 * assets (the console, examples), capped at 16 MiB per file. */
#include "http_static.h"
#include "core/xalloc.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define SL_STATIC_MAX (16 << 20)

typedef struct mount {
  char *root;                /* realpath of the directory */
  size_t prefix_len;         /* of the URL prefix, without its final '/' */
} mount_t;

void *sl_http_static_new(const char *prefix, const char *dir, const char *config_file, sl_diags_t *d,
                         const sl_cnode_t *at) {
  char *path = sl_conf_path(config_file, dir);
  char *real = realpath(path, NULL);
  struct stat st;
  if (!real || stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
    sl_diag_add(d, at, "http.static.dir", "%s is not a directory", path);
    free(path);
    free(real);
    return NULL;
  }
  free(path);
  mount_t *m = sl_xmalloc(sizeof(*m));
  m->root = real;
  m->prefix_len = strlen(prefix) - 1;
  return m;
}

void sl_http_static_free(void *mount) {
  mount_t *m = mount;
  if (!m) return;
  free(m->root);
  free(m);
}

static const char *content_type(const char *path) {
  static const struct { const char *ext, *type; } types[] = {
    {".html", "text/html; charset=utf-8"}, {".htm", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"}, {".json", "application/json"},
    {".svg", "image/svg+xml"}, {".png", "image/png"}, {".jpg", "image/jpeg"}, {".jpeg", "image/jpeg"},
    {".gif", "image/gif"}, {".webp", "image/webp"}, {".ico", "image/x-icon"}, {".txt", "text/plain; charset=utf-8"},
    {".wasm", "application/wasm"}, {".woff2", "font/woff2"}, {".map", "application/json"},
  };
  const char *dot = strrchr(path, '.');
  for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
    if (strcasecmp(dot, types[i].ext) == 0) return types[i].type;
  return "application/octet-stream";
}

/* A path segment of ".." or "." never reaches the file system. */
static int has_dot_segment(const char *p) {
  for (const char *s = p; *s;) {
    while (*s == '/') s++;
    const char *e = strchr(s, '/');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) return 1;
    s += n;
  }
  return 0;
}

void sl_http_static_serve(sl_http_req_t *r, void *arg) {
  mount_t *m = arg;
  /* What follows the prefix names the file ("" for the prefix itself). */
  const char *rest = strlen(r->path) > m->prefix_len ? r->path + m->prefix_len : "";
  if (has_dot_segment(rest)) {
    sl_http_error(r, 404, "not found");
    return;
  }
  char *full = sl_xasprintf("%s%s", m->root, rest);
  struct stat st;
  if (stat(full, &st) == 0 && S_ISDIR(st.st_mode)) {
    char *idx = sl_xasprintf("%s/index.html", full);
    free(full);
    full = idx;
  }
  char *real = realpath(full, NULL);
  free(full);
  size_t rl = strlen(m->root);
  if (!real || strncmp(real, m->root, rl) != 0 || real[rl] != '/' || stat(real, &st) != 0 || !S_ISREG(st.st_mode)) {
    free(real);
    sl_http_error(r, 404, "not found");
    return;
  }
  char etag[64];
  snprintf(etag, sizeof etag, "\"%llx-%llx\"", (unsigned long long)st.st_size,
           (unsigned long long)st.st_mtim.tv_sec * 1000000000ull + (unsigned long long)st.st_mtim.tv_nsec);
  sl_kvlist_t h = {0};
  sl_kv_add(&h, "ETag", etag, strlen(etag));
  sl_kv_add(&h, "Cache-Control", "no-cache", 8);
  const char *inm = sl_kv_get(&r->headers, "if-none-match");
  if (inm && strstr(inm, etag)) {
    free(real);
    sl_http_respond(r, 304, NULL, NULL, 0, &h);
    sl_kv_clear(&h);
    return;
  }
  if (st.st_size > SL_STATIC_MAX) {
    free(real);
    sl_kv_clear(&h);
    sl_http_error(r, 500, "file too large to serve");
    return;
  }
  int fd = open(real, O_RDONLY | O_CLOEXEC);
  char *buf = sl_xmalloc((size_t)st.st_size + 1);
  ssize_t got = 0;
  while (fd >= 0 && got < st.st_size) {
    ssize_t n = read(fd, buf + got, (size_t)(st.st_size - got));
    if (n <= 0) break;
    got += n;
  }
  if (fd >= 0) close(fd);
  if (got != st.st_size) sl_http_error(r, 500, "cannot read file");
  else sl_http_respond(r, 200, content_type(real), buf, (size_t)got, &h);
  free(buf);
  free(real);
  sl_kv_clear(&h);
}
