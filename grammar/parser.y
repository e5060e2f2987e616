/* parser.y — the .bp grammar. Builds the AST (ast.c); meaning and shapes are
 * checked later, in lower.c. Errors are recorded, never jumped out of, so
 * bison and flex can free their stacks. */
%code requires {
#include "bpc.h"
typedef void *yyscan_t;
typedef struct NumTok { double v; int is_int; } NumTok;
}

%code {
#include <limits.h>
#include <stdlib.h>
#include <string.h>
int bplex(YYSTYPE *lval, YYLTYPE *lloc, yyscan_t scanner);
static void bperror(YYLTYPE *loc, Ctx *c, yyscan_t scanner, int *pending, const char *msg);
static Loc L(YYLTYPE l) { Loc loc = {l.first_line, l.first_column}; return loc; }
static Ast *num(Ctx *c, YYLTYPE l, NumTok t) {
  Ast *a = ast_new(c, AST_NUM, L(l));
  a->num = t.v;
  a->is_int = t.is_int;
  return a;
}
static Ast *bin(Ctx *c, YYLTYPE l, char op, Ast *x, Ast *y) {
  Ast *a = ast_new(c, AST_BIN, L(l));
  a->op = op;
  ast_add_kid(c, a, x);
  ast_add_kid(c, a, y);
  return a;
}
/* Every statement counts toward the limit, at the top level or in a block. */
static int count_stmt(Ctx *c, Stmt *s) {
  if (++c->nstatements > BPC_MAX_STATEMENTS) {
    diag_record(c, s->loc, "too many statements (the limit is %d)", BPC_MAX_STATEMENTS);
    return 0;
  }
  return 1;
}
static int add_stmt(Ctx *c, Stmt *s) {
  if (!count_stmt(c, s)) return 0;
  vec_push(&c->arena, &c->prog.stmts, s);
  return 1;
}
/* Operators whose right operand is still being read: at most
 * BPC_MAX_PARSE_DEPTH, exactly, in any context. The counter, not bison's
 * stack, enforces the limit: one pending operator takes up to three stack
 * entries (left operand, operator, mid-rule action), a bracket up to four
 * (name, bracket, arguments, comma), and a statement's start four. */
static int push_op(Ctx *c, int *pending, YYLTYPE l) {
  if (*pending >= BPC_MAX_PARSE_DEPTH) {
    diag_record(c, L(l), "expression nested too deeply (the limit is %d pending operators)", BPC_MAX_PARSE_DEPTH);
    return 0;
  }
  ++*pending;
  return 1;
}
#define PUSH(l) do { if (!push_op(c, pending, (l))) YYABORT; } while (0)
#define POP (--*pending)
#define YYMAXDEPTH (3 * BPC_MAX_PARSE_DEPTH + 4 * BPC_MAX_NESTING + 64)
#define YYINITDEPTH 256
}

%define api.pure full
%define api.prefix {bp}
%define parse.error custom
%locations
%parse-param {Ctx *c} {yyscan_t scanner} {int *pending}
%lex-param {yyscan_t scanner}

%union {
  NumTok num;
  char *str;
  Ast *ast;
  Stmt *stmt;
}

%token <num> NUMBER "number"
%token <str> IDENT "name"
%token DIM "'dim'" PARAM "'param'" INPUT "'input'" OUTPUT "'output'"
%token DEF "'def'" FOR "'for'" IN "'in'" RETURN "'return'" DOTDOT "'..'"
%token SEP "end of line"
%token LEXERROR "invalid token"

%type <ast> expr postfix primary args arg index_list index_item opt_expr expr_list init_value init_list signed_num dim dim_list
%type <ast> param_list
%type <stmt> stmt shape_opt param_decl block lines def_head

%left '+' '-'
%left '*' '/' '%' '@'
%precedence UMINUS
%right '^'

%%

program: %empty
       | program SEP
       | program stmt SEP { if (!add_stmt(c, $2)) YYABORT; }
       ;

stmt: DIM IDENT '=' dim {
        $$ = stmt_new(c, ST_DIM, L(@1));
        $$->name = $2; $$->name_loc = L(@2);
        $$->expr = $4;
      }
    | param_decl
    | INPUT IDENT shape_opt {
        $$ = $3; $$->kind = ST_INPUT; $$->loc = L(@1);
        $$->name = $2; $$->name_loc = L(@2);
      }
    | OUTPUT IDENT '=' expr {
        $$ = stmt_new(c, ST_OUTPUT, L(@1));
        $$->name = $2; $$->name_loc = L(@2); $$->expr = $4;
      }
    | IDENT '=' expr {
        $$ = stmt_new(c, ST_ASSIGN, L(@1));
        $$->name = $1; $$->name_loc = L(@1); $$->expr = $3;
      }
    | FOR IDENT IN expr DOTDOT expr '{' block '}' {
        $$ = $8; $$->kind = ST_FOR; $$->loc = L(@1);
        $$->name = $2; $$->name_loc = L(@2); $$->expr = $4; $$->hi = $6;
      }
    | def_head '=' expr {
        $$ = $1;
        Stmt *r = stmt_new(c, ST_RETURN, L(@3)); /* the one-expression form: its body returns it */
        r->expr = $3;
        vec_push(&c->arena, &$$->body, r);
      }
    | def_head '{' block '}' { $$ = $1; $$->body = $3->body; }
    | RETURN expr { $$ = stmt_new(c, ST_RETURN, L(@1)); $$->expr = $2; }
    ;

def_head: DEF IDENT '(' ')' {
            $$ = stmt_new(c, ST_DEF, L(@1)); $$->name = $2; $$->name_loc = L(@2);
          }
        | DEF IDENT '(' param_list ')' {
            $$ = stmt_new(c, ST_DEF, L(@1)); $$->name = $2; $$->name_loc = L(@2);
            $$->params = $4->kids; $$->nparams = $4->nkids;
          }
        ;

param_list: IDENT {
              $$ = ast_new(c, AST_LIST, L(@1));
              Ast *p = ast_new(c, AST_NAME, L(@1)); p->name = $1;
              ast_add_kid(c, $$, p);
            }
          | param_list ',' IDENT {
              $$ = $1;
              Ast *p = ast_new(c, AST_NAME, L(@3)); p->name = $3;
              ast_add_kid(c, $$, p);
            }
          ;

/* The statements of a { } block, each ending its line; the last may end
 * with the closing brace instead. */
block: lines
     | lines stmt { $$ = $1; if (!count_stmt(c, $2)) YYABORT; vec_push(&c->arena, &$$->body, $2); }
     ;

lines: %empty { $$ = stmt_new(c, ST_FOR, L(@$)); }
     | lines SEP { $$ = $1; }
     | lines stmt SEP { $$ = $1; if (!count_stmt(c, $2)) YYABORT; vec_push(&c->arena, &$$->body, $2); }
     ;

param_decl: PARAM IDENT shape_opt {
              $$ = $3; $$->kind = ST_PARAM; $$->loc = L(@1);
              $$->name = $2; $$->name_loc = L(@2);
            }
          | param_decl '=' init_value {
              $$ = $1; $$->init = INIT_VALUE; $$->init_value = $3; $$->init_loc = L(@3);
            }
          | param_decl '~' IDENT {
              $$ = $1; $$->init_loc = L(@3);
              if (!strcmp($3, "glorot")) $$->init = INIT_GLOROT;
              else if (!strcmp($3, "he")) $$->init = INIT_HE;
              else if (!strcmp($3, "zeros")) $$->init = INIT_ZEROS;
              else if (!strcmp($3, "normal") || !strcmp($3, "uniform")) {
                diag_record(c, L(@3), "'%s' needs two arguments, e.g. ~ %s", $3,
                            !strcmp($3, "normal") ? "normal(0, 0.1)" : "uniform(-1, 1)");
                YYABORT;
              } else {
                diag_record(c, L(@3), "unknown initialiser '%s' (use normal, uniform, glorot, he or zeros)", $3);
                YYABORT;
              }
            }
          | param_decl '~' IDENT '(' signed_num ',' signed_num ')' {
              $$ = $1; $$->init_loc = L(@3);
              if (!strcmp($3, "normal")) $$->init = INIT_NORMAL;
              else if (!strcmp($3, "uniform")) $$->init = INIT_UNIFORM;
              else {
                diag_record(c, L(@3), "unknown initialiser '%s(...)' (use normal(mean, std) or uniform(lo, hi))", $3);
                YYABORT;
              }
              Ast *list = ast_new(c, AST_LIST, L(@3));
              ast_add_kid(c, list, $5);
              ast_add_kid(c, list, $7);
              $$->init_args = list->kids; $$->ninit_args = 2;
            }
          ;

shape_opt: %empty { $$ = stmt_new(c, ST_PARAM, L(@$)); }
         | '[' dim_list ']' {
             $$ = stmt_new(c, ST_PARAM, L(@1));
             $$->dims = $2->kids; $$->ndims = $2->nkids;
           }
         ;

dim_list: dim { $$ = ast_new(c, AST_LIST, L(@1)); ast_add_kid(c, $$, $1); }
        | dim_list ',' dim {
            if ($1->nkids == BPC_MAX_RANK) {
              diag_record(c, L(@3), "tensors have at most %d dimensions", BPC_MAX_RANK);
              YYABORT;
            }
            $$ = $1; ast_add_kid(c, $$, $3);
          }
        ;

dim: NUMBER { $$ = num(c, @1, $1); }
   | IDENT  { $$ = ast_new(c, AST_NAME, L(@1)); $$->name = $1; }
   | '-' NUMBER { $$ = num(c, @1, $2); $$->num = -$$->num; }
   ;

init_value: signed_num
          | '[' init_list ']' { $$ = $2; $$->loc = L(@1); }
          ;
init_list: init_value { $$ = ast_new(c, AST_LIST, L(@1)); ast_add_kid(c, $$, $1); }
         | init_list ',' init_value { $$ = $1; ast_add_kid(c, $$, $3); }
         ;
signed_num: NUMBER { $$ = num(c, @1, $1); }
          | '-' NUMBER { $$ = num(c, @1, $2); $$->num = -$$->num; }
          | '+' NUMBER { $$ = num(c, @1, $2); }
          ;

/* Each operator is pending from its shift until its right operand is
 * reduced; PUSH and POP (the mid-rule actions) count them. */
expr: expr '+' { PUSH(@2); } expr { POP; $$ = bin(c, @2, '+', $1, $4); }
    | expr '-' { PUSH(@2); } expr { POP; $$ = bin(c, @2, '-', $1, $4); }
    | expr '*' { PUSH(@2); } expr { POP; $$ = bin(c, @2, '*', $1, $4); }
    | expr '/' { PUSH(@2); } expr { POP; $$ = bin(c, @2, '/', $1, $4); }
    | expr '%' { PUSH(@2); } expr { POP; $$ = bin(c, @2, '%', $1, $4); }
    | expr '@' { PUSH(@2); } expr { POP; $$ = bin(c, @2, '@', $1, $4); }
    | expr '^' { PUSH(@2); } expr { POP; $$ = bin(c, @2, '^', $1, $4); }
    | '-' { PUSH(@1); } expr %prec UMINUS { POP; $$ = ast_new(c, AST_NEG, L(@1)); ast_add_kid(c, $$, $3); }
    | '+' { PUSH(@1); } expr %prec UMINUS { POP; $$ = $3; }
    | postfix
    ;

postfix: primary
       | postfix '[' index_list ']' {
           $$ = $3; $$->loc = L(@2);
           $$->kids[0] = $1;
         }
       ;

index_list: index_item {
              $$ = ast_new(c, AST_INDEX, L(@1));
              ast_add_kid(c, $$, NULL);
              ast_add_kid(c, $$, $1);
            }
          | index_list ',' index_item { $$ = $1; ast_add_kid(c, $$, $3); }
          ;

/* An index, or a slice start:stop:step with any part left out. */
index_item: expr
          | opt_expr ':' opt_expr {
              $$ = ast_new(c, AST_SLICE, L(@2));
              ast_add_kid(c, $$, $1); ast_add_kid(c, $$, $3); ast_add_kid(c, $$, NULL);
            }
          | opt_expr ':' opt_expr ':' expr {
              $$ = ast_new(c, AST_SLICE, L(@2));
              ast_add_kid(c, $$, $1); ast_add_kid(c, $$, $3); ast_add_kid(c, $$, $5);
            }
          ;

opt_expr: %empty { $$ = NULL; }
        | expr
        ;

primary: NUMBER { $$ = num(c, @1, $1); }
       | IDENT { $$ = ast_new(c, AST_NAME, L(@1)); $$->name = $1; }
       | '(' expr ')' { $$ = $2; }
       | '[' expr_list ']' { $$ = $2; $$->loc = L(@1); }
       | IDENT '(' ')' { $$ = ast_new(c, AST_CALL, L(@1)); $$->name = $1; }
       | IDENT '(' args ')' { $$ = $3; $$->loc = L(@1); $$->name = $1; }
       ;

args: arg { $$ = ast_new(c, AST_CALL, L(@1)); ast_add_kid(c, $$, $1); }
    | args ',' arg { $$ = $1; ast_add_kid(c, $$, $3); }
    ;

arg: expr
   | IDENT '=' expr { $$ = ast_new(c, AST_KWARG, L(@1)); $$->name = $1; ast_add_kid(c, $$, $3); }
   ;

expr_list: expr { $$ = ast_new(c, AST_LIST, L(@1)); ast_add_kid(c, $$, $1); }
         | expr_list ',' expr { $$ = $1; ast_add_kid(c, $$, $3); }
         ;

%%
/* ---- syntax errors --------------------------------------------------------- */

/* The offset of the start of line `line` (1-based), or of the last line if
 * the file has fewer; *got is that line's number. */
static size_t line_start(const Ctx *c, int line, int *got) {
  size_t start = 0;
  int l = 1;
  for (size_t i = 0; i + 1 < c->src.len && l < line; i++)
    if (c->src.text[i] == '\n') l++, start = i + 1;
  *got = l;
  return start;
}

/* Where a line's code ends: just after its last character that is neither
 * blank nor part of a comment, on line `line` or, if that line holds no
 * code, on the nearest line above that does. */
static Loc end_of_code(const Ctx *c, int line) {
  const char *text = c->src.text;
  size_t len = c->src.len;
  int l;
  size_t start = line_start(c, line, &l);
  for (; l >= 1; l--) {
    size_t end = start;
    while (end < len && text[end] != '\n' && text[end] != '#')
      end++;
    while (end > start && (text[end - 1] == ' ' || text[end - 1] == '\t' || text[end - 1] == '\r' ||
                           text[end - 1] == '\f' || text[end - 1] == '\v'))
      end--;
    if (end > start || start == 0) return (Loc){l, (int)(end - start) + 1};
    size_t prev = start - 1; /* the start of the line above */
    while (prev > 0 && text[prev - 1] != '\n')
      prev--;
    start = prev;
  }
  return (Loc){1, 1};
}

/* Bison quotes aliases ("\"number\""); users should see: a number. */
static void describe(Buf *b, yysymbol_kind_t k) {
  const char *n = yysymbol_name(k);
  size_t len = strlen(n);
  if (len >= 2 && n[0] == '"') {
    buf_printf(b, "%.*s", (int)len - 2, n + 1);
  } else {
    buf_puts(b, n);
  }
}

/* The name that ends just before `end`, quoted. */
static void name_before(const Ctx *c, Loc end, Buf *b) {
  int l;
  const char *t = c->src.text + line_start(c, end.line, &l);
  int e = end.col - 1, s = e;
  while (s > 0 && (t[s - 1] == '_' || (t[s - 1] >= '0' && t[s - 1] <= '9') ||
                   (t[s - 1] >= 'a' && t[s - 1] <= 'z') || (t[s - 1] >= 'A' && t[s - 1] <= 'Z')))
    s--;
  if (s < e)
    buf_printf(b, "'%.*s'", e - s, t + s);
  else
    buf_puts(b, "the name");
}

static int is_sym(yysymbol_kind_t k, const char *name) { return !strcmp(yysymbol_name(k), name); }

/* What the parser wants next, in the user's terms: "an expression" rather
 * than a list of the tokens that can start one. NULL: list the tokens. */
static const char *wanted(const yysymbol_kind_t *expected, int n, yysymbol_kind_t last) {
  int number = 0, name = 0, paren = 0, bracket = 0;
  for (int i = 0; i < n; i++) {
    number |= expected[i] == YYSYMBOL_NUMBER;
    name |= expected[i] == YYSYMBOL_IDENT;
    paren |= is_sym(expected[i], "'('");
    bracket |= is_sym(expected[i], "'['");
  }
  if (number && name && paren) return "an expression";
  if (number && name) return "a number or a name";
  if (number) return bracket ? "a number or a [list]" : "a number";
  if (name && n == 1 && is_sym(last, "'~'"))
    return "an initialiser (normal(mean, std), uniform(lo, hi), glorot, he or zeros)";
  if (name && n == 1) return "a name";
  return NULL;
}

/* A syntax error says what was found and what was expected. When a line (or
 * the file) ends too early — `loss = w +`, `param w ~`, a bare `output` —
 * it points just after the line's last token and names what is missing
 * after it: "expected an expression after '+'". */
static int yyreport_syntax_error(const yypcontext_t *ctx, Ctx *c, yyscan_t scanner, int *pending) {
  (void)scanner;
  (void)pending;
  if (c->has_error) /* the lexer already said what is wrong */
    return 0;
  yysymbol_kind_t tok = yypcontext_token(ctx);
  yysymbol_kind_t expected[YYNTOKENS];
  int n = yypcontext_expected_tokens(ctx, expected, YYNTOKENS);
  if (n < 0) n = 0;
  /* the symbol shifted last (a token, or a rule's result) */
  const yy_state_t *top = ctx->yyssp;
  yysymbol_kind_t last = YY_ACCESSING_SYMBOL(*top);
  while (!strncmp(yysymbol_name(last), "$@", 2)) /* a mid-rule action: the operator before it */
    last = YY_ACCESSING_SYMBOL(*--top);
  Loc loc = L(*yypcontext_location(ctx));
  int l = 0;
  int semicolon = tok == YYSYMBOL_SEP && c->nesting >= 0 && loc.line >= 1 && loc.col >= 1 &&
                  c->src.text[line_start(c, loc.line, &l) + (size_t)loc.col - 1] == ';';
  int at_end = tok == YYSYMBOL_YYEOF || (tok == YYSYMBOL_SEP && !semicolon);
  if (at_end) loc = end_of_code(c, tok == YYSYMBOL_SEP && c->nesting >= 0 ? loc.line : INT_MAX);
  const char *what = wanted(expected, n, last);

  Buf b = {0};
  int listed = what || (n > 0 && n <= 5);
  if (!(tok == YYSYMBOL_SEP && at_end && listed)) { /* a line that ends early: what is missing */
    buf_puts(&b, "unexpected ");
    if (semicolon)
      buf_puts(&b, "';'");
    else if (tok == YYSYMBOL_SEP && c->nesting < 0)
      buf_puts(&b, "end of file");
    else
      describe(&b, tok);
    if (listed) buf_puts(&b, "; ");
  }
  if (what) {
    buf_printf(&b, "expected %s", what);
  } else if (n > 0 && n <= 5) {
    buf_puts(&b, "expected ");
    for (int i = 0; i < n; i++) {
      if (i) buf_puts(&b, i == n - 1 ? " or " : ", ");
      describe(&b, expected[i]);
    }
  }
  if (at_end && listed && last > YYSYMBOL_YYUNDEF && last < YYNTOKENS && last != YYSYMBOL_SEP &&
      last != YYSYMBOL_NUMBER) { /* the token the line ends with */
    buf_puts(&b, " after ");
    if (last == YYSYMBOL_IDENT)
      name_before(c, loc, &b);
    else
      describe(&b, last);
  }
  diag_record(c, loc, "%s", b.data);
  buf_free(&b);
  return 0;
}

static void bperror(YYLTYPE *loc, Ctx *c, yyscan_t scanner, int *pending, const char *msg) {
  (void)scanner;
  (void)pending;
  /* the operator counter stops an expression long before bison's stack is
     full; this is the last line of defence */
  if (!strcmp(msg, "memory exhausted"))
    diag_record(c, L(*loc), "expression nested too deeply (the limit is %d pending operators)",
                BPC_MAX_PARSE_DEPTH);
  else
    diag_record(c, L(*loc), "%s", msg);
}

/* The scanner's entry points (lexer.l, prefix bp). */
int bplex_init_extra(Ctx *extra, yyscan_t *scanner);
int bplex_destroy(yyscan_t scanner);
void *bp_scan_bytes(const char *bytes, int len, yyscan_t scanner);
void bpset_column(int column, yyscan_t scanner);
void bpset_lineno(int line, yyscan_t scanner);

void parse_program(Ctx *c) {
  yyscan_t scanner;
  if (bplex_init_extra(c, &scanner)) {
    fputs("bpc: out of memory\n", stderr);
    exit(3);
  }
  bp_scan_bytes(c->src.text, (int)c->src.len, scanner);
  bpset_column(1, scanner);
  bpset_lineno(1, scanner);
  int pending = 0;
  int rc = bpparse(c, scanner, &pending);
  bplex_destroy(scanner);
  if (rc != 0 || c->has_error) {
    if (!c->has_error)
      diag_record(c, (Loc){0, 0}, "could not parse the file");
    longjmp(c->on_error, 1);
  }
}
