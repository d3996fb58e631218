/* What the `nats` and `nats_jetstream` outputs share: the subject and
 * headers evaluated per message, the link, and readiness. Ownership: the
 * output owns both; runs on the loop. */
#ifndef SL_NATS_OUTPUT_H
#define SL_NATS_OUTPUT_H
#include "clients/nats_link.h"
#include "lua/lhost.h"

extern const sl_field_t sl_nats_meta_fields[];

#define SL_NATS_OUT_FIELDS                                                                                   \
  SL_NATS_COMMON_FIELDS,                                                                                     \
  {"subject", SL_F_STRING, NULL, SL_REQUIRED,                                                                 \
   "Subject, interpolated per message (`orders.${! meta.region }`); may use the request context "          \
   "(`${ctx.jwt.sub}`, `$tyk_context.request_data_user`) in a request-scoped stream. A message whose "       \
   "subject comes out empty, with wildcards or whitespace fails with the reason.", NULL, NULL},              \
  {"headers", SL_F_MAP, NULL, 0, "Headers to set, values interpolated per message.", NULL, NULL},          \
  {"metadata", SL_F_OBJECT, NULL, 0, "Which metadata to send as headers (none by default).", NULL,         \
   sl_nats_meta_fields}

typedef struct sl_nats_out {
  sl_output_t base;
  sl_nats_conf_t *conf;
  sl_nats_t *link;
  sl_nats_cbs_t cbs;
  void *setup_arg;
  sl_interp_t *subject;
  char *static_subject;
  int static_ok;             /* static_subject was checked when built */
  uint32_t nheaders;
  char **hkeys;
  sl_interp_t **hvals;
  char **prefixes;           /* NULL-terminated */
  int all_meta;              /* an empty prefix: every key */
  void (*on_up)(struct sl_nats_out *o);   /* optional: connected and set up */
  void (*closed)(sl_output_t *o, void *arg);   /* the stream's close callback */
} sl_nats_out_t;

/* Reads the shared fields; 0 or -1 with diags. */
int sl_nats_out_init(sl_nats_out_t *o, sl_build_t *b, const sl_cnode_t *conf);
/* Connects (wake: publish acknowledgements are queued). 0 or -1. */
int sl_nats_out_start(sl_nats_out_t *o, void (*wake)(void *arg), int queue_max);
/* Message i of b as a NATS message (reply: its reply subject, or NULL), or
 * NULL with *err (malloc'd). */
natsMsg *sl_nats_out_msg(sl_nats_out_t *o, sl_msg_t *m, uint32_t i, const char *reply, char **err);
/* Publishes message i of b on core NATS (reply as above). NATS_OK with
 * *err (malloc'd) when the message could not be made; else cnats's status. */
natsStatus sl_nats_out_publish(sl_nats_out_t *o, natsConnection *nc, sl_msg_t *m, uint32_t i, const char *reply,
                               char **err);
/* Flushes and ends the connection, then done (the output's close). */
void sl_nats_out_end(sl_nats_out_t *o, void (*done)(sl_output_t *, void *), void *arg);
void sl_nats_out_free(sl_nats_out_t *o);   /* what init and start made, and o */
const char *sl_nats_out_sname(const sl_nats_out_t *o);

#endif
