#include "conf_json.h"
#include <math.h>
#include <string.h>

static json_t *scalar(const sl_cnode_t *n) {
  const char *s = n->str ? n->str : "";
  /* A default the spec inserted is typed by its field: "" stays a string. */
  if (n->quoted || n->block || (n->synthetic && !*s)) return json_stringn(s, n->len);
  if (!*s || !strcmp(s, "~") || !strcmp(s, "null")) return json_null();
  int b;
  if (sl_parse_bool(s, &b) == 0) return json_boolean(b);
  int64_t i;
  if (sl_parse_int(s, &i) == 0) return json_integer(i);
  double d;
  if (sl_parse_float(s, &d) == 0 && isfinite(d)) return json_real(d);
  return json_stringn(s, n->len);
}

json_t *sl_cnode_to_json(const sl_cnode_t *n) {
  if (!n) return json_null();
  switch (n->type) {
  case SL_CN_SCALAR: return scalar(n);
  case SL_CN_MAP: {
    json_t *o = json_object();
    for (uint32_t i = 0; i < n->n; i++) json_object_set_new(o, n->keys[i], sl_cnode_to_json(n->items[i]));
    return o;
  }
  case SL_CN_SEQ: {
    json_t *a = json_array();
    for (uint32_t i = 0; i < n->n; i++) json_array_append_new(a, sl_cnode_to_json(n->items[i]));
    return a;
  }
  default: return json_null();
  }
}
