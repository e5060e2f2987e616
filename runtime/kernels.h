/* kernels.h — the heavy tensor operations, compiled into bpc at -O3 and
 * handed to JIT-compiled models (tcc does not optimise; these loops are
 * where the time goes). Each exists for double (_d) and float (_f).
 * `acc` nonzero adds into the destination instead of overwriting it. */
#ifndef BPC_KERNELS_H
#define BPC_KERNELS_H

/* Hot loops get an AVX2+FMA clone on x86-64 with gcc, picked at load time. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define BPK_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define BPK_CLONES
#endif

#include <stddef.h>

/* The threads' shares. Part `part` of `parts` of [0, n) in whole units
 * (the last part also takes what is left over): [lo, hi), balanced, the
 * same at every call. bpk_share_rows: of the rows of a matrix, in units of
 * at least a cache line (no two threads write one line), as the team
 * form's threads share a parameter's rows (the products that write its
 * gradient, the update). */
void bpk_share(size_t n, size_t unit, int part, int parts, size_t *lo, size_t *hi);
void bpk_share_rows(size_t rows, size_t row_bytes, int part, int parts, size_t *lo, size_t *hi);
/* bpk_mm_part shares C by columns, in blocks of BPK_PART_COLUMNS (every
 * path's tile width divides it), unless by_rows or C has fewer columns
 * than a block a thread; else by rows (bpk_share_rows). */
enum { BPK_PART_COLUMNS = 64 };
int bpk_mm_by_columns(size_t n, int parts, int by_rows);

#define BPK_DECLARE(T, S)                                                                                    \
  /* y = A x, A is [m, k] */                                                                                 \
  void bpk_mv_##S(const T *A, const T *x, T *y, size_t m, size_t k, int acc);                                \
  /* y = A^T x, A is [k, m] */                                                                               \
  void bpk_mtv_##S(const T *A, const T *x, T *y, size_t k, size_t m, int acc);                               \
  /* D = a b^T, a is [m], b is [n] */                                                                        \
  void bpk_outer_##S(const T *a, const T *b, T *D, size_t m, size_t n, int acc);                             \
  /* C = op(A) op(B), C is [m, n], op(A) is [m, k]; ta/tb: A or B stored transposed */                       \
  void bpk_mm_##S(const T *A, const T *B, T *C, size_t m, size_t k, size_t n, int ta, int tb, int acc);      \
  /* thread `part` of `parts`' share of bpk_mm: the threads together compute all of C, each part of C        \
     by one thread (see bpk_mm_by_columns) */                                                                \
  void bpk_mm_part_##S(const T *A, const T *B, T *C, size_t m, size_t k, size_t n, int ta, int tb, int acc,  \
                       int part, int parts, int by_rows);                                                    \
  /* thread `part` of `parts`' share of C = A B (A [m, k], B [k, n], neither transposed) split over k: the   \
     columns of A and rows of B in its range (bpk_share_rows of B's rows: the rows of B's gradient and       \
     update the same thread has in the team form), into out: part 0 into C itself, part q > 0 into           \
     scratch + (q - 1) m n. Once every part's is done, bpk_mm_ksum adds the parts' partials into rows       \
     [lo, hi) of C, in part order (each thread its rows, the rows it goes on with: emit_c.c's team_rows). */ \
  void bpk_mm_ksplit_##S(const T *A, const T *B, T *out, size_t m, size_t k, size_t n, int part, int parts); \
  void bpk_mm_ksum_##S(T *C, const T *scratch, size_t m, size_t n, size_t lo, size_t hi, int parts);         \
  /* y += x over n elements (the threads' gradients summed: runtime/train.c) */                              \
  void bpk_add_##S(T *y, const T *x, size_t n);

/* Convolution and pooling (conv.c) over N images [C, H, W] side by side,
 * NCHW; kernels [O, C/G, kh, kw]. The geometry is an array indexed by
 * these (compiler/emit_c.c writes it in this order); the output size is
 * PyTorch's, Ho = (H + 2 ph - dh (kh - 1) - 1) / sh + 1. Pooling reads it
 * with O = C and G = 1. */
enum {
  BPK_N,
  BPK_C,
  BPK_H,
  BPK_W,
  BPK_O,
  BPK_KH,
  BPK_KW,
  BPK_SH,
  BPK_SW,
  BPK_PH,
  BPK_PW,
  BPK_DH,
  BPK_DW,
  BPK_G,
  BPK_GEOM
};
#define BPK_DECLARE_WINDOW(T, S)                                                                             \
  void bpk_conv2d_##S(const T *x, const T *K, T *y, const size_t *g, int acc);                               \
  void bpk_conv2d_dx_##S(const T *dy, const T *K, T *dx, const size_t *g, int acc); /* transposed conv */    \
  void bpk_conv2d_dk_##S(const T *x, const T *dy, T *dK, const size_t *g, int acc); /* summed over n */      \
  void bpk_maxpool2d_##S(const T *x, T *y, const size_t *g, int acc);                                        \
  void bpk_maxpool2d_dx_##S(const T *x, const T *dy, T *dx, const size_t *g, int acc); /* first maximum */   \
  void bpk_avgpool2d_##S(const T *x, T *y, const size_t *g, int acc);                                        \
  void bpk_avgpool2d_dx_##S(const T *dy, T *dx, const size_t *g, int acc);

BPK_DECLARE(double, d)
BPK_DECLARE(float, f)
BPK_DECLARE_WINDOW(double, d)
BPK_DECLARE_WINDOW(float, f)
/* Frees the calling thread's column buffer (conv.c). */
void bpk_conv_thread_done(void);

/* The kernels by name, for the JIT's symbol table. */
typedef struct KernelSymbol {
  const char *name;
  void *fn;
} KernelSymbol;
extern const KernelSymbol bpk_symbols[];
/* The instruction-set paths of the dense kernels (kernels.c compiles the
 * same source for each): the bpk_ functions above take the widest this CPU
 * has, chosen at each call (cheap: the CPU's features are read once, at
 * load time). bpk_dense_S(path) gives one path's functions, or NULL where
 * the CPU or the build lacks it: the tests check each against a reference. */
enum { BPK_PATH_GENERIC, BPK_PATH_AVX2, BPK_PATH_AVX512, BPK_PATHS };
extern const char *const bpk_path_names[BPK_PATHS];
int bpk_path(void);
#define BPK_DECLARE_DENSE(T, S)                                                                              \
  typedef struct BpkDense_##S {                                                                              \
    void (*mv)(const T *A, const T *x, T *y, size_t m, size_t k, int acc);                                   \
    void (*mtv)(const T *A, const T *x, T *y, size_t k, size_t m, int acc);                                  \
    void (*outer)(const T *a, const T *b, T *D, size_t m, size_t n, int acc);                                \
    void (*mm)(const T *A, const T *B, T *C, size_t m, size_t k, size_t n, int ta, int tb, int acc);         \
    void (*mm_part)(const T *A, const T *B, T *C, size_t m, size_t k, size_t n, int ta, int tb, int acc,     \
                    int part, int parts, int by_rows);                                                       \
    void (*mm_ksplit)(const T *A, const T *B, T *out, size_t m, size_t k, size_t n, int part, int parts);    \
  } BpkDense_##S;                                                                                            \
  const BpkDense_##S *bpk_dense_##S(int path);
BPK_DECLARE_DENSE(double, d)
BPK_DECLARE_DENSE(float, f)

/* Frees the calling thread's packing buffers (each thread keeps its own
 * for the products with a transposed operand): a worker calls it before it
 * ends, or its buffers would be lost with it. */
void bpk_thread_done(void);

#endif
