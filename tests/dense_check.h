/* dense_check.h — the dense kernels (mm, mv, mtv, outer) of one path
 * against direct loops in double, for test_kernels.c (every path this CPU
 * has) and test_kernel_widths.c (every path's code, at its vector width, in
 * generic instructions); and the random numbers they share. Included after
 * cmocka.h. */
#ifndef BPC_DENSE_CHECK_H
#define BPC_DENSE_CHECK_H
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernels.h"

/* ---- random numbers, rounded to float so both precisions see them ---- */

static uint64_t next(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}
static double *random_array(size_t n, uint64_t *s) {
  double *a = malloc(sizeof(double) * (n + 1));
  for (size_t i = 0; i < n; i++)
    a[i] = (double)(float)((double)(next(s) >> 11) * 0x1p-53 * 4.0 - 2.0);
  return a;
}

/* ---- the dense kernels ---- */

static int compared; /* kernel runs compared with their reference */

/* The product by one call (parts 0), or by `parts` calls of mm_part, one
 * per part, as the team form's threads make them (here one after another:
 * together they must write each element of C exactly once). */
static void run_mm_d(const BpkDense_d *dd, const double *A, const double *B, double *C, size_t m, size_t k,
                     size_t n, int ta, int tb, int acc, int parts, int by_rows) {
  if (!parts) dd->mm(A, B, C, m, k, n, ta, tb, acc);
  for (int p = 0; p < parts; p++)
    dd->mm_part(A, B, C, m, k, n, ta, tb, acc, p, parts, by_rows);
}
static void run_mm_f(const BpkDense_f *df, const float *A, const float *B, float *C, size_t m, size_t k,
                     size_t n, int ta, int tb, int acc, int parts, int by_rows) {
  if (!parts) df->mm(A, B, C, m, k, n, ta, tb, acc);
  for (int p = 0; p < parts; p++)
    df->mm_part(A, B, C, m, k, n, ta, tb, acc, p, parts, by_rows);
}

/* One path's matrix product against the direct loop, every way of storing A
 * and B, storing and adding, in both precisions, on sizes around the tiles'
 * edges: rows 1 to 7 (the tiles have 1 to 6), columns around one and two
 * vectors of each path's width (2 to 16 elements) and past them, k = 0 (an
 * empty sum), 1 and past the blocks of k (128 to 512 deep). With parts, by
 * mm_part (run_mm). */
static void check_mm_parts(const BpkDense_d *dd, const BpkDense_f *df, const char *name, size_t m, size_t k,
                           size_t n, int parts, int by_rows, uint64_t *rng) {
  double *A = random_array(m * k, rng), *B = random_array(k * n, rng);
  double *want = malloc(sizeof(double) * (m * n + 1)), *mag = malloc(sizeof(double) * (m * n + 1));
  double *got = malloc(sizeof(double) * (m * n + 1));
  float *fa = malloc(sizeof(float) * (m * k + 1)), *fb = malloc(sizeof(float) * (k * n + 1)),
        *fc = malloc(sizeof(float) * (m * n + 1));
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
          double s = 0, a = 0;
          for (size_t p = 0; p < k; p++) {
            double t = A[ta ? p * m + i : i * k + p] * B[tb ? j * k + p : p * n + j];
            s += t;
            a += fabs(t);
          }
          want[i * n + j] = s;
          mag[i * n + j] = a;
        }
      for (int use_float = 0; use_float < 2; use_float++)
        for (int acc = 0; acc < 2; acc++) {
          double *start = random_array(m * n, rng);
          for (size_t i = 0; i < m * n; i++)
            got[i] = acc ? start[i] : NAN;
          if (use_float) {
            for (size_t i = 0; i < m * k; i++)
              fa[i] = (float)A[i];
            for (size_t i = 0; i < k * n; i++)
              fb[i] = (float)B[i];
            for (size_t i = 0; i < m * n; i++)
              fc[i] = (float)got[i];
            run_mm_f(df, fa, fb, fc, m, k, n, ta, tb, acc, parts, by_rows);
            for (size_t i = 0; i < m * n; i++)
              got[i] = fc[i];
          } else {
            run_mm_d(dd, A, B, got, m, k, n, ta, tb, acc, parts, by_rows);
          }
          double tol = use_float ? 1e-4 : 1e-12;
          for (size_t i = 0; i < m * n; i++) {
            double expect = want[i] + (acc ? start[i] : 0),
                   bound = tol * (mag[i] + (acc ? fabs(start[i]) : 0));
            if (!(fabs(got[i] - expect) <= bound))
              fail_msg("mm_%s (%s) m%zu k%zu n%zu ta%d tb%d acc%d parts %d%s at %zu: %.17g, want %.17g",
                       use_float ? "f" : "d", name, m, k, n, ta, tb, acc, parts, by_rows ? " by rows" : "", i,
                       got[i], expect);
          }
          free(start);
          compared++;
        }
    }
  free(A);
  free(B);
  free(want);
  free(mag);
  free(got);
  free(fa);
  free(fb);
  free(fc);
}

static void check_mm_tables(const BpkDense_d *dd, const BpkDense_f *df, const char *name, size_t m, size_t k,
                            size_t n, uint64_t *rng) {
  check_mm_parts(dd, df, name, m, k, n, 0, 0, rng);
}

/* mv, mtv and outer of one path against the direct loops, storing and
 * adding, in both precisions, on lengths around each path's vectors.
 * Returns the runs compared (VECTOR_CHECKS). */
enum { VECTOR_LENS = 9, VECTOR_CHECKS = VECTOR_LENS * VECTOR_LENS * 3 * 2 * 2 };
static int check_vector_kernels(const BpkDense_d *dd, const BpkDense_f *df, const char *name) {
  static const size_t lens[VECTOR_LENS] = {1, 2, 3, 5, 8, 15, 17, 33, 100};
  uint64_t rng = 5;
  int checked = 0;
  {
    for (size_t a = 0; a < sizeof lens / sizeof lens[0]; a++)
      for (size_t b = 0; b < sizeof lens / sizeof lens[0]; b++) {
        size_t m = lens[a], k = lens[b];
        double *A = random_array(m * k, &rng), *x = random_array(k, &rng), *xm = random_array(m, &rng),
               *y0 = random_array(m * k, &rng);
        double *y = malloc(sizeof(double) * (m * k + 1)), *want = malloc(sizeof(double) * (m * k + 1));
        float *fA = malloc(sizeof(float) * (m * k + 1)), *fx = malloc(sizeof(float) * (k + m + 1)),
              *fy = malloc(sizeof(float) * (m * k + 1));
        for (int kind = 0; kind < 3; kind++)
          for (int acc = 0; acc < 2; acc++) {
            /* mv: y[m] = A[m,k] x[k]; mtv: y[k] = A^T x with A read as [m, k] = [k', m'] (k' = m);
               outer: D[m,k] = xm x^T */
            size_t ny = kind == 0 ? m : kind == 1 ? k : m * k;
            for (size_t i = 0; i < ny; i++) {
              double s = acc ? y0[i] : 0;
              if (kind == 0)
                for (size_t p = 0; p < k; p++)
                  s += A[i * k + p] * x[p];
              else if (kind == 1)
                for (size_t p = 0; p < m; p++)
                  s += A[p * k + i] * xm[p];
              else
                s += xm[i / k] * x[i % k];
              want[i] = s;
            }
            for (int use_float = 0; use_float < 2; use_float++) {
              for (size_t i = 0; i < ny; i++)
                y[i] = acc ? y0[i] : NAN;
              if (!use_float) {
                if (kind == 0) dd->mv(A, x, y, m, k, acc);
                if (kind == 1) dd->mtv(A, xm, y, m, k, acc);
                if (kind == 2) dd->outer(xm, x, y, m, k, acc);
              } else {
                for (size_t i = 0; i < m * k; i++)
                  fA[i] = (float)A[i];
                for (size_t i = 0; i < ny; i++)
                  fy[i] = (float)y[i];
                const double *v = kind == 1 ? xm : x;
                size_t nv = kind == 1 ? m : k;
                for (size_t i = 0; i < nv; i++)
                  fx[i] = (float)v[i];
                float *fxm = fx + k; /* outer's first vector */
                for (size_t i = 0; kind == 2 && i < m; i++)
                  fxm[i] = (float)xm[i];
                if (kind == 0) df->mv(fA, fx, fy, m, k, acc);
                if (kind == 1) df->mtv(fA, fx, fy, m, k, acc);
                if (kind == 2) df->outer(fxm, fx, fy, m, k, acc);
                for (size_t i = 0; i < ny; i++)
                  y[i] = fy[i];
              }
              for (size_t i = 0; i < ny; i++)
                if (!(fabs(y[i] - want[i]) <= (use_float ? 1e-4 : 1e-12) * (1 + fabs(want[i]) + (double)k)))
                  fail_msg("%s_%s (%s) m%zu k%zu acc%d at %zu: %.17g, want %.17g",
                           kind == 0   ? "mv"
                           : kind == 1 ? "mtv"
                                       : "outer",
                           use_float ? "f" : "d", name, m, k, acc, i, y[i], want[i]);
              checked++;
            }
          }
        free(A);
        free(x);
        free(xm);
        free(y0);
        free(y);
        free(want);
        free(fA);
        free(fx);
        free(fy);
      }
  }
  return checked;
}

/* check_mm_tables over one path: every size of the lists, and the Fashion
 * networks' own shapes. Returns the runs compared. */
static int check_mm_sweep(const BpkDense_d *dd, const BpkDense_f *df, const char *name) {
  static const size_t ms[] = {1, 2, 3, 4, 5, 6, 7, 13, 25};
  static const size_t ns[] = {1, 3, 4, 5, 8, 9, 15, 16, 17, 24, 31, 33, 196};
  static const size_t ks[] = {0, 1, 2, 7, 300};
  uint64_t rng = 99;
  compared = 0;
  int runs = 0;
  for (size_t a = 0; a < sizeof ms / sizeof ms[0]; a++)
    for (size_t b = 0; b < sizeof ns / sizeof ns[0]; b++)
      for (size_t c = 0; c < sizeof ks / sizeof ks[0]; c++) {
        if (ks[c] == 300 && ms[a] * ns[b] > 200) continue; /* the deep ones small, to stay quick */
        check_mm_tables(dd, df, name, ms[a], ks[c], ns[b], &rng);
        runs++;
      }
  check_mm_tables(dd, df, name, 32, 400, 196,
                  &rng); /* the Fashion CNN's second layer: the forward product of one image */
  check_mm_tables(dd, df, name, 25, 784, 16, &rng); /* the first layer's kernel gradient */
  /* rows of B a multiple of 256 bytes apart (64 floats, 32 doubles), with enough rows of C to copy B's
     panels contiguous first: k over several blocks, and a last panel narrower than a tile */
  check_mm_tables(dd, df, name, 13, 600, 64, &rng);
  check_mm_tables(dd, df, name, 19, 7, 160, &rng);
  assert_int_equal(compared, 16 * (runs + 4));
  return compared;
}

/* mm_part by 1, 2 and 3 parts, by columns (where C is wide enough: 64
 * columns a part) and by rows, on shapes whose columns and rows do not
 * divide evenly: columns past one, two and three blocks of 64, rows fewer
 * than the parts, one row a cache line or less (rows then go in groups).
 * Returns the runs compared. */
static int check_mm_part_sweep(const BpkDense_d *dd, const BpkDense_f *df, const char *name) {
  static const size_t shapes[][3] = {{13, 37, 130}, {7, 5, 200}, {25, 16, 64}, {30, 9, 10},
                                     {1, 3, 5},     {100, 2, 3}, {6, 0, 129},  {2, 11, 193}};
  uint64_t rng = 7;
  compared = 0;
  int runs = 0;
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    for (int parts = 1; parts <= 3; parts++)
      for (int by_rows = 0; by_rows < 2; by_rows++) {
        check_mm_parts(dd, df, name, shapes[s][0], shapes[s][1], shapes[s][2], parts, by_rows, &rng);
        runs++;
      }
  assert_int_equal(compared, 16 * runs);
  return compared;
}

/* mm_ksplit by 1, 2 and 3 parts, each part's partial product in turn, then
 * bpk_mm_ksum for each part's rows: together the product, double and
 * float. Neither C nor the scratch is read before it is written (both
 * start as NaN). Returns the parts' products compared. */
static int check_mm_ksplit(const BpkDense_d *dd, const BpkDense_f *df, const char *name, size_t m, size_t k,
                           size_t n, int parts, uint64_t *rng) {
  double *A = random_array(m * k, rng), *B = random_array(k * n, rng);
  double *want = calloc(m * n + 1, sizeof(double)), *mag = calloc(m * n + 1, sizeof(double));
  double *C = malloc(sizeof(double) * (m * n + 1)), *scratch = malloc(sizeof(double) * (3 * m * n + 1));
  float *fa = malloc(sizeof(float) * (m * k + 1)), *fb = malloc(sizeof(float) * (k * n + 1));
  float *fc = malloc(sizeof(float) * (m * n + 1)), *fs = malloc(sizeof(float) * (3 * m * n + 1));
  for (size_t i = 0; i < m; i++)
    for (size_t j = 0; j < n; j++)
      for (size_t p = 0; p < k; p++) {
        want[i * n + j] += A[i * k + p] * B[p * n + j];
        mag[i * n + j] += fabs(A[i * k + p] * B[p * n + j]);
      }
  for (size_t i = 0; i < m * k; i++)
    fa[i] = (float)A[i];
  for (size_t i = 0; i < k * n; i++)
    fb[i] = (float)B[i];
  for (size_t i = 0; i < 3 * m * n + 1; i++)
    scratch[i] = fs[i] = NAN;
  for (size_t i = 0; i < m * n + 1; i++)
    C[i] = fc[i] = NAN;
  size_t mn = m * n;
  for (int part = 0; part < parts; part++) {
    dd->mm_ksplit(A, B, part ? scratch + (size_t)(part - 1) * mn : C, m, k, n, part, parts);
    df->mm_ksplit(fa, fb, part ? fs + (size_t)(part - 1) * mn : fc, m, k, n, part, parts);
  }
  for (int part = 0; part < parts; part++) { /* rows cut unevenly, as a team's rows of the batch may be */
    size_t lo = m * (size_t)part * (size_t)part / ((size_t)parts * (size_t)parts);
    size_t hi = part == parts - 1 ? m : m * (size_t)(part + 1) * (size_t)(part + 1) / ((size_t)parts * (size_t)parts);
    bpk_mm_ksum_d(C, scratch, m, n, lo, hi, parts);
    bpk_mm_ksum_f(fc, fs, m, n, lo, hi, parts);
  }
  for (size_t i = 0; i < mn; i++) {
    if (!(fabs(C[i] - want[i]) <= 1e-12 * (1 + mag[i])))
      fail_msg("mm_ksplit_d (%s) %zux%zux%zu in %d parts at %zu: %.17g, want %.17g", name, m, k, n, parts, i,
               C[i], want[i]);
    if (!(fabs(fc[i] - want[i]) <= 1e-4 * (1 + mag[i])))
      fail_msg("mm_ksplit_f (%s) %zux%zux%zu in %d parts at %zu: %.9g, want %.9g", name, m, k, n, parts, i,
               (double)fc[i], want[i]);
  }
  assert_true(isnan(C[mn]) && isnan(fc[mn])); /* nothing past C */
  free(A);
  free(B);
  free(want);
  free(mag);
  free(C);
  free(scratch);
  free(fa);
  free(fb);
  free(fc);
  free(fs);
  return 1;
}

/* check_mm_ksplit on shapes whose k does not divide among the parts, k
 * smaller than the parts (a part with nothing to add), rows of C fewer
 * than the parts, and the MLP's first product. Returns the runs. */
static int check_mm_ksplit_sweep(const BpkDense_d *dd, const BpkDense_f *df, const char *name) {
  static const size_t shapes[][3] = {{13, 37, 130}, {7, 5, 200}, {25, 16, 64}, {30, 9, 10},   {1, 3, 5},
                                     {100, 2, 3},   {6, 0, 129}, {2, 11, 193}, {64, 784, 128}};
  uint64_t rng = 11;
  int runs = 0;
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    for (int parts = 1; parts <= 3; parts++)
      runs += check_mm_ksplit(dd, df, name, shapes[s][0], shapes[s][1], shapes[s][2], parts, &rng);
  assert_int_equal(runs, 27);
  return runs;
}

#endif
