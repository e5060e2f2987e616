/* arena.c — bump allocation for everything the compiler builds (and the
 * runtime's description of a model), plus the small growable containers
 * (PtrVec, Buf) every layer shares. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

struct ArenaBlock {
  ArenaBlock *prev;
  size_t size;
  _Alignas(16) unsigned char data[];
};

enum { ARENA_BLOCK = 1 << 20 };

void out_of_memory(void) {
  fputs("bpc: out of memory\n", stderr);
  exit(3);
}

static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (!p) out_of_memory();
  return p;
}

void arena_init(Arena *a) { memset(a, 0, sizeof *a); }

void arena_free(Arena *a) {
  ArenaBlock *b = a->head;
  while (b) {
    ArenaBlock *prev = b->prev;
    free(b);
    b = prev;
  }
  memset(a, 0, sizeof *a);
}

ArenaMark arena_mark(const Arena *a) { return (ArenaMark){a->head, a->used, a->total}; }

void arena_release(Arena *a, ArenaMark m) {
  while (a->head != m.head) {
    ArenaBlock *prev = a->head->prev;
    free(a->head);
    a->head = prev;
  }
  a->used = m.used;
  a->total = m.total;
}

void *arena_alloc(Arena *a, size_t size) {
  size = (size + 15) & ~(size_t)15;
  if (!a->head || a->used + size > a->head->size) {
    size_t cap = size > ARENA_BLOCK ? size : ARENA_BLOCK;
    ArenaBlock *b = xmalloc(sizeof *b + cap);
    b->prev = a->head;
    b->size = cap;
    a->head = b;
    a->used = 0;
    a->total += cap;
  }
  void *p = a->head->data + a->used;
  a->used += size;
  memset(p, 0, size);
  return p;
}

char *arena_strndup(Arena *a, const char *s, size_t n) {
  char *p = arena_alloc(a, n + 1);
  memcpy(p, s, n);
  p[n] = 0;
  return p;
}

char *arena_printf(Arena *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *p = arena_alloc(a, (size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return p;
}

void vec_push(Arena *a, PtrVec *v, void *item) {
  if (v->len == v->cap) {
    int cap = v->cap ? v->cap * 2 : 16;
    void **items = arena_alloc(a, sizeof(void *) * (size_t)cap);
    if (v->len) memcpy(items, v->items, sizeof(void *) * (size_t)v->len);
    v->items = items;
    v->cap = cap;
  }
  v->items[v->len++] = item;
}

static void buf_reserve(Buf *b, size_t extra) {
  if (b->len + extra + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra + 1)
    cap *= 2;
  char *d = realloc(b->data, cap);
  if (!d) out_of_memory();
  b->data = d;
  b->cap = cap;
}

void buf_printf(Buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  buf_reserve(b, (size_t)n);
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void buf_append(Buf *b, const void *data, size_t n) {
  buf_reserve(b, n);
  memcpy(b->data + b->len, data, n);
  b->len += n;
  b->data[b->len] = 0;
}

void buf_puts(Buf *b, const char *s) {
  size_t n = strlen(s);
  buf_reserve(b, n);
  memcpy(b->data + b->len, s, n + 1);
  b->len += n;
}

void buf_free(Buf *b) {
  free(b->data);
  memset(b, 0, sizeof *b);
}
