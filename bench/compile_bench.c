/* compile_bench.c — how bpc's own compile time (parse to C) and tcc's
 * compile time grow with the number of statements (make bench-compile).
 * usage: compile_bench MODEL.bp... */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpc.h"
#include "runtime.h"

int main(int argc, char **argv) {
  printf("%-28s %10s %12s %12s %12s %12s\n", "model", "nodes", "bpc to C ms", "C bytes", "tcc ms",
         "total ms");
  for (int i = 1; i < argc; i++) {
    size_t len;
    const char *why;
    char *src = read_source_file(argv[i], &len, &why);
    if (!src) {
      fprintf(stderr, "compile_bench: %s: %s\n", argv[i], why);
      return 1;
    }
    double best_bpc = 1e9, best_tcc = 1e9;
    size_t bytes = 0;
    int nodes = 0;
    for (int rep = 0; rep < 3; rep++) { /* best of 3 */
      double t0 = now_seconds();
      Ctx c;
      ctx_init(&c, argv[i], src, len);
      if (bpc_compile(&c, NULL)) {
        fputs(c.err.data, stderr);
        return 1;
      }
      Buf out = {0}, h = {0};
      EmitOptions eo = {.prefix = JIT_PREFIX,
                        .self_contained = 1,
                        .jit_kernels = 1,
                        .part_nodes = -1}; /* as jit_load (cli/build.c) */
      emit_c(&c, &eo, &out, &h);
      double t1 = now_seconds();
      char *err = NULL;
      void *tcc = jit_compile_c(out.data, &err);
      double t2 = now_seconds();
      if (!tcc) {
        fprintf(stderr, "compile_bench: tcc: %s\n", err);
        return 1;
      }
      bytes = out.len;
      nodes = c.nodes.len;
      best_bpc = t1 - t0 < best_bpc ? t1 - t0 : best_bpc;
      best_tcc = t2 - t1 < best_tcc ? t2 - t1 : best_tcc;
      buf_free(&out);
      buf_free(&h);
      ctx_free(&c);
    }
    printf("%-28s %10d %12.1f %12zu %12.1f %12.1f\n", argv[i], nodes, 1e3 * best_bpc, bytes, 1e3 * best_tcc,
           1e3 * (best_bpc + best_tcc));
    free(src);
  }
  return 0;
}
