/* params_file.c — saved parameters (docs/training.md, "Saved parameters"):
 *
 *   "BPCPARAM"                 8 bytes
 *   version                    u32: 2 (1 is read too: the same without the training state)
 *   element type               u32: 1 = float64, 2 = float32
 *   tensor count               u32
 *   per tensor                 u32 name length, name bytes, u32 rank, u64 dims[rank]
 *   data                       every tensor's elements in order, row-major
 *   training state             u32 L, then L bytes (version 2 only; L = 0: none)
 *   CRC-32 of all of the above u32 (zlib's crc32)
 *
 * The training state, written by bpc train --save and read by --resume
 * (L = 92 + A * elements * element size):
 *
 *   state format               u32 = 1
 *   optimiser                  u32: 0 sgd, 1 momentum, 2 adam, 3 rmsprop, 4 adagrad
 *   shuffle                    u32: 0 none, 1 epoch
 *   epochs completed           u32
 *   batches done               u64: of the next epoch (0 unless an interrupt saved mid-epoch)
 *   batch size                 u64
 *   training examples          u64
 *   seed                       u64: epoch e's shuffle is drawn from seed * 1000003 + e
 *   optimiser steps            u64: Adam's t
 *   loss sum, metric sum       f64, f64: over the examples done of the next epoch
 *   best validation loss       f64: +inf when none
 *   its epoch, epochs since    u32, u32 (0, 0 when none)
 *   A                          u32: the optimiser's arrays: sgd 0; momentum 1 (velocity);
 *                              rmsprop 1 (mean square); adagrad 1 (sum of squares);
 *                              adam 2 (first moment, then second)
 *   arrays                     A times as many elements as the data, in its element type
 *
 * All integers and floats little-endian. Files are written atomically, and
 * a file read back is checked whole before any parameter changes. Only the
 * parameters are needed to use a file (bpc eval, the generated loader):
 * a reader skips the L bytes. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "runtime.h"

static const char MAGIC[8] = {'B', 'P', 'C', 'P', 'A', 'R', 'A', 'M'};
enum { VERSION = 2, TYPE_F64 = 1, TYPE_F32 = 2, STATE_FORMAT = 1, STATE_FIXED_BYTES = 92 };

static void put_u32(Buf *b, uint32_t v) {
  unsigned char p[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                        (unsigned char)(v >> 24)};
  buf_append(b, p, 4);
}

static void put_u64(Buf *b, uint64_t v) {
  put_u32(b, (uint32_t)v);
  put_u32(b, (uint32_t)(v >> 32));
}

static void put_f64(Buf *b, double v) {
  uint64_t u;
  memcpy(&u, &v, 8);
  put_u64(b, u);
}

/* The training state block's contents (the opening comment). */
static void put_state(Buf *b, JitModel *m, const TrainState *st) {
  put_u32(b, STATE_FORMAT);
  put_u32(b, (uint32_t)st->optim);
  put_u32(b, (uint32_t)st->shuffle);
  put_u32(b, (uint32_t)st->epochs_done);
  put_u64(b, st->batches_done);
  put_u64(b, st->batch);
  put_u64(b, st->examples);
  put_u64(b, st->seed);
  put_u64(b, st->steps);
  put_f64(b, st->loss_sum);
  put_f64(b, st->metric_sum);
  put_f64(b, st->best_val);
  put_u32(b, (uint32_t)st->best_epoch);
  put_u32(b, (uint32_t)st->since_best);
  void *arrays[2] = {st->m, st->v};
  put_u32(b, (uint32_t)(optim_uses_array(st->optim, 0) + optim_uses_array(st->optim, 1)));
  for (int a = 0; a < 2; a++)
    if (optim_uses_array(st->optim, a)) buf_append(b, arrays[a], (size_t)m->nparams * m->elem);
}

int params_save_state(const char *path, JitModel *m, const void *params, const TrainState *st, char **err) {
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
  Buf state = {0};
  if (st) put_state(&state, m, st);
  put_u32(&b, (uint32_t)state.len);
  if (state.len) buf_append(&b, state.data, state.len);
  buf_free(&state);
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

int params_save(const char *path, JitModel *m, const void *params, char **err) {
  return params_save_state(path, m, params, NULL, err);
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

static int get_f64(Reader *r, double *v) {
  uint64_t u;
  if (!get_u64(r, &u)) return 0;
  memcpy(v, &u, 8);
  return 1;
}

/* n values of the file's element type (esize bytes each) into the model's. */
static void get_reals(const unsigned char *p, size_t esize, JitModel *m, void *out, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    double v;
    if (esize == 4) {
      float f;
      memcpy(&f, p + 4 * i, 4);
      v = f;
    } else {
      memcpy(&v, p + 8 * i, 8);
    }
    real_set(out, m->elem, (size_t)i, v);
  }
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

/* The training state block (the opening comment) into *st; NULL, or what
 * is wrong. The CRC has passed, so only a file made by hand gets here. */
static const char *read_state(const unsigned char *p, size_t len, JitModel *m, size_t esize, TrainState *st) {
  Reader r = {p, p + len};
  uint32_t format, optim, shuffle, epochs, best_epoch, since, arrays;
  memset(st, 0, sizeof *st);
  if (len < STATE_FIXED_BYTES) return "it is shorter than its fixed fields";
  get_u32(&r, &format);
  get_u32(&r, &optim);
  get_u32(&r, &shuffle);
  get_u32(&r, &epochs);
  get_u64(&r, &st->batches_done);
  get_u64(&r, &st->batch);
  get_u64(&r, &st->examples);
  get_u64(&r, &st->seed);
  get_u64(&r, &st->steps);
  get_f64(&r, &st->loss_sum);
  get_f64(&r, &st->metric_sum);
  get_f64(&r, &st->best_val);
  get_u32(&r, &best_epoch);
  get_u32(&r, &since);
  get_u32(&r, &arrays);
  if (format != STATE_FORMAT) return "its format is not 1";
  if (optim > OPT_ADAGRAD) return "unknown optimiser";
  if (shuffle > SHUFFLE_EPOCH) return "unknown shuffle";
  uint64_t per_epoch = st->batch ? st->examples / st->batch + (st->examples % st->batch != 0) : 0;
  if (st->batch == 0 || st->batch > st->examples || st->batches_done > per_epoch || epochs > 1000000 ||
      best_epoch > epochs || since > epochs)
    return "its position in the training is impossible";
  if (!isfinite(st->loss_sum) || !isfinite(st->metric_sum) || isnan(st->best_val))
    return "a sum in it is not a number";
  st->optim = (OptKind)optim;
  st->shuffle = (ShuffleKind)shuffle;
  st->epochs_done = (int)epochs;
  st->best_epoch = (int)best_epoch;
  st->since_best = (int)since;
  int want = optim_uses_array(st->optim, 0) + optim_uses_array(st->optim, 1);
  if (arrays != (uint32_t)want) return "its number of arrays does not fit its optimiser";
  size_t bytes = (size_t)m->nparams * esize;
  if ((size_t)(r.end - r.p) != want * bytes) return "its length does not fit its arrays";
  void **dst[2] = {&st->m, &st->v};
  for (int a = 0; a < 2; a++) {
    if (!optim_uses_array(st->optim, a)) continue;
    *dst[a] = calloc((size_t)m->nparams + 1, m->elem);
    get_reals(r.p, esize, m, *dst[a], m->nparams);
    r.p += bytes;
  }
  return NULL;
}

void train_state_free(TrainState *st) {
  free(st->m);
  free(st->v);
  st->m = st->v = NULL;
}

static uint32_t le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Reads a file whole and checks it; the training state into *st when st
 * is not NULL. */
static int read_params(const char *path, JitModel *m, void *params, TrainState *st, int *has, char **err) {
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
  crc_saved = le32(data + len - 4);
  if (!get_u32(&r, &version) || !get_u32(&r, &type) || !get_u32(&r, &count)) BAD("%s is truncated", path);
  if (version != 1 && version != VERSION)
    BAD("%s has format version %u; this bpc reads versions 1 and %d", path, version, VERSION);
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
  size_t values = (size_t)m->nparams * esize, rest = (size_t)(r.end - r.p), state_len = 0;
  if (version == 1) {
    if (rest != values + 4)
      BAD("%s is %s: expected %zu bytes of values and checksum, found %zu", path,
          rest < values + 4 ? "truncated" : "longer than its header says", values + 4, rest);
  } else {
    if (rest < values + 8)
      BAD("%s is truncated: expected at least %zu bytes of values, training state and checksum, found %zu",
          path, values + 8, rest);
    state_len = le32(r.p + values);
    if (rest != values + 8 + state_len)
      BAD("%s is %s: expected %zu bytes of values, training state and checksum, found %zu", path,
          rest < values + 8 + state_len ? "truncated" : "longer than its header says", values + 8 + state_len,
          rest);
  }
  if ((uint32_t)crc32(0L, data, (uInt)(len - 4)) != crc_saved)
    BAD("%s is damaged: its checksum does not match its contents", path);
  if (st) {
    *has = state_len > 0;
    const char *why = state_len ? read_state(r.p + values + 4, state_len, m, esize, st) : NULL;
    if (why) {
      train_state_free(st);
      BAD("%s: its training state is damaged (%s)", path, why);
    }
  }
  get_reals(r.p, esize, m, params, m->nparams);
  rc = 0;
out:
  free(data);
  return rc;
}

int params_load(const char *path, JitModel *m, void *params, char **err) {
  return read_params(path, m, params, NULL, NULL, err);
}

int params_load_state(const char *path, JitModel *m, void *params, TrainState *st, int *has, char **err) {
  memset(st, 0, sizeof *st);
  *has = 0;
  return read_params(path, m, params, st, has, err);
}
