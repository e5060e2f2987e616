/* params_file.c — saved parameters (docs/file-formats.md):
 *
 *   "BPCPARAM"                 8 bytes
 *   version                    u32 = 1
 *   element type               u32: 1 = float64, 2 = float32
 *   tensor count               u32
 *   per tensor                 u32 name length, name bytes, u32 rank, u64 dims[rank]
 *   data                       every tensor's elements in order, row-major
 *   CRC-32 of all of the above u32 (zlib's crc32)
 *
 * All integers and floats little-endian. Files are written atomically, and
 * a file read back is checked whole before any parameter changes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "runtime.h"

static const char MAGIC[8] = {'B', 'P', 'C', 'P', 'A', 'R', 'A', 'M'};
enum { VERSION = 1, TYPE_F64 = 1, TYPE_F32 = 2 };

static void put_u32(Buf *b, uint32_t v) {
  unsigned char p[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                        (unsigned char)(v >> 24)};
  buf_append(b, p, 4);
}

static void put_u64(Buf *b, uint64_t v) {
  put_u32(b, (uint32_t)v);
  put_u32(b, (uint32_t)(v >> 32));
}

int params_save(const char *path, JitModel *m, const void *params, char **err) {
  Buf b = {0};
  buf_append(&b, MAGIC, 8);
  put_u32(&b, VERSION);
  put_u32(&b, m->use_float ? TYPE_F32 : TYPE_F64);
  put_u32(&b, (uint32_t)m->info.params.len);
  for (int i = 0; i < m->info.params.len; i++) {
    const TensorInfo *t = &m->info.params.items[i];
    put_u32(&b, (uint32_t)strlen(t->name));
    buf_append(&b, t->name, strlen(t->name));
    put_u32(&b, (uint32_t)t->rank);
    for (int k = 0; k < t->rank; k++)
      put_u64(&b, (uint64_t)t->dim[k]);
  }
  /* x86-64 and arm64 are little-endian, as is the format */
  buf_append(&b, params, (size_t)m->nparams * m->elem);
  put_u32(&b, (uint32_t)crc32(0L, (const Bytef *)b.data, (uInt)b.len));
  const char *paths[1] = {path};
  Buf *bufs[1] = {&b};
  const char *why = NULL;
  int failed = write_files_atomically(paths, bufs, 1, &why);
  buf_free(&b);
  if (failed >= 0) {
    *err =
        str_printf("cannot save parameters to %s: %s (the previous file, if any, is unchanged)", path, why);
    return 1;
  }
  return 0;
}

typedef struct Reader {
  const unsigned char *p, *end;
} Reader;

static int get(Reader *r, void *out, size_t n) {
  if ((size_t)(r->end - r->p) < n) return 0;
  memcpy(out, r->p, n);
  r->p += n;
  return 1;
}

static int get_u32(Reader *r, uint32_t *v) {
  unsigned char p[4];
  if (!get(r, p, 4)) return 0;
  *v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
  return 1;
}

static int get_u64(Reader *r, uint64_t *v) {
  uint32_t lo, hi;
  if (!get_u32(r, &lo) || !get_u32(r, &hi)) return 0;
  *v = (uint64_t)hi << 32 | lo;
  return 1;
}

/* A parameter file is read whole (it is validated before anything is used). */
static unsigned char *slurp(const char *path, size_t *len, char **err) {
  const char *why = NULL;
  char *data = read_whole_file(path, (size_t)1 << 40, len, &why);
  if (!data) *err = str_printf("cannot open %s: %s", path, why);
  return (unsigned char *)data;
}

#define BAD(...)                                                                                             \
  do {                                                                                                       \
    *err = str_printf(__VA_ARGS__);                                                                          \
    goto out;                                                                                                \
  } while (0)

int params_load(const char *path, JitModel *m, void *params, char **err) {
  size_t len = 0;
  unsigned char *data = slurp(path, &len, err);
  if (!data) return 1;
  int rc = 1;
  Reader r = {data, data + len};
  char magic[8];
  uint32_t version, type, count, crc_saved;
  if (!get(&r, magic, 8) || memcmp(magic, MAGIC, 8))
    BAD("%s is not a bpc parameter file (it does not start with BPCPARAM)", path);
  if (len < 12 + 4) BAD("%s is truncated", path);
  crc_saved = (uint32_t)data[len - 4] | (uint32_t)data[len - 3] << 8 | (uint32_t)data[len - 2] << 16 |
              (uint32_t)data[len - 1] << 24;
  if (!get_u32(&r, &version) || !get_u32(&r, &type) || !get_u32(&r, &count)) BAD("%s is truncated", path);
  if (version != VERSION) BAD("%s has format version %u; this bpc reads version %d", path, version, VERSION);
  if (type != TYPE_F64 && type != TYPE_F32) BAD("%s: unknown element type %u", path, type);
  if (count != (uint32_t)m->info.params.len)
    BAD("%s holds %u tensors, but %s has %d parameters", path, count, m->info.name, m->info.params.len);
  for (uint32_t i = 0; i < count; i++) {
    const TensorInfo *t = &m->info.params.items[i];
    uint32_t nlen, rank;
    char name[BPC_MAX_IDENT + 1];
    if (!get_u32(&r, &nlen) || nlen > BPC_MAX_IDENT || !get(&r, name, nlen) || !get_u32(&r, &rank) ||
        rank > BPC_MAX_RANK)
      BAD("%s is damaged or truncated in the description of tensor %u", path, i + 1);
    name[nlen] = 0;
    int64_t dims[BPC_MAX_RANK] = {0};
    int sane = 1; /* every dimension within the limit, so the shape can be printed */
    for (uint32_t k = 0; k < rank; k++) {
      uint64_t dim;
      if (!get_u64(&r, &dim)) BAD("%s is truncated in the description of tensor '%s'", path, name);
      sane &= dim <= (uint64_t)BPC_MAX_DIM;
      dims[k] = sane ? (int64_t)dim : 0;
    }
    if (strcmp(name, t->name))
      BAD("%s does not fit %s: tensor %u is '%s' in the file but '%s' in the model", path, m->info.name,
          i + 1, name, t->name);
    char in_file[BPC_DIMS_TEXT], in_model[BPC_DIMS_TEXT];
    if (!sane || !tensor_has_shape(t, (int)rank, dims))
      BAD("%s does not fit %s: '%s' has shape %s in the file but %s in the model", path, m->info.name, name,
          sane ? format_dims(in_file, (int)rank, dims) : "(invalid)", format_dims(in_model, t->rank, t->dim));
  }
  size_t esize = type == TYPE_F32 ? 4 : 8;
  size_t need = (size_t)m->nparams * esize + 4;
  if ((size_t)(r.end - r.p) != need)
    BAD("%s is %s: expected %zu bytes of values and checksum, found %zu", path,
        (size_t)(r.end - r.p) < need ? "truncated" : "longer than its header says", need,
        (size_t)(r.end - r.p));
  if ((uint32_t)crc32(0L, data, (uInt)(len - 4)) != crc_saved)
    BAD("%s is damaged: its checksum does not match its contents", path);
  for (int64_t i = 0; i < m->nparams; i++) {
    double v;
    if (esize == 4) {
      float f;
      memcpy(&f, r.p + 4 * i, 4);
      v = f;
    } else {
      memcpy(&v, r.p + 8 * i, 8);
    }
    real_set(params, m->elem, (size_t)i, v);
  }
  rc = 0;
out:
  free(data);
  return rc;
}
