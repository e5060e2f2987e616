/* ast.c — constructors for the parse tree the grammar builds. */
#include <string.h>

#include "bpc.h"

Ast *ast_new(Ctx *c, AstKind kind, Loc loc) {
  Ast *a = arena_alloc(&c->arena, sizeof *a);
  a->kind = kind;
  a->loc = loc;
  return a;
}

/* Children are few (calls have at most a handful of arguments), except for
 * initialiser lists, so the array doubles as it grows. */
void ast_add_kid(Ctx *c, Ast *parent, Ast *kid) {
  int n = parent->nkids;
  if ((n & (n - 1)) == 0) { /* n is 0 or a power of two: grow */
    int cap = n ? n * 2 : 2;
    Ast **kids = arena_alloc(&c->arena, sizeof(Ast *) * (size_t)cap);
    if (n) memcpy(kids, parent->kids, sizeof(Ast *) * (size_t)n);
    parent->kids = kids;
  }
  parent->kids[parent->nkids++] = kid;
}

Stmt *stmt_new(Ctx *c, StmtKind kind, Loc loc) {
  Stmt *s = arena_alloc(&c->arena, sizeof *s);
  s->kind = kind;
  s->loc = loc;
  return s;
}
