/* Streaming decompressors for the decompress scanner (Benthos's algorithms):
 * gzip (pgzip reads as gzip), zlib and flate by zlib, bzip2 by libbz2, lz4
 * frames by liblz4, zstd frames by libzstd, and snappy's framing format with
 * its chunks uncompressed by libsnappy. Concatenated gzip members, bzip2
 * streams, lz4 and zstd frames read as one stream; zlib and flate hold one.
 * Ownership: whoever makes one frees it; it keeps no pointer into the bytes
 * it is given (snappy copies a chunk that arrives in pieces). */
#ifndef SL_CONN_UNPACK_H
#define SL_CONN_UNPACK_H
#include <stddef.h>

typedef struct sl_unpack sl_unpack_t;

/* The algorithm names the decompress scanner accepts (NULL-terminated). */
extern const char *const sl_unpack_algorithms[];

sl_unpack_t *sl_unpack_new(const char *algorithm);   /* one of sl_unpack_algorithms */
/* Decompresses from in[0..*inl) into out[0..*outl); on return *inl and *outl
 * are the bytes taken and made. eof: nothing follows in[*inl). Returns 0
 * (call again with more input or room), 1 once the data has ended (zlib,
 * flate: the stream's end; the others: eof at the end of a member or frame)
 * or -1 with *err (a static message), e.g. when the input ends early. */
int sl_unpack(sl_unpack_t *u, const char *in, size_t *inl, char *out, size_t *outl, int eof, const char **err);
void sl_unpack_free(sl_unpack_t *u);

#endif
