/* support.h — the small utilities every layer of bpc shares, each once:
 * memory (an arena, growable vectors and text buffers), hashing, the one
 * random number generator, reading a whole file, writing files atomically,
 * formatted strings and the clock. The compiler (compiler/bpc.h includes
 * this header), the runtime and the command line all use them; this folder
 * uses nothing of theirs, only the C library.
 *
 *   arena.c         Arena, PtrVec, Buf; what an allocation failure does
 *   util.c          hashing, random numbers, files and paths, str_printf, now_seconds, format_dims
 *   atomic_write.c  files that appear whole or not at all
 */
#ifndef BPC_SUPPORT_H
#define BPC_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

/* ---- limits of a model that more than one layer checks ----------------------
 * (docs/language.md lists them all; the compiler's others are in bpc.h.)
 * The compiler refuses a model past them; the runtime takes a parameter
 * file that claims more as damaged, since no model could have written it. */
#define BPC_MAX_IDENT 128       /* characters in a name */
#define BPC_MAX_RANK 8          /* axes of a tensor */
#define BPC_MAX_DIM 100000000LL /* one dimension */

/* ---- arena.c --------------------------------------------------------------- */
/* Prints "bpc: out of memory" and exits 3: what every allocation failure
 * does (there is nothing sensible to continue with). */
_Noreturn void out_of_memory(void);

typedef struct ArenaBlock ArenaBlock;
typedef struct Arena {
  ArenaBlock *head; /* newest block; older ones are chained behind it */
  size_t used;      /* bytes used in head */
  size_t total;     /* bytes allocated over all blocks, for the memory limit */
} Arena;

void arena_init(Arena *a);
void arena_free(Arena *a);
/* A point to roll the arena back to: what is allocated after a mark is
 * scratch, freed by arena_release (per-function planning and strings). */
typedef struct ArenaMark {
  ArenaBlock *head;
  size_t used, total;
} ArenaMark;
ArenaMark arena_mark(const Arena *a);
void arena_release(Arena *a, ArenaMark m);
void *arena_alloc(Arena *a, size_t size); /* zeroed, 16-byte aligned */
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_printf(Arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A growable array of pointers, backed by the arena (old storage is simply
 * abandoned when it grows). */
typedef struct PtrVec {
  void **items;
  int len, cap;
} PtrVec;
void vec_push(Arena *a, PtrVec *v, void *item);

/* A growable text buffer (malloc-backed: it outlives the arena when the
 * emitted C is handed to the caller). */
typedef struct Buf {
  char *data;
  size_t len, cap;
} Buf;
void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_puts(Buf *b, const char *s);
void buf_append(Buf *b, const void *data, size_t n); /* raw bytes */
void buf_free(Buf *b);

/* ---- util.c ------------------------------------------------------------------ */
uint32_t hash_string(const char *s);                         /* FNV-1a, for hash tables */
uint64_t hash_bytes(const void *data, size_t n, uint64_t h); /* FNV-1a 64, continuing from h */
uint64_t splitmix64(uint64_t *state);                        /* the project's one RNG step */
double random_normal(uint64_t *state);                       /* standard normal (Box-Muller) */
/* A whole file, NUL-terminated (malloc'd); NULL with *why ("too large"
 * past limit bytes, or the system's reason). */
char *read_whole_file(const char *path, size_t limit, size_t *len, const char **why);
/* The file name part of a path: "out/model.c" -> "model.c". */
const char *path_base(const char *path);
/* A formatted string, malloc'd (out of memory exits). */
char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
double now_seconds(void); /* a monotonic clock, for timings */
/* calloc for the arrays threads share or a step reads at random (the
 * parameters, gradients, workspaces, a dataset's examples): aligned to a
 * cache line, so that threads sharing one by whole lines never write the
 * same line, and the large ones backed by huge pages where the system lends
 * them, so that reading a random row does not first miss the TLB (in a VM,
 * a two-level page walk). free() releases it. NULL when out of memory or
 * n * size overflows. */
void *calloc_aligned(size_t n, size_t size);
/* How messages write a tensor's shape: "[3,4]", or "scalar" for rank 0.
 * out holds BPC_DIMS_TEXT characters; returns out. */
#define BPC_DIMS_TEXT (BPC_MAX_RANK * 24 + 4)
char *format_dims(char *out, int rank, const int64_t *dim);

/* ---- atomic_write.c ------------------------------------------------------------ */
/* Writes each buffer to a temporary file beside its path, fsyncs, then
 * renames all of them into place. Returns -1 on success, or the index of the
 * path that failed (with *why set); nothing is left behind on failure. */
int write_files_atomically(const char **paths, Buf **bufs, int n, const char **why);

#endif
