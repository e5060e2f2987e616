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

#define BPK_DECLARE(T, S)                                                                                    \
  /* y = A x, A is [m, k] */                                                                                 \
  void bpk_mv_##S(const T *A, const T *x, T *y, size_t m, size_t k, int acc);                                \
  /* y = A^T x, A is [k, m] */                                                                               \
  void bpk_mtv_##S(const T *A, const T *x, T *y, size_t k, size_t m, int acc);                               \
  /* D = a b^T, a is [m], b is [n] */                                                                        \
  void bpk_outer_##S(const T *a, const T *b, T *D, size_t m, size_t n, int acc);                             \
  /* C = op(A) op(B), C is [m, n], op(A) is [m, k]; ta/tb: A or B stored transposed */                       \
  void bpk_mm_##S(const T *A, const T *B, T *C, size_t m, size_t k, size_t n, int ta, int tb, int acc);

BPK_DECLARE(double, d)
BPK_DECLARE(float, f)

/* The kernels by name, for the JIT's symbol table. */
typedef struct KernelSymbol {
  const char *name;
  void *fn;
} KernelSymbol;
extern const KernelSymbol bpk_symbols[];
/* Frees the calling thread's packing buffers (each thread keeps its own
 * for the products with a transposed operand): a worker calls it before it
 * ends, or its buffers would be lost with it. */
void bpk_thread_done(void);

#endif
