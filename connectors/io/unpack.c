#include "unpack.h"
#include "core/xalloc.h"
#include <bzlib.h>
#include <lz4frame.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

const char *const sl_unpack_algorithms[] = {"gzip", "pgzip", "zlib", "flate", "bzip2", "lz4", "zstd", "snappy", NULL};

typedef enum { A_ZLIB, A_BZIP2, A_LZ4, A_ZSTD, A_SNAPPY } alg_t;

/* zstd frames may ask for a window of up to 2 GiB: a frame that needs more
 * than this is refused instead of held (the zstd tool's default is 8 MiB). */
#define ZSTD_WINDOW_LOG_MAX 24

/* snappy's framing format: 4-byte chunk headers (type, 24-bit length);
 * a data chunk holds a 4-byte checksum and at most 64 KiB uncompressed. */
enum { SNAPPY_BLOCK = 65536 };

struct sl_unpack {
  alg_t alg;
  int multi;                  /* members, streams or frames may follow one another */
  int boundary;               /* at the end of a member or frame (or before the first) */
  int started;                /* zlib, bzip2: a member or stream has begun (a new one needs a reset) */
  z_stream z;
  int window_bits;
  bz_stream bz;
  LZ4F_dctx *lz4;
  ZSTD_DStream *zstd;
  /* snappy */
  unsigned char hdr[4];
  size_t hn, clen, cn, skip, dpos, dlen;
  int ctype, seen_id;
  char *chunk, *dec;
};

sl_unpack_t *sl_unpack_new(const char *algorithm) {
  sl_unpack_t *u = sl_xcalloc(1, sizeof(*u));
  u->boundary = 1;
  u->multi = 1;
  if (!strcmp(algorithm, "bzip2")) {
    u->alg = A_BZIP2;
    BZ2_bzDecompressInit(&u->bz, 0, 0);
  } else if (!strcmp(algorithm, "lz4")) {
    u->alg = A_LZ4;
    LZ4F_createDecompressionContext(&u->lz4, LZ4F_VERSION);
  } else if (!strcmp(algorithm, "zstd")) {
    u->alg = A_ZSTD;
    u->zstd = ZSTD_createDStream();
    ZSTD_DCtx_setParameter(u->zstd, ZSTD_d_windowLogMax, ZSTD_WINDOW_LOG_MAX);
  } else if (!strcmp(algorithm, "snappy")) {
    u->alg = A_SNAPPY;
    u->chunk = sl_xmalloc(4 + snappy_max_compressed_length(SNAPPY_BLOCK));
    u->dec = sl_xmalloc(SNAPPY_BLOCK);
  } else {
    u->alg = A_ZLIB;
    u->window_bits = !strcmp(algorithm, "zlib") ? 15 : !strcmp(algorithm, "flate") ? -15 : 16 + 15;
    u->multi = u->window_bits > 15;
    inflateInit2(&u->z, u->window_bits);
  }
  return u;
}

void sl_unpack_free(sl_unpack_t *u) {
  if (!u) return;
  if (u->alg == A_ZLIB) inflateEnd(&u->z);
  if (u->alg == A_BZIP2) BZ2_bzDecompressEnd(&u->bz);
  if (u->lz4) LZ4F_freeDecompressionContext(u->lz4);
  if (u->zstd) ZSTD_freeDStream(u->zstd);
  free(u->chunk);
  free(u->dec);
  free(u);
}

/* One call of the library on in/out; *inl and *outl become what it took and
 * made. -1 with *err, 1 when a single-stream format ended, else 0. */
static int lib_step(sl_unpack_t *u, const char *in, size_t *inl, char *out, size_t *outl, const char **err) {
  switch (u->alg) {
  case A_ZLIB: {
    if (u->boundary && u->started) {
      if (!u->multi) return 1;
      *outl = 0;
      if (!*inl) return 0;
      inflateReset(&u->z);   /* another gzip member */
    }
    u->z.next_in = (Bytef *)in;
    u->z.avail_in = (uInt)(*inl > (1u << 30) ? 1u << 30 : *inl);
    u->z.next_out = (Bytef *)out;
    u->z.avail_out = (uInt)(*outl > (1u << 30) ? 1u << 30 : *outl);
    uInt in0 = u->z.avail_in, out0 = u->z.avail_out;
    int rc = inflate(&u->z, Z_NO_FLUSH);
    *inl = in0 - u->z.avail_in;
    *outl = out0 - u->z.avail_out;
    if (*inl || *outl) u->started = 1, u->boundary = 0;
    if (rc == Z_STREAM_END) {
      u->boundary = 1;
      return u->multi ? 0 : 1;
    }
    if (rc == Z_OK || rc == Z_BUF_ERROR) return 0;
    *err = u->z.msg ? u->z.msg : "bad data";
    return -1;
  }
  case A_BZIP2: {
    if (u->boundary && u->started) {
      *outl = 0;
      if (!*inl) return 0;
      BZ2_bzDecompressEnd(&u->bz);   /* another stream */
      memset(&u->bz, 0, sizeof u->bz);
      BZ2_bzDecompressInit(&u->bz, 0, 0);
    }
    u->bz.next_in = (char *)in;
    u->bz.avail_in = (unsigned)(*inl > (1u << 30) ? 1u << 30 : *inl);
    u->bz.next_out = out;
    u->bz.avail_out = (unsigned)(*outl > (1u << 30) ? 1u << 30 : *outl);
    unsigned in0 = u->bz.avail_in, out0 = u->bz.avail_out;
    int rc = BZ2_bzDecompress(&u->bz);
    *inl = in0 - u->bz.avail_in;
    *outl = out0 - u->bz.avail_out;
    if (*inl || *outl) u->started = 1, u->boundary = 0;
    if (rc == BZ_STREAM_END) {
      u->boundary = 1;
      return 0;
    }
    if (rc == BZ_OK) return 0;
    *err = rc == BZ_DATA_ERROR_MAGIC ? "not bzip2 data" : rc == BZ_MEM_ERROR ? "out of memory" : "bad bzip2 data";
    return -1;
  }
  case A_LZ4: {
    size_t rc = LZ4F_decompress(u->lz4, out, outl, in, inl, NULL);
    if (LZ4F_isError(rc)) {
      *outl = 0;   /* the sizes are not said to be set on an error */
      *err = LZ4F_getErrorName(rc);
      return -1;
    }
    if (*inl || *outl) u->boundary = rc == 0;
    return 0;
  }
  case A_ZSTD: {
    ZSTD_inBuffer ib = {in, *inl, 0};
    ZSTD_outBuffer ob = {out, *outl, 0};
    size_t rc = ZSTD_decompressStream(u->zstd, &ob, &ib);
    *inl = ib.pos;
    *outl = ob.pos;
    if (ZSTD_isError(rc)) {
      *err = ZSTD_getErrorName(rc);
      return -1;
    }
    if (*inl || *outl) u->boundary = rc == 0;
    return 0;
  }
  case A_SNAPPY: break;
  }
  return 0;
}

/* snappy's framing: chunks are gathered whole (at most ~76 KiB), skippable
 * ones counted past; a data chunk is uncompressed into dec and handed out
 * from there. The checksums are not verified (no Debian library has CRC-32C);
 * libsnappy still refuses a chunk that does not decode to its length. */
static int snappy_chunks(sl_unpack_t *u, const char *in, size_t *inl, char *out, size_t *outl, const char **err) {
  size_t took = 0, made = 0;
  int rc = 0;
  for (;;) {
    if (u->dpos < u->dlen) {
      size_t k = u->dlen - u->dpos < *outl - made ? u->dlen - u->dpos : *outl - made;
      memcpy(out + made, u->dec + u->dpos, k);
      made += k;
      u->dpos += k;
      if (u->dpos < u->dlen) break;
    }
    if (took == *inl) break;
    if (u->skip) {
      size_t k = u->skip < *inl - took ? u->skip : *inl - took;
      u->skip -= k;
      took += k;
      continue;
    }
    if (u->hn < 4) {
      while (u->hn < 4 && took < *inl) u->hdr[u->hn++] = (unsigned char)in[took++];
      if (u->hn < 4) break;
      u->ctype = u->hdr[0];
      u->clen = u->hdr[1] | (size_t)u->hdr[2] << 8 | (size_t)u->hdr[3] << 16;
      u->cn = 0;
      if (u->ctype >= 0x80 && u->ctype <= 0xfe) {   /* padding and reserved skippable chunks */
        u->skip = u->clen;
        u->hn = 0;
        continue;
      }
      if (u->ctype >= 0x02 && u->ctype <= 0x7f) {
        *err = "snappy: a reserved chunk that may not be skipped";
        rc = -1;
        break;
      }
      if (u->ctype == 0xff ? u->clen != 6 : u->clen < 4 || u->clen > 4 + snappy_max_compressed_length(SNAPPY_BLOCK) ||
                                                 (u->ctype == 0x01 && u->clen > 4 + SNAPPY_BLOCK)) {
        *err = "snappy: a chunk of a length the framing format does not allow";
        rc = -1;
        break;
      }
      if (u->ctype != 0xff && !u->seen_id) {
        *err = "snappy: the stream does not start with the framing format's stream identifier";
        rc = -1;
        break;
      }
    }
    size_t k = u->clen - u->cn < *inl - took ? u->clen - u->cn : *inl - took;
    memcpy(u->chunk + u->cn, in + took, k);
    u->cn += k;
    took += k;
    if (u->cn < u->clen) break;
    u->hn = 0;
    if (u->ctype == 0xff) {
      if (memcmp(u->chunk, "sNaPpY", 6)) {
        *err = "snappy: a stream identifier other than sNaPpY";
        rc = -1;
        break;
      }
      u->seen_id = 1;
      continue;
    }
    size_t n = SNAPPY_BLOCK;
    if (u->ctype == 0x01) {
      n = u->clen - 4;
      memcpy(u->dec, u->chunk + 4, n);
    } else if (snappy_uncompressed_length(u->chunk + 4, u->clen - 4, &n) != SNAPPY_OK || n > SNAPPY_BLOCK ||
               snappy_uncompress(u->chunk + 4, u->clen - 4, u->dec, &n) != SNAPPY_OK) {
      *err = "snappy: a chunk that does not decode";
      rc = -1;
      break;
    }
    u->dpos = 0;
    u->dlen = n;
  }
  *inl = took;
  *outl = made;
  u->boundary = !u->hn && !u->skip && u->dpos == u->dlen;
  return rc;
}

int sl_unpack(sl_unpack_t *u, const char *in, size_t *inl, char *out, size_t *outl, int eof, const char **err) {
  size_t n = *inl;
  int rc = u->alg == A_SNAPPY ? snappy_chunks(u, in, inl, out, outl, err) : lib_step(u, in, inl, out, outl, err);
  if (rc) return rc;
  if (!eof || *inl < n || *outl) return 0;
  /* nothing more will come and nothing moved */
  if (u->boundary) return 1;
  *err = "the compressed input ends early";
  return -1;
}
