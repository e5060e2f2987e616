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
 * a file read back is checked whole before any parameter changes: first on
 * its own (params_file_read, which `bpc params` uses too), then against the
 * model (params_file_fits), then its training state when --resume asks for
 * it. Only the parameters are needed to use a file (bpc eval, the generated
 * C's loader, compiler/emit_loader.c, which checks the same things in the
 * same order): a reader skips the L bytes. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "runtime.h"

static const char MAGIC[8] = {'B', 'P', 'C', 'P', 'A', 'R', 'A', 'M'};
enum { VERSION = 2, NEWEST_VERSION = 2, TYPE_F64 = 1, TYPE_F32 = 2, STATE_FORMAT = 1, STATE_FIXED_BYTES = 92 };

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

static uint32_t le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int get_u32(Reader *r, uint32_t *v) {
  unsigned char p[4];
  if (!get(r, p, 4)) return 0;
  *v = le32(p);
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

/* zlib's crc32 takes lengths that fit an unsigned int: larger files go in pieces. */
static uint32_t crc_of(const unsigned char *p, size_t n) {
  uLong crc = crc32(0L, Z_NULL, 0);
  for (size_t done = 0; done < n;) {
    size_t k = n - done < (1u << 30) ? n - done : (1u << 30);
    crc = crc32(crc, p + done, (uInt)k);
    done += k;
  }
  return (uint32_t)crc;
}

#define BAD(...)                                                                                             \
  do {                                                                                                       \
    *err = str_printf(__VA_ARGS__);                                                                          \
    return 1;                                                                                                \
  } while (0)

/* Names in a file become file names (bpc params export) and are compared
 * with the model's: each must be an identifier, as in a .bp file. */
static int is_identifier(const char *s) {
  if (!isalpha((unsigned char)s[0]) && s[0] != '_') return 0;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_') return 0;
  return 1;
}

/* The index of a tensor named as an earlier one, or -1 (a hash set of
 * indices: a damaged file may claim many tensors). */
static int first_duplicate(const TensorList *l) {
  uint32_t cap = 16;
  while (cap < 2 * (uint32_t)l->len)
    cap *= 2;
  int *slot = malloc(sizeof(int) * cap), dup = -1;
  if (!slot) out_of_memory();
  memset(slot, -1, sizeof(int) * cap);
  for (int i = 0; i < l->len && dup < 0; i++) {
    uint32_t h = hash_string(l->items[i].name) & (cap - 1);
    for (; slot[h] >= 0 && dup < 0; h = (h + 1) & (cap - 1))
      if (!strcmp(l->items[slot[h]].name, l->items[i].name)) dup = i;
    slot[h] = i;
  }
  free(slot);
  return dup;
}

/* The product of dims, or limit + 1 when it is larger than limit. */
static uint64_t product_up_to(const int64_t *dim, int rank, uint64_t limit) {
  for (int k = 0; k < rank; k++)
    if (dim[k] == 0) return 0;
  uint64_t n = 1;
  for (int k = 0; k < rank; k++) {
    if (n > limit / (uint64_t)dim[k]) return limit + 1;
    n *= (uint64_t)dim[k];
  }
  return n;
}

/* One tensor's description: name, rank, dims; its values follow the table. */
static int read_tensor(Reader *r, const char *path, uint32_t i, ParamsFile *f, char **err) {
  TensorInfo *t = &f->tensors.items[i];
  uint32_t nlen, rank;
  char name[BPC_MAX_IDENT + 1];
  if (!get_u32(r, &nlen) || nlen > BPC_MAX_IDENT || !get(r, name, nlen) || !get_u32(r, &rank) ||
      rank > BPC_MAX_RANK)
    BAD("%s is damaged or truncated in the description of tensor %u", path, i + 1);
  name[nlen] = 0;
  if (!is_identifier(name)) BAD("%s is damaged: the name of tensor %u is not an identifier", path, i + 1);
  t->name = arena_strndup(&f->arena, name, nlen);
  t->rank = (int)rank;
  for (uint32_t k = 0; k < rank; k++) {
    uint64_t dim;
    if (!get_u64(r, &dim)) BAD("%s is truncated in the description of tensor '%s'", path, name);
    if (dim > (uint64_t)BPC_MAX_DIM)
      BAD("%s is damaged: tensor '%s' has a dimension of %llu (at most %lld)", path, name,
          (unsigned long long)dim, BPC_MAX_DIM);
    t->dim[k] = (int64_t)dim;
  }
  /* a file of n bytes holds fewer than n values: that bounds the product (the exact size is checked
     once the table is read, with a message that says how many bytes are missing) */
  uint64_t used = (uint64_t)f->tensors.numel, room = f->len > used ? f->len - used : 0;
  uint64_t n = product_up_to(t->dim, t->rank, room);
  char dims[BPC_DIMS_TEXT];
  if (n > room)
    BAD("%s is truncated: tensor '%s' of shape %s has more values than the rest of the file holds", path,
        name, format_dims(dims, t->rank, t->dim));
  t->numel = (int64_t)n;
  t->offset = f->tensors.numel;
  f->tensors.numel += t->numel;
  return 0;
}

/* Everything about the file that does not depend on a model, in the order
 * the generated loader checks it too. */
static int params_file_parse(const char *path, ParamsFile *f, char **err) {
  Reader r = {f->bytes, f->bytes + f->len};
  char magic[8];
  uint32_t type, count;
  if (!get(&r, magic, 8) || memcmp(magic, MAGIC, 8))
    BAD("%s is not a bpc parameter file (it does not start with BPCPARAM)", path);
  if (f->len < 12 + 4) BAD("%s is truncated", path);
  r.end -= 4; /* the checksum */
  if (!get_u32(&r, &f->version) || !get_u32(&r, &type) || !get_u32(&r, &count)) BAD("%s is truncated", path);
  if (f->version < 1 || f->version > NEWEST_VERSION)
    BAD("%s has format version %u; this bpc reads versions 1 and %d", path, f->version, NEWEST_VERSION);
  if (type != TYPE_F64 && type != TYPE_F32) BAD("%s: unknown element type %u", path, type);
  f->is_float = type == TYPE_F32;
  f->esize = f->is_float ? 4 : 8;
  /* a tensor's description takes at least 9 bytes: a damaged count cannot ask for much memory */
  if (count > (size_t)(r.end - r.p) / 9)
    BAD("%s is damaged or truncated: it claims %u tensors, more than its size allows", path, count);
  f->tensors.items = arena_alloc(&f->arena, sizeof(TensorInfo) * ((size_t)count + 1));
  for (uint32_t i = 0; i < count; i++, f->tensors.len++)
    if (read_tensor(&r, path, i, f, err)) return 1;
  int dup = first_duplicate(&f->tensors);
  if (dup >= 0) BAD("%s is damaged: tensor '%s' appears twice", path, f->tensors.items[dup].name);
  size_t values = (size_t)f->tensors.numel * f->esize, left = (size_t)(r.end - r.p);
  size_t need = values; /* without the checksum, which r no longer holds */
  int state_unread = f->version >= 2 && left < values + 4; /* its length L is cut off: the size is unknown */
  if (f->version >= 2 && !state_unread) need += 4 + le32(r.p + values);
  else if (f->version >= 2) need += 4;
  if (left != need)
    BAD("%s is %s: expected %s%zu bytes of values%s and checksum, found %zu", path,
        left < need ? "truncated" : "longer than its header says", state_unread ? "at least " : "", need + 4,
        f->version >= 2 ? ", training state" : "", left + 4);
  f->values = r.p;
  if (f->version >= 2) {
    f->state_len = need - values - 4;
    f->state = r.p + values + 4;
  }
  if (crc_of(f->bytes, f->len - 4) != le32(f->bytes + f->len - 4))
    BAD("%s is damaged: its checksum does not match its contents", path);
  return 0;
}

int params_file_read(const char *path, ParamsFile *f, char **err) {
  memset(f, 0, sizeof *f);
  arena_init(&f->arena);
  const char *why = NULL;
  f->bytes = (unsigned char *)read_whole_file(path, (size_t)1 << 40, &f->len, &why);
  if (!f->bytes) {
    *err = str_printf("cannot open %s: %s", path, why);
    return 1;
  }
  if (params_file_parse(path, f, err)) {
    params_file_free(f);
    return 1;
  }
  return 0;
}

/* The first difference between the file's tensors and the model's
 * parameters (in order: names, then shapes, then what one has beyond the
 * other) is the message. */
int params_file_fits(const ParamsFile *f, const char *path, const ModelInfo *info, char **err) {
  const TensorList *file = &f->tensors, *model = &info->params;
  for (int i = 0; i < file->len && i < model->len; i++) {
    const TensorInfo *a = &file->items[i], *b = &model->items[i];
    if (strcmp(a->name, b->name))
      BAD("%s does not fit %s: tensor %d is '%s' in the file but '%s' in the model", path, info->name, i + 1,
          a->name, b->name);
    char in_file[BPC_DIMS_TEXT], in_model[BPC_DIMS_TEXT];
    if (!tensor_has_shape(b, a->rank, a->dim))
      BAD("%s does not fit %s: '%s' has shape %s in the file but %s in the model", path, info->name, a->name,
          format_dims(in_file, a->rank, a->dim), format_dims(in_model, b->rank, b->dim));
  }
  if (file->len < model->len)
    BAD("%s does not fit %s: it holds %d tensors but the model has %d parameters ('%s' is not in the file)",
        path, info->name, file->len, model->len, model->items[file->len].name);
  if (file->len > model->len)
    BAD("%s does not fit %s: it holds %d tensors but the model has %d parameters ('%s' is not in the model)",
        path, info->name, file->len, model->len, file->items[model->len].name);
  return 0;
}

double params_file_value(const ParamsFile *f, int64_t i) {
  const unsigned char *p = f->values + (size_t)i * f->esize;
  uint64_t bits = le32(p);
  if (f->is_float) {
    uint32_t u = (uint32_t)bits;
    float x;
    memcpy(&x, &u, 4);
    return x;
  }
  bits |= (uint64_t)le32(p + 4) << 32;
  double x;
  memcpy(&x, &bits, 8);
  return x;
}

void params_file_free(ParamsFile *f) {
  free(f->bytes);
  arena_free(&f->arena);
  memset(f, 0, sizeof *f);
}

#undef BAD

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
    *dst[a] = calloc_aligned((size_t)m->nparams + 1, m->elem);
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

/* Reads a file whole and checks it, on its own and against the model;
 * the training state into *st when st is not NULL. */
static int read_params(const char *path, JitModel *m, void *params, TrainState *st, int *has, char **err) {
  ParamsFile f;
  if (params_file_read(path, &f, err)) return 1;
  int bad = params_file_fits(&f, path, &m->info, err);
  if (!bad && st) {
    *has = f.state_len > 0;
    const char *why = f.state_len ? read_state(f.state, f.state_len, m, f.esize, st) : NULL;
    if (why) {
      train_state_free(st);
      *err = str_printf("%s: its training state is damaged (%s)", path, why);
      bad = 1;
    }
  }
  for (int64_t i = 0; !bad && i < m->nparams; i++)
    real_set(params, m->elem, (size_t)i, params_file_value(&f, i));
  params_file_free(&f);
  return bad;
}

int params_load(const char *path, JitModel *m, void *params, char **err) {
  return read_params(path, m, params, NULL, NULL, err);
}

int params_load_state(const char *path, JitModel *m, void *params, TrainState *st, int *has, char **err) {
  memset(st, 0, sizeof *st);
  *has = 0;
  return read_params(path, m, params, st, has, err);
}
