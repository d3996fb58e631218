/* The tar scanner (Benthos's `tar`): each entry of a tar archive is a
 * message, its name in metadata `tar_name`. Read by libarchive, which pulls
 * its input: it runs on a thread of its own that the scanning thread hands
 * every step to and waits for (never both at once), so the bytes can still be
 * pushed as they arrive. Ownership: whoever makes one frees it (which ends
 * the thread); it copies what it takes. */
#ifndef SL_CONN_SCAN_TAR_H
#define SL_CONN_SCAN_TAR_H
#include "scanner.h"

typedef struct sl_tar sl_tar_t;

/* max: the longest entry kept (longer ones are flagged and truncated). */
sl_tar_t *sl_tar_new(size_t max);
/* As sl_scanner_scan. */
size_t sl_tar_scan(sl_tar_t *t, const char *p, size_t n, int eof, sl_scan_out_t *o);
void sl_tar_free(sl_tar_t *t);

#endif
