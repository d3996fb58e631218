/* amqp_login, the one variadic function of librabbitmq sluice calls: C
 * cannot pass a variadic call's arguments on, so unlike the library's other
 * functions (forwarders generated from core/lazylibs.txt, core/lazylib.h)
 * it is forwarded here, with the arguments its SASL method takes (PLAIN: the
 * user and the password; EXTERNAL: the identity). */
#include "core/lazy_rabbitmq.h"
#include <stdarg.h>

amqp_rpc_reply_t amqp_login(amqp_connection_state_t state, char const *vhost, int channel_max, int frame_max,
                            int heartbeat, amqp_sasl_method_enum sasl_method, ...) {
  va_list ap;
  va_start(ap, sasl_method);
  const char *user = va_arg(ap, const char *);
  const char *password = sasl_method == AMQP_SASL_METHOD_PLAIN ? va_arg(ap, const char *) : NULL;
  va_end(ap);
  const sl_lib_rabbitmq_t *lib = sl_lib_rabbitmq();
  if (password) return lib->amqp_login(state, vhost, channel_max, frame_max, heartbeat, sasl_method, user, password);
  return lib->amqp_login(state, vhost, channel_max, frame_max, heartbeat, sasl_method, user);
}
