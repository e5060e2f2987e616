/* main.c — the bpc command line: `bpc MODEL.bp -o model.c` and friends. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpc.h"
#include "cli.h"

static const char usage_text[] =
    "usage: bpc MODEL.bp [-o OUT.c] [options]     compile a model to C (OUT.c and OUT.h)\n"
    "       bpc COMMAND MODEL.bp [options]        see below\n"
    "\n"
    "Compile options:\n"
    "  -o FILE          write FILE and its header (FILE with .h); '-' writes C to stdout\n"
    "                   (default: MODEL.c and MODEL.h in the current directory)\n"
    "  --prefix NAME    prefix of the generated functions (default: from the output name)\n"
    "  --float          use float instead of double\n"
    "  -D NAME=INT      override a 'dim NAME = ...' of the model\n"
    "  --emit c|ir|loops|dot\n"
    "                   what to write: C (default), the IR as text, the loop plan of each\n"
    "                   generated function as text, or a Graphviz graph\n"
    "  --stats          print forward and backward op and flop counts\n"
    "  --with-loader    also write OUT_params.c and OUT_params.h: PREFIX_load_params(), which\n"
    "                   reads a file saved by bpc train --save (docs/c-api.md)\n"
    "\n"
    "Commands:\n"
    "  train MODEL.bp --data ...    train from the command line (bpc train --help)\n"
    "  eval MODEL.bp --load P ...   loss and accuracy of saved parameters\n"
    "  predict MODEL.bp --load P    write the model's outputs as CSV\n"
    "  grad MODEL.bp [--set ...]    the loss and every gradient, as the lecture notes print them\n"
    "  check MODEL.bp               compare the gradient with finite differences\n"
    "  graph MODEL.bp [--set ...]   the computational graph with values and gradients (Graphviz)\n"
    "  explain MODEL.bp --wrt P     the chain rule for dloss/dP, path by path\n"
    "  trace MODEL.bp [--set ...]   the backward sweep, step by step\n"
    "  bench MODEL.bp [--batch N]   time forward, backward and batched backward\n"
    "  params show FILE             the tensors of a saved parameter file: shapes, ranges, norms\n"
    "  params export FILE --format npy|csv -o DIR   each tensor as a file (numpy.load reads .npy)\n"
    "\n"
    "  -h, --help       this text\n"
    "  --version        print the version\n";

/* An identifier from a file name: "out/my-model.c" -> "my_model". */
static char *prefix_from_path(const char *path) {
  const char *base = path_base(path);
  size_t n = strcspn(base, ".");
  char *p = malloc(n + 3);
  size_t k = 0;
  if (n == 0 || isdigit((unsigned char)base[0])) p[k++] = 'm', p[k++] = '_';
  for (size_t i = 0; i < n; i++)
    p[k++] = isalnum((unsigned char)base[i]) ? base[i] : '_';
  p[k] = 0;
  return p;
}

static char *with_extension(const char *path, const char *ext) {
  const char *slash = strrchr(path, '/');
  const char *dot = strrchr(path, '.');
  size_t n = (dot && (!slash || dot > slash)) ? (size_t)(dot - path) : strlen(path);
  char *r = malloc(n + strlen(ext) + 1);
  memcpy(r, path, n);
  strcpy(r + n, ext);
  return r;
}

static void print_stats(Ctx *c, FILE *f) {
  Stats st;
  compute_stats(c, &st);
  fprintf(f, "forward:  %d ops, %.0f flops\n", st.fwd_ops, st.fwd_flops);
  fprintf(f, "backward: %d ops, %.0f flops (excluding the forward values it reuses)\n", st.bwd_ops,
          st.bwd_flops);
  fprintf(f, "backward/forward flops: %.2f\n", st.fwd_flops > 0 ? st.bwd_flops / st.fwd_flops : 0.0);
  fprintf(f, "parameters: %lld, inputs: %lld, outputs: %lld\n", (long long)c->num_params,
          (long long)c->num_inputs, (long long)c->num_outputs);
}

static int compile_command(int argc, char **argv) {
  const char *model = NULL, *out = NULL, *prefix = NULL, *emit = "c";
  int use_float = 0, stats = 0, with_loader = 0;
  DefineOpt defs[64];
  int ndefs = 0;
  CliArg *args = malloc(sizeof(CliArg) * (size_t)argc);
  int nargs = cli_parse(argc, argv, NULL, "-o --prefix --emit -D --float --stats --with-loader", NULL, args);
  for (int i = 0; i < nargs; i++) {
    const char *a = args[i].name, *v = args[i].value;
    if (!a) {
      if (model) cli_usage_error("more than one model given ('%s' and '%s')", model, v);
      model = v;
    } else if (!strcmp(a, "-o")) {
      out = v;
    } else if (!strcmp(a, "--prefix")) {
      prefix = v;
    } else if (!strcmp(a, "--emit")) {
      emit = v;
    } else if (!strcmp(a, "-D")) {
      if (ndefs == 64 || !cli_parse_define(v, &defs[ndefs++])) cli_usage_error("-D takes NAME=INT, got '%s'", v);
    } else if (!strcmp(a, "--float")) {
      use_float = 1;
    } else if (!strcmp(a, "--with-loader")) {
      with_loader = 1;
    } else {
      stats = 1;
    }
  }
  free(args);
  if (!model) cli_usage_error("no model given");
  if (strcmp(emit, "c") && strcmp(emit, "ir") && strcmp(emit, "loops") && strcmp(emit, "dot"))
    cli_usage_error("--emit takes c, ir, loops or dot, not '%s'", emit);
  if (prefix) {
    int ok = isalpha((unsigned char)prefix[0]) != 0;
    for (const char *p = prefix; *p; p++)
      ok &= isalnum((unsigned char)*p) || *p == '_';
    if (!ok) cli_usage_error("--prefix must be a C identifier, got '%s'", prefix);
  }
  int emit_c_files = !strcmp(emit, "c");
  int to_stdout = out ? !strcmp(out, "-") : !emit_c_files;
  if (with_loader && !emit_c_files) cli_usage_error("--with-loader writes C: it does not go with --emit %s", emit);
  if (with_loader && to_stdout)
    cli_usage_error("--with-loader writes OUT_params.c beside -o OUT.c, so it needs a file, not stdout");
  char *default_out = out || !emit_c_files ? NULL : with_extension(path_base(model), ".c");
  if (!out) out = default_out;
  char *h_path = emit_c_files && !to_stdout ? with_extension(out, ".h") : NULL;
  char *loader_c = with_loader ? with_extension(out, "_params.c") : NULL;
  char *loader_h = with_loader ? with_extension(out, "_params.h") : NULL;
  if (!to_stdout) { /* nothing is compiled before the outputs are known to be safe to write */
    if (h_path && cli_same_file(out, h_path)) {
      char *c_path = with_extension(out, ".c");
      cli_usage_error("-o %s: the C file and its header would both be %s; name the C file (-o %s)", out, h_path,
                      c_path);
    }
    const char *outs[4] = {out, h_path, loader_c, loader_h}, *ins[1] = {model};
    const char *opts[4] = {"-o", "-o (its header)", "--with-loader", "--with-loader (its header)"};
    cli_check_outputs(outs, opts, 4, ins, 1);
  }
  Ctx c;
  CompileOptions co = {.defines = defs, .ndefines = ndefs};
  cli_compile_or_exit(&c, model, &co);

  Buf text = {0}, header = {0}, loader_text = {0}, loader_header = {0};
  if (!emit_c_files) {
    if (!strcmp(emit, "ir"))
      ir_print(&c, &text);
    else if (!strcmp(emit, "loops"))
      plan_print_model(&c, &text);
    else
      emit_dot(&c, &text);
  } else {
    const char *h_base = h_path ? path_base(h_path) : NULL;
    char *auto_prefix = prefix ? NULL : prefix_from_path(to_stdout ? model : out);
    EmitOptions eo = {.prefix = prefix ? prefix : auto_prefix,
                      .use_float = use_float,
                      .self_contained = to_stdout,
                      .header_name = h_base};
    emit_c(&c, &eo, &text, &header);
    if (with_loader) {
      LoaderOptions lo = {.prefix = eo.prefix, .model_header = h_base, .header_name = path_base(loader_h)};
      emit_loader(&c, &lo, &loader_text, &loader_header);
    }
    free(auto_prefix);
  }
  if (to_stdout) {
    fwrite(text.data, 1, text.len, stdout);
  } else {
    const char *paths[4] = {out, h_path, loader_c, loader_h};
    Buf *bufs[4] = {&text, &header, &loader_text, &loader_header};
    const char *why = NULL;
    int failed = write_files_atomically(paths, bufs, with_loader ? 4 : h_path ? 2 : 1, &why);
    if (failed >= 0) {
      fprintf(stderr, "bpc: cannot write %s: %s\n", paths[failed], why);
      exit(1);
    }
  }
  if (stats) print_stats(&c, to_stdout ? stderr : stdout);
  free(h_path);
  free(loader_c);
  free(loader_h);
  free(default_out);
  buf_free(&text);
  buf_free(&header);
  buf_free(&loader_text);
  buf_free(&loader_header);
  ctx_free(&c);
  for (int i = 0; i < ndefs; i++)
    free((char *)defs[i].name);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) cli_usage_error("no model given");
  const char *cmd = argv[1];
  if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
    fputs(usage_text, stdout);
    return 0;
  }
  if (!strcmp(cmd, "--version")) {
    printf("bpc %s\n", BPC_VERSION);
    return 0;
  }
  const CliCommand *tables[] = {cli_commands, inspect_commands, params_commands};
  for (int t = 0; t < 3; t++)
    for (const CliCommand *k = tables[t]; k->name; k++)
      if (!strcmp(cmd, k->name)) return k->run(argc - 1, argv + 1);
  return compile_command(argc, argv);
}
