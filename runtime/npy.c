/* npy.c — NumPy's .npy format, read (data.c: --data NAME=FILE.npy) and
 * written (bpc params export):
 *
 *   "\x93NUMPY"        6 bytes
 *   major, minor       1 byte each: 1.0, 2.0 or 3.0
 *   header length      u16 (1.0) or u32 (2.0, 3.0), little-endian
 *   header             a Python dict literal, padded with spaces and ending in '\n':
 *                      {'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }
 *   data               the elements, C order (fortran_order False)
 *
 * A file is untrusted: the header is parsed by a small recogniser of
 * exactly that dict (keys in any order, either quote), and the data must
 * be exactly the size the shape and type say. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

static const char MAGIC[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

typedef struct NpyTypeInfo {
  const char *descr; /* as numpy writes it */
  const char *name;
  size_t size;
} NpyTypeInfo;

static const NpyTypeInfo types[] = {
    [NPY_F32] = {"<f4", "float32", 4},
    [NPY_F64] = {"<f8", "float64", 8},
    [NPY_U8] = {"|u1", "uint8", 1},
    [NPY_I64] = {"<i8", "int64", 8},
};

size_t npy_type_size(NpyType t) { return types[t].size; }

/* ---- the header's dict -------------------------------------------------------- */

typedef struct Scan {
  const char *p, *end;
} Scan;

static void skip_space(Scan *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
    s->p++;
}

/* Skips space, then takes c if it is next. */
static int take(Scan *s, char c) {
  skip_space(s);
  if (s->p < s->end && *s->p == c) {
    s->p++;
    return 1;
  }
  return 0;
}

/* A quoted string of up to cap - 1 characters, into out. */
static int take_string(Scan *s, char *out, size_t cap) {
  skip_space(s);
  if (s->p >= s->end || (*s->p != '\'' && *s->p != '"')) return 0;
  char q = *s->p++;
  size_t n = 0;
  while (s->p < s->end && *s->p != q) {
    if (n + 1 >= cap) return 0;
    out[n++] = *s->p++;
  }
  if (s->p >= s->end) return 0;
  s->p++;
  out[n] = 0;
  return 1;
}

static int take_word(Scan *s, const char *w) {
  skip_space(s);
  size_t n = strlen(w);
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n)) return 0;
  s->p += n;
  return 1;
}

/* (), (n,), (n, m), ...: up to max sizes into dims; *ndims counts them, up to max + 1. */
static int take_shape(Scan *s, uint64_t *dims, int max, int *ndims) {
  if (!take(s, '(')) return 0;
  *ndims = 0;
  for (;;) {
    if (take(s, ')')) return 1;
    skip_space(s);
    if (s->p >= s->end || *s->p < '0' || *s->p > '9') return 0;
    uint64_t v = 0;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
      if (v > ((uint64_t)1 << 50)) return 0; /* beyond any array (and overflow) */
      v = v * 10 + (uint64_t)(*s->p++ - '0');
    }
    if (*ndims < max) dims[*ndims] = v;
    if (*ndims <= max) ++*ndims;
    if (take(s, ')')) return 1;
    if (!take(s, ',')) return 0;
  }
}

typedef struct Header {
  char descr[32];
  int fortran, ndims;
  uint64_t dims[NPY_MAX_AXES];
  int have_descr, have_fortran, have_shape;
} Header;

/* Parses the dict; on a malformed header returns what is wrong. */
static const char *parse_dict(Scan *s, Header *h) {
  if (!take(s, '{')) return "it is not a dict";
  while (!take(s, '}')) {
    char key[32];
    if (!take_string(s, key, sizeof key) || !take(s, ':')) return "expected 'key': value";
    if (!strcmp(key, "descr")) {
      skip_space(s);
      if (s->p < s->end && *s->p == '[') return "a structured dtype (a list of fields)";
      if (!take_string(s, h->descr, sizeof h->descr)) return "descr is not a string";
      h->have_descr = 1;
    } else if (!strcmp(key, "fortran_order")) {
      if (take_word(s, "True"))
        h->fortran = 1;
      else if (!take_word(s, "False"))
        return "fortran_order is not True or False";
      h->have_fortran = 1;
    } else if (!strcmp(key, "shape")) {
      if (!take_shape(s, h->dims, NPY_MAX_AXES, &h->ndims)) return "shape is not a tuple of sizes";
      h->have_shape = 1;
    } else {
      return "a key other than descr, fortran_order and shape";
    }
    if (take(s, '}')) break;
    if (!take(s, ',')) return "expected ',' between entries";
  }
  skip_space(s);
  if (s->p != s->end) return "text after the dict";
  if (!h->have_descr || !h->have_fortran || !h->have_shape) return "descr, fortran_order or shape is missing";
  return NULL;
}

/* ---- reading --------------------------------------------------------------------- */

static uint32_t le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Which of the types descr is, or a message (with what to do) for the others. */
static int find_type(const char *path, const char *descr, NpyType *t, char **err) {
  for (int k = 0; k < (int)(sizeof types / sizeof types[0]); k++) {
    const char *want = types[k].descr;
    /* a one-byte type has no byte order: '|u1', and '<u1' or '>u1' mean the same */
    if (!strcmp(descr, want) || (types[k].size == 1 && strlen(descr) == 3 && !strcmp(descr + 1, want + 1) &&
                                 strchr("<>=", descr[0]))) {
      *t = (NpyType)k;
      return 0;
    }
  }
  if (strchr(descr, 'O'))
    *err = str_printf("%s holds Python objects (dtype '%s'), not numbers: save a numeric array (float32, "
                      "float64, uint8 or int64)",
                      path, descr);
  else if (descr[0] == '>')
    *err = str_printf("%s holds big-endian numbers (dtype '%s'): save them little-endian "
                      "(array.astype('<%s'))",
                      path, descr, descr + 1);
  else
    *err = str_printf("%s: dtype '%s' is not supported (float32 '<f4', float64 '<f8', uint8 '|u1' and int64 "
                      "'<i8' are)",
                      path, descr);
  return 1;
}

int npy_parse(const char *path, const unsigned char *b, size_t len, NpyArray *a, char **err) {
  memset(a, 0, sizeof *a);
  if (len < 8 || memcmp(b, MAGIC, 6)) {
    *err = str_printf("%s is not a NumPy .npy file (it does not start with \\x93NUMPY)", path);
    return 1;
  }
  int major = b[6], minor = b[7];
  if (major < 1 || major > 3 || minor != 0) {
    *err = str_printf("%s: .npy format version %d.%d is not supported (1.0, 2.0 and 3.0 are)", path, major,
                      minor);
    return 1;
  }
  size_t lenbytes = major == 1 ? 2 : 4, start = 8 + lenbytes;
  if (len < start) {
    *err = str_printf("%s is truncated: its header needs %zu bytes, the file has %zu", path, start, len);
    return 1;
  }
  size_t hlen = major == 1 ? (size_t)(b[8] | b[9] << 8) : le32(b + 8);
  if (len - start < hlen) {
    *err =
        str_printf("%s is truncated: its header needs %zu bytes, the file has %zu", path, start + hlen, len);
    return 1;
  }
  Header h = {0};
  Scan s = {(const char *)b + start, (const char *)b + start + hlen};
  const char *bad = parse_dict(&s, &h);
  if (bad) {
    *err = str_printf("%s: the .npy header is not one bpc can read (%s)", path, bad);
    return 1;
  }
  if (find_type(path, h.descr, &a->type, err)) return 1;
  if (h.fortran) {
    *err = str_printf("%s holds a Fortran-order array (fortran_order True): save it in C order "
                      "(numpy.ascontiguousarray)",
                      path);
    return 1;
  }
  if (h.ndims > NPY_MAX_AXES) {
    *err = str_printf("%s: arrays of more than %d axes are not supported", path, NPY_MAX_AXES);
    return 1;
  }
  if (h.ndims == 0) {
    *err = str_printf("%s holds a single value (shape ()): its first axis must count the examples", path);
    return 1;
  }
  /* an example's elements, then all of them: neither past 2^40, beyond any data set */
  uint64_t per = 1, most = (uint64_t)1 << 40;
  for (int i = 1; i < h.ndims; i++)
    per = h.dims[i] && per > most / h.dims[i] ? most + 1 : per * h.dims[i];
  uint64_t total = per <= most && h.dims[0] <= most / (per ? per : 1) ? h.dims[0] * per : most + 1;
  if (total > most || per > most) {
    *err = str_printf("%s: its shape describes an absurdly large array", path);
    return 1;
  }
  a->ndims = h.ndims;
  memcpy(a->dims, h.dims, sizeof a->dims);
  uint64_t want = total * types[a->type].size, have = len - start - hlen;
  if (have != want) {
    *err = str_printf("%s is %s: its header promises %llu bytes of data, the file has %llu", path,
                      have < want ? "truncated" : "longer than its header says", (unsigned long long)want,
                      (unsigned long long)have);
    return 1;
  }
  a->data = b + start + hlen;
  return 0;
}

double npy_value(const NpyArray *a, uint64_t i) {
  const unsigned char *p = a->data + i * types[a->type].size;
  switch (a->type) {
  case NPY_U8: return p[0];
  case NPY_F32: {
    uint32_t u = le32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
  }
  case NPY_F64: {
    uint64_t u = (uint64_t)le32(p + 4) << 32 | le32(p);
    double d;
    memcpy(&d, &u, 8);
    return d;
  }
  default: return (double)(int64_t)((uint64_t)le32(p + 4) << 32 | le32(p));
  }
}

/* ---- writing --------------------------------------------------------------------- */

void npy_write_header(Buf *b, NpyType t, int rank, const int64_t *dims) {
  Buf dict = {0};
  buf_printf(&dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", types[t].descr);
  for (int k = 0; k < rank; k++)
    buf_printf(&dict, "%s%lld", k ? ", " : "", (long long)dims[k]);
  buf_printf(&dict, "%s), }", rank == 1 ? "," : "");
  /* numpy pads the header with spaces so that the data start at a multiple of 64 bytes */
  size_t hlen = dict.len + 1;
  while ((10 + hlen) % 64)
    hlen++;
  unsigned char lead[10] = {
      0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)hlen, (unsigned char)(hlen >> 8)};
  buf_append(b, lead, 10);
  buf_append(b, dict.data, dict.len);
  for (size_t k = dict.len + 1; k < hlen; k++)
    buf_puts(b, " ");
  buf_puts(b, "\n");
  buf_free(&dict);
}
