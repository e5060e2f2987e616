/* data.c — reads training data for the model's inputs: CSV (all inputs, or
 * one), IDX files (MNIST's format) and NumPy .npy files (one input each;
 * npy.c reads the format), gzip-compressed or not. Data files
 * are untrusted: every count, size and number is checked, and a bad file
 * gets a message naming the file, the input, what was expected and what was
 * found. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "runtime.h"

enum { MAX_DATA_BYTES_LOG2 = 36 }; /* 64 GiB: beyond any data set we accept */

/* Reads a whole file, decompressing gzip transparently. */
static unsigned char *read_all(const char *path, size_t *len, char **err) {
  gzFile f = gzopen(path, "rb");
  if (!f) {
    *err = str_printf("cannot open %s: %s", path, errno ? strerror(errno) : "unknown error");
    return NULL;
  }
  size_t cap = 1 << 20, n = 0;
  unsigned char *buf = malloc(cap);
  for (;;) {
    if (n == cap) {
      if (cap >> MAX_DATA_BYTES_LOG2) {
        *err = str_printf("%s is too large", path);
        goto fail;
      }
      cap *= 2;
      unsigned char *b = realloc(buf, cap);
      if (!b) {
        *err = str_printf("out of memory reading %s", path);
        goto fail;
      }
      buf = b;
    }
    unsigned chunk = (unsigned)((cap - n) > (1u << 30) ? (1u << 30) : (cap - n));
    int got = gzread(f, buf + n, chunk);
    if (got < 0) {
      int code;
      const char *msg = gzerror(f, &code);
      *err = str_printf("%s: %s", path, code == Z_ERRNO ? strerror(errno) : msg);
      goto fail;
    }
    if (got == 0) break;
    n += (size_t)got;
  }
  gzclose(f);
  *len = n;
  return buf;
fail:
  free(buf);
  gzclose(f);
  return NULL;
}

static const TensorInfo *find_input(JitModel *m, const char *name, int *slot) {
  for (int i = 0; i < m->info.inputs.len; i++) {
    const TensorInfo *d = &m->info.inputs.items[i];
    if (!strcmp(d->name, name)) {
      *slot = i;
      return d;
    }
  }
  return NULL;
}

static char *input_list(JitModel *m) {
  Buf b = {0};
  char desc[TENSOR_DESC_TEXT];
  for (int i = 0; i < m->info.inputs.len; i++)
    buf_printf(&b, "%s%s", i ? ", " : "", tensor_desc(&m->info.inputs.items[i], desc));
  return b.data ? b.data : strdup("none");
}

/* ---- arrays: IDX and .npy ---------------------------------------------------- */

/* A binary array file, whichever format: numbers with the examples along
 * the first axis. Both formats are bound to inputs by the same rules
 * (fill_from_array). */
typedef struct Array {
  int ndims;
  uint64_t dims[NPY_MAX_AXES];
  uint64_t count; /* examples: dims[0] */
  uint64_t per;   /* elements per example */
  int is_u8;      /* unsigned bytes (images: scaled to [0, 1]) */
  int is_npy;
  int type;       /* IDX: 0x08 ubyte ... 0x0E double */
  const unsigned char *data; /* IDX */
  NpyArray npy;   /* .npy */
} Array;

static int idx_type_size(int type) {
  switch (type) {
  case 0x08:
  case 0x09: return 1;
  case 0x0B: return 2;
  case 0x0C:
  case 0x0D: return 4;
  case 0x0E: return 8;
  default: return 0;
  }
}

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int idx_parse(const char *path, const unsigned char *b, size_t len, Array *x, char **err) {
  if (len < 4 || b[0] != 0 || b[1] != 0) {
    *err = str_printf(
        "%s is not an IDX file (it should start with two zero bytes, a type and a dimension count)", path);
    return 1;
  }
  x->type = b[2];
  x->ndims = b[3];
  x->is_u8 = x->type == 0x08;
  int size = idx_type_size(x->type);
  if (!size) {
    *err = str_printf("%s: unknown IDX element type 0x%02x", path, x->type);
    return 1;
  }
  if (x->ndims < 1 || x->ndims > 4) {
    *err = str_printf("%s: IDX files with %d dimensions are not supported (1 to 4)", path, x->ndims);
    return 1;
  }
  size_t header = 4 + 4 * (size_t)x->ndims;
  if (len < header) {
    *err = str_printf("%s is truncated: its header needs %zu bytes, the file has %zu", path, header, len);
    return 1;
  }
  uint64_t total = 1;
  x->per = 1;
  for (int i = 0; i < x->ndims; i++) {
    x->dims[i] = be32(b + 4 + 4 * i);
    total *= x->dims[i];
    if (i) x->per *= x->dims[i];
    if (total > ((uint64_t)1 << 40)) {
      *err = str_printf("%s: its dimensions describe an absurdly large array", path);
      return 1;
    }
  }
  x->count = x->dims[0];
  uint64_t want = header + total * (uint64_t)size;
  if (len != want) {
    *err = str_printf("%s is %s: its header promises %llu bytes of data, the file has %llu", path,
                      len < want ? "truncated" : "longer than its header says",
                      (unsigned long long)(total * (uint64_t)size), (unsigned long long)(len - header));
    return 1;
  }
  x->data = b + header;
  return 0;
}

static double idx_value(const Array *x, uint64_t i) {
  const unsigned char *p = x->data;
  switch (x->type) {
  case 0x08: return p[i];
  case 0x09: return (signed char)p[i];
  case 0x0B: return (int16_t)((uint16_t)p[2 * i] << 8 | p[2 * i + 1]);
  case 0x0C: return (int32_t)be32(p + 4 * i);
  case 0x0D: {
    uint32_t u = be32(p + 4 * i);
    float f;
    memcpy(&f, &u, 4);
    return f;
  }
  default: {
    uint64_t u = (uint64_t)be32(p + 8 * i) << 32 | be32(p + 8 * i + 4);
    double d;
    memcpy(&d, &u, 8);
    return d;
  }
  }
}

/* A .npy file's numbers as an Array. */
static void array_from_npy(Array *x) {
  x->is_npy = 1;
  x->ndims = x->npy.ndims;
  memcpy(x->dims, x->npy.dims, sizeof x->dims);
  x->count = x->dims[0];
  x->per = 1;
  for (int i = 1; i < x->ndims; i++)
    x->per *= x->dims[i];
  x->is_u8 = x->npy.type == NPY_U8;
}

static double array_value(const Array *x, uint64_t i) {
  return x->is_npy ? npy_value(&x->npy, i) : idx_value(x, i);
}

static char *dims_str(const Array *x, int from) {
  Buf b = {0};
  for (int i = from; i < x->ndims; i++)
    buf_printf(&b, "%s%llu", i > from ? "x" : "", (unsigned long long)x->dims[i]);
  return b.data ? b.data : strdup("1");
}

/* ---- CSV ------------------------------------------------------------------- */

typedef struct Csv {
  size_t rows; /* data rows */
  int has_header;
  int64_t fields; /* fields of the first data row */
  unsigned char *text;
  size_t len;
} Csv;

static int is_blank_line(const char *p, const char *end) {
  for (; p < end && *p != '\n'; p++)
    if (!isspace((unsigned char)*p)) return 0;
  return 1;
}

/* A field looks like a number when it starts like one (a sign, then a digit
 * or a point and a digit) or reads as one whole (nan, inf): "2x" and "1,5"'s
 * halves do, "x1" and "label" do not. */
static int looks_like_number(const char *q, const char *fend) {
  while (q < fend && isspace((unsigned char)*q))
    q++;
  while (fend > q && isspace((unsigned char)fend[-1]))
    fend--;
  const char *s = q;
  if (s < fend && (*s == '+' || *s == '-')) s++;
  if (s < fend && isdigit((unsigned char)*s)) return 1;
  if (s + 1 < fend && *s == '.' && isdigit((unsigned char)s[1])) return 1;
  char tmp[64], *stop;
  size_t n = (size_t)(fend - q);
  if (n == 0 || n >= sizeof tmp) return 0;
  memcpy(tmp, q, n);
  tmp[n] = 0;
  strtod(tmp, &stop);
  return *stop == 0;
}

/* A header is a first line where no field looks like a number. A first
 * line with a number in it is data, and a field of it that is not a number
 * is an error (csv_fill), not a reason to skip the line. */
static int line_is_header(const char *p, const char *end) {
  const char *eol = memchr(p, '\n', (size_t)(end - p));
  if (!eol) eol = end;
  for (const char *q = p;;) {
    const char *fend = memchr(q, ',', (size_t)(eol - q));
    if (!fend) fend = eol;
    if (looks_like_number(q, fend)) return 0;
    if (fend == eol) return 1;
    q = fend + 1;
  }
}

static int64_t count_fields(const char *p, const char *end) {
  int64_t n = 1;
  for (; p < end && *p != '\n'; p++)
    n += *p == ',';
  return n;
}

static int csv_scan(const char *path, Csv *c, char **err) {
  c->text = read_all(path, &c->len, err);
  if (!c->text) return 1;
  if (memchr(c->text, 0, c->len)) {
    *err = str_printf("%s contains NUL bytes: it is not a CSV text file", path);
    return 1;
  }
  const char *p = (const char *)c->text, *end = p + c->len;
  int first = 1;
  c->rows = 0;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *next = nl ? nl + 1 : end;
    if (!is_blank_line(p, end)) {
      if (first && line_is_header(p, end)) {
        c->has_header = 1;
      } else {
        if (c->rows == 0) c->fields = count_fields(p, end);
        c->rows++;
      }
      first = 0;
    }
    p = next;
  }
  return 0;
}

/* A class label: a whole number from 0 to k - 1, or -1. */
static int64_t class_label(const char *q, size_t flen, int64_t k) {
  char tmp[64], *stop;
  if (flen == 0 || flen >= sizeof tmp) return -1;
  memcpy(tmp, q, flen);
  tmp[flen] = 0;
  double v = strtod(tmp, &stop);
  if (*stop || !(v >= 0 && v < (double)k) || v != floor(v)) return -1;
  return (int64_t)v;
}

/* Fills columns [col0, col0 + ncols) of every example from the CSV; with
 * `labels`, each line holds one class label, 0 to ncols - 1, written as the
 * one-hot row of ncols values. */
static int csv_fill(const char *path, Csv *c, Dataset *d, int64_t col0, int64_t ncols, int labels,
                    const char *what, size_t limit, char **err) {
  const char *p = (const char *)c->text, *end = p + c->len;
  size_t row = 0, line = 0;
  int skipped_header = !c->has_header;
  while (p < end && row < limit) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *eol = nl ? nl : end;
    line++;
    if (is_blank_line(p, end) || !skipped_header) {
      if (!is_blank_line(p, end)) skipped_header = 1;
      p = nl ? nl + 1 : end;
      continue;
    }
    int64_t col = 0;
    const char *q = p;
    for (;;) {
      while (q < eol && (*q == ' ' || *q == '\t'))
        q++;
      const char *fend = q;
      while (fend < eol && *fend != ',')
        fend++;
      const char *vend = fend;
      while (vend > q && isspace((unsigned char)vend[-1]))
        vend--;
      size_t base = row * (size_t)d->width + (size_t)col0;
      if (labels && col == 0) {
        size_t flen = (size_t)(vend - q);
        int64_t k = class_label(q, flen, ncols);
        if (k < 0) {
          *err = str_printf("%s:%zu: column 1 is '%.*s', not a class of %s (class labels are whole numbers "
                            "from 0 to %lld)",
                            path, line, (int)(flen > 40 ? 40 : flen), q, what, (long long)ncols - 1);
          return 1;
        }
        for (int64_t j = 0; j < ncols; j++)
          real_set(d->x, d->elem, base + (size_t)j, j == k);
      } else if (!labels && col < ncols) {
        char tmp[64];
        size_t flen = (size_t)(vend - q);
        char *stop = tmp;
        double v = 0;
        if (flen > 0 && flen < sizeof tmp) {
          memcpy(tmp, q, flen);
          tmp[flen] = 0;
          v = strtod(tmp, &stop);
        }
        if (flen == 0 || flen >= sizeof tmp || *stop) {
          *err = str_printf(
              "%s:%zu: column %lld is '%.*s', not a number (reading %s%s)", path, line, (long long)col + 1,
              (int)(flen > 40 ? 40 : flen), q, what,
              row == 0 && !c->has_header ? "; a first line with a number in it is data, not a header" : "");
          return 1;
        }
        if (!isfinite(v)) {
          *err = str_printf("%s:%zu: column %lld is %s; data must be finite numbers (reading %s)", path, line,
                            (long long)col + 1, isnan(v) ? "NaN" : "infinite", what);
          return 1;
        }
        real_set(d->x, d->elem, base + (size_t)col, v);
      }
      col++;
      if (fend >= eol) break;
      q = fend + 1;
    }
    if (labels && col != 1) {
      *err = str_printf("%s:%zu: expected 1 column (a class label of %s, like the first line), found %lld",
                        path, line, what, (long long)col);
      return 1;
    }
    if (!labels && col != ncols) {
      *err = str_printf("%s:%zu: expected %lld columns (%s), found %lld", path, line, (long long)ncols, what,
                        (long long)col);
      return 1;
    }
    row++;
    p = nl ? nl + 1 : end;
  }
  return 0;
}

/* ---- binding files to inputs ---------------------------------------------------- */

typedef struct DataSource {
  const DataBinding *b;
  const TensorInfo *decl; /* NULL: CSV for all inputs */
  int slot;
  int is_csv;
  Csv csv;
  unsigned char *raw;
  Array arr; /* IDX or .npy */
  size_t count;
} DataSource;

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && !strcmp(s + n - k, suffix);
}

static int is_npy_path(const char *path) { return ends_with(path, ".npy") || ends_with(path, ".npy.gz"); }

/* A one-dimensional array (one number per example) bound to a vector of
 * K > 1 is a label file: each label becomes a one-hot row, as in a CSV. */
static int array_is_labels(const Array *x, const TensorInfo *decl) {
  return x->ndims == 1 && decl->rank == 1 && decl->numel > 1;
}

static int open_source(DataSource *s, char **err) {
  const char *path = s->b->path;
  s->is_csv = !s->decl || ends_with(path, ".csv") || ends_with(path, ".csv.gz");
  if (s->is_csv) {
    if (csv_scan(path, &s->csv, err)) return 1;
    s->count = s->csv.rows;
    return 0;
  }
  size_t len;
  s->raw = read_all(path, &len, err);
  if (!s->raw) return 1;
  if (!is_npy_path(path)) {
    if (idx_parse(path, s->raw, len, &s->arr, err)) return 1;
  } else {
    if (npy_parse(path, s->raw, len, &s->arr.npy, err)) return 1;
    array_from_npy(&s->arr);
  }
  const TensorInfo *d = s->decl;
  int64_t want = d->numel;
  if (!array_is_labels(&s->arr, d) && (int64_t)s->arr.per != want) {
    char *dims = dims_str(&s->arr, 1), desc[TENSOR_DESC_TEXT];
    *err =
        str_printf("%s: input %s needs %lld values per example, but the file has %s = %llu per example", path,
                   tensor_desc(d, desc), (long long)want, dims, (unsigned long long)s->arr.per);
    free(dims);
    return 1;
  }
  s->count = (size_t)s->arr.count;
  return 0;
}

static int fill_from_array(DataSource *s, Dataset *d, size_t n, char **err) {
  const TensorInfo *decl = s->decl;
  int64_t k = decl->numel;
  int one_hot = array_is_labels(&s->arr, decl);
  int scale = s->arr.is_u8 && !one_hot && s->arr.ndims > 1; /* uint8 images to [0, 1] */
  for (size_t e = 0; e < n; e++) {
    size_t base = e * (size_t)d->width + (size_t)decl->offset;
    if (one_hot) {
      double label = array_value(&s->arr, e);
      if (label < 0 || label >= (double)k || label != floor(label)) {
        *err = str_printf("%s: label %g of example %zu is not a class of input %s[%lld] (0 to %lld)",
                          s->b->path, label, e, decl->name, (long long)k, (long long)k - 1);
        return 1;
      }
      for (int64_t j = 0; j < k; j++)
        real_set(d->x, d->elem, base + (size_t)j, j == (int64_t)label);
      continue;
    }
    for (int64_t j = 0; j < k; j++) {
      double v = array_value(&s->arr, e * (uint64_t)k + (uint64_t)j);
      if (!isfinite(v)) {
        *err = str_printf("%s: example %zu holds a value that is not finite (input %s)", s->b->path, e,
                          decl->name);
        return 1;
      }
      real_set(d->x, d->elem, base + (size_t)j, scale ? v / 255.0 : v);
    }
  }
  d->onehot[s->slot] = one_hot;
  return 0;
}

static int resolve(JitModel *m, const DataBinding *b, int nb, const int *required, DataSource *src,
                   char **err) {
  int ninputs = m->info.inputs.len;
  char *bound = calloc((size_t)ninputs + 1, 1);
  int rc = 1;
  for (int i = 0; i < nb; i++) {
    src[i].b = &b[i];
    if (!b[i].input) {
      if (is_npy_path(b[i].path)) {
        *err = str_printf("--data %s: a .npy file holds one input; bind it with --data NAME=%s", b[i].path,
                          b[i].path);
        goto out;
      }
      if (nb > 1) {
        *err = str_printf(
            "--data %s: a CSV without NAME= holds every input; bind either one CSV or each input", b[i].path);
        goto out;
      }
      memset(bound, 1, (size_t)ninputs);
      continue;
    }
    src[i].decl = find_input(m, b[i].input, &src[i].slot);
    if (!src[i].decl) {
      char *list = input_list(m);
      *err = str_printf("--data %s=%s: the model has no input named '%s' (inputs: %s)", b[i].input, b[i].path,
                        b[i].input, list);
      free(list);
      goto out;
    }
    if (bound[src[i].slot]) {
      *err = str_printf("--data: input '%s' is bound twice", b[i].input);
      goto out;
    }
    bound[src[i].slot] = 1;
  }
  for (int i = 0; i < ninputs; i++)
    if (!bound[i] && (!required || required[i])) {
      const TensorInfo *d = &m->info.inputs.items[i];
      char desc[TENSOR_DESC_TEXT];
      *err = str_printf("no data for input %s: add --data %s=FILE", tensor_desc(d, desc), d->name);
      goto out;
    }
  rc = 0;
out:
  free(bound);
  return rc;
}

int dataset_load(Dataset *d, JitModel *m, const DataBinding *b, int nb, size_t limit, const int *required,
                 char **err) {
  memset(d, 0, sizeof *d);
  d->width = m->ninputs;
  d->elem = m->elem;
  d->onehot = calloc((size_t)m->info.inputs.len + 1, sizeof(int));
  if (m->ninputs == 0) {
    *err = str_printf("the model has no inputs, so there is no data to bind");
    return 1;
  }
  if (nb == 0) {
    *err = str_printf("no data given: use --data FILE.csv or --data INPUT=FILE");
    return 1;
  }
  DataSource *src = calloc((size_t)nb, sizeof *src);
  int rc = 1;
  if (resolve(m, b, nb, required, src, err)) goto out;
  for (int i = 0; i < nb; i++)
    if (open_source(&src[i], err)) goto out;
  size_t n = src[0].count;
  for (int i = 1; i < nb; i++)
    if (src[i].count != n) {
      *err =
          str_printf("%s has %zu examples but %s has %zu", src[0].b->path, n, src[i].b->path, src[i].count);
      goto out;
    }
  if (n == 0) {
    *err = str_printf("%s holds no examples", src[0].b->path);
    goto out;
  }
  if (limit && limit < n) n = limit;
  d->n = n;
  d->x = calloc_aligned(n * (size_t)d->width, d->elem);
  if (!d->x) {
    *err = str_printf("out of memory for %zu examples", n);
    goto out;
  }
  for (int i = 0; i < nb; i++) {
    DataSource *s = &src[i];
    if (!s->is_csv) {
      if (fill_from_array(s, d, n, err)) goto out;
      continue;
    }
    int64_t col0 = s->decl ? s->decl->offset : 0;
    int64_t ncols = s->decl ? s->decl->numel : m->ninputs;
    /* one field per line for a vector of K > 1: class labels, as from an IDX label file */
    int labels = s->decl && s->decl->rank == 1 && ncols > 1 && s->csv.fields == 1;
    char desc[TENSOR_DESC_TEXT];
    char *what = s->decl ? str_printf("input %s", tensor_desc(s->decl, desc)) : input_list(m);
    int bad = csv_fill(s->b->path, &s->csv, d, col0, ncols, labels, what, n, err);
    free(what);
    if (bad) goto out;
    if (labels) d->onehot[s->slot] = 1;
  }
  rc = 0;
out:
  for (int i = 0; i < nb; i++) {
    free(src[i].csv.text);
    free(src[i].raw);
  }
  free(src);
  if (rc) dataset_free(d);
  return rc;
}

void dataset_free(Dataset *d) {
  free(d->x);
  free(d->onehot);
  memset(d, 0, sizeof *d);
}

int dataset_split(Dataset *d, JitModel *m, double fraction, uint64_t seed, Dataset *val, char **err) {
  memset(val, 0, sizeof *val);
  size_t n = d->n;
  if (n < 2) {
    *err =
        str_printf("--val %g needs at least 2 examples to hold some out, and the data has %zu", fraction, n);
    return 1;
  }
  size_t nval = (size_t)llround(fraction * (double)n);
  if (nval < 1) nval = 1;
  if (nval > n - 1) nval = n - 1;
  /* the examples drawn first by the seed's permutation are held out */
  size_t *idx = malloc(sizeof(size_t) * n);
  char *held = calloc(n, 1);
  shuffle_indices(idx, n, seed);
  for (size_t i = 0; i < nval; i++)
    held[idx[i]] = 1;
  size_t row = (size_t)d->width * d->elem, slots = (size_t)m->info.inputs.len + 1;
  *val = *d;
  val->n = nval;
  val->x = malloc(nval * row);
  val->onehot = malloc(slots * sizeof(int));
  memcpy(val->onehot, d->onehot, slots * sizeof(int));
  size_t kept = 0, out = 0;
  char *x = d->x;
  for (size_t e = 0; e < n; e++) {
    if (held[e])
      memcpy((char *)val->x + out++ * row, x + e * row, row);
    else
      memmove(x + kept++ * row, x + e * row, row);
  }
  d->n = kept;
  free(idx);
  free(held);
  return 0;
}
