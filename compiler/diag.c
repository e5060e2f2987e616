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
  vsnprintf(msg, sizeof msg, fmt, ap);
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
