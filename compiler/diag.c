/* diag.c — user-facing error messages: FILE:LINE:COL, the line, a caret. */
#include <stdarg.h>
#include <string.h>

#include "bpc.h"

/* Finds the start and length of line `line` (1-based) in the source. */
static const char *find_line(const Source *src, int line, size_t *len) {
  const char *p = src->text, *end = src->text + src->len;
  for (int l = 1; l < line && p < end; l++) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) return NULL;
    p = nl + 1;
  }
  const char *nl = memchr(p, '\n', (size_t)(end - p));
  *len = (size_t)((nl ? nl : end) - p);
  return p;
}

void diag_format(Buf *out, const Source *src, Loc loc, const char *msg) {
  if (loc.line <= 0) {
    buf_printf(out, "%s: error: %s\n", src->name, msg);
    return;
  }
  buf_printf(out, "%s:%d:%d: error: %s\n", src->name, loc.line, loc.col, msg);
  size_t len = 0;
  const char *text = find_line(src, loc.line, &len);
  if (!text) return;
  /* very long lines: show a window of the line around the column */
  size_t col = loc.col > 0 ? (size_t)loc.col - 1 : 0, start = 0;
  if (col > 100) start = col - 60;
  if (len > start + 120) len = start + 120;
  buf_printf(out, "%5d | %s", loc.line, start ? "..." : "");
  for (size_t i = start; i < len; i++) {
    unsigned char ch = (unsigned char)text[i];
    buf_printf(out, "%c", ch == '\t' ? ' ' : (ch < 32 || ch == 127) ? '?' : (char)ch);
  }
  buf_printf(out, "\n      | %s", start ? "   " : "");
  for (size_t i = start; i < col; i++)
    buf_puts(out, " ");
  buf_puts(out, "^\n");
}

static void record(Ctx *c, Loc loc, const char *fmt, va_list ap) {
  if (c->has_error) return;
  char msg[1024];
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  if (c->diag_note && n >= 0 && (size_t)n < sizeof msg) /* where in the unrolled program: (in f(), called at ...) */
    snprintf(msg + n, sizeof msg - (size_t)n, " %s", c->diag_note);
  c->has_error = 1;
  diag_format(&c->err, &c->src, loc, msg);
}

void diag_record(Ctx *c, Loc loc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  record(c, loc, fmt, ap);
  va_end(ap);
}

void diag_error(Ctx *c, Loc loc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  record(c, loc, fmt, ap);
  va_end(ap);
  longjmp(c->on_error, 1);
}

/* Edit distance, for "did you mean" suggestions (names and options). */
int edit_distance(const char *a, const char *b) {
  int la = (int)strlen(a), lb = (int)strlen(b);
  if (la > 64 || lb > 64) return 99;
  int prev[65], cur[65];
  for (int j = 0; j <= lb; j++)
    prev[j] = j;
  for (int i = 1; i <= la; i++) {
    cur[0] = i;
    for (int j = 1; j <= lb; j++) {
      int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
      int del = prev[j] + 1, ins = cur[j - 1] + 1;
      cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
    }
    memcpy(prev, cur, sizeof(int) * (size_t)(lb + 1));
  }
  return prev[lb];
}

int name_is_closer(const char *want, const char *cand, int *best) {
  int d = edit_distance(want, cand);
  int limit = (int)strlen(want) <= 3 ? 1 : 2;
  if (d <= limit && d < *best) {
    *best = d;
    return 1;
  }
  return 0;
}
