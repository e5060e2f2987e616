/* parser.y — the .bp grammar. Builds the AST (ast.c); meaning and shapes are
 * checked later, in lower.c. Errors are recorded, never jumped out of, so
 * bison and flex can free their stacks. */
%code requires {
#include "bpc.h"
typedef void *yyscan_t;
typedef struct NumTok { double v; int is_int; } NumTok;
}

%code {
#include <stdlib.h>
#include <string.h>
int bplex(YYSTYPE *lval, YYLTYPE *lloc, yyscan_t scanner);
static void bperror(YYLTYPE *loc, Ctx *c, yyscan_t scanner, const char *msg);
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
static int add_stmt(Ctx *c, Stmt *s) {
  if (c->prog.stmts.len >= BPC_MAX_STATEMENTS) {
    diag_record(c, s->loc, "too many statements (the limit is %d)", BPC_MAX_STATEMENTS);
    return 0;
  }
  vec_push(&c->arena, &c->prog.stmts, s);
  return 1;
}
#define YYMAXDEPTH BPC_MAX_PARSE_DEPTH
}

%define api.pure full
%define api.prefix {bp}
%define parse.error custom
%locations
%parse-param {Ctx *c} {yyscan_t scanner}
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
%token SEP "end of line"
%token LEXERROR "invalid token"

%type <ast> expr postfix primary args index_list init_value init_list signed_num dim
%type <stmt> stmt shape_opt param_decl

%left '+' '-'
%left '*' '/' '@'
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
              else if (!strcmp($3, "zeros")) $$->init = INIT_ZEROS;
              else if (!strcmp($3, "normal") || !strcmp($3, "uniform")) {
                diag_record(c, L(@3), "'%s' needs two arguments, e.g. ~ %s", $3,
                            !strcmp($3, "normal") ? "normal(0, 0.1)" : "uniform(-1, 1)");
                YYABORT;
              } else {
                diag_record(c, L(@3), "unknown initialiser '%s' (use normal, uniform, glorot or zeros)", $3);
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
         | '[' dim ']' {
             $$ = stmt_new(c, ST_PARAM, L(@1));
             Ast *list = ast_new(c, AST_LIST, L(@1));
             ast_add_kid(c, list, $2);
             $$->dims = list->kids; $$->ndims = 1;
           }
         | '[' dim ',' dim ']' {
             $$ = stmt_new(c, ST_PARAM, L(@1));
             Ast *list = ast_new(c, AST_LIST, L(@1));
             ast_add_kid(c, list, $2);
             ast_add_kid(c, list, $4);
             $$->dims = list->kids; $$->ndims = 2;
           }
         | '[' dim ',' dim ',' dim {
             diag_record(c, L(@5), "tensors have at most 2 dimensions");
             YYABORT;
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

expr: expr '+' expr { $$ = bin(c, @2, '+', $1, $3); }
    | expr '-' expr { $$ = bin(c, @2, '-', $1, $3); }
    | expr '*' expr { $$ = bin(c, @2, '*', $1, $3); }
    | expr '/' expr { $$ = bin(c, @2, '/', $1, $3); }
    | expr '@' expr { $$ = bin(c, @2, '@', $1, $3); }
    | expr '^' expr { $$ = bin(c, @2, '^', $1, $3); }
    | '-' expr %prec UMINUS { $$ = ast_new(c, AST_NEG, L(@1)); ast_add_kid(c, $$, $2); }
    | '+' expr %prec UMINUS { $$ = $2; }
    | postfix
    ;

postfix: primary
       | postfix '[' index_list ']' {
           $$ = $3; $$->loc = L(@2);
           $$->kids[0] = $1;
         }
       ;

index_list: expr {
              $$ = ast_new(c, AST_INDEX, L(@1));
              ast_add_kid(c, $$, NULL);
              ast_add_kid(c, $$, $1);
            }
          | index_list ',' expr { $$ = $1; ast_add_kid(c, $$, $3); }
          ;

primary: NUMBER { $$ = num(c, @1, $1); }
       | IDENT { $$ = ast_new(c, AST_NAME, L(@1)); $$->name = $1; }
       | '(' expr ')' { $$ = $2; }
       | IDENT '(' ')' { $$ = ast_new(c, AST_CALL, L(@1)); $$->name = $1; }
       | IDENT '(' args ')' { $$ = $3; $$->loc = L(@1); $$->name = $1; }
       ;

args: expr { $$ = ast_new(c, AST_CALL, L(@1)); ast_add_kid(c, $$, $1); }
    | args ',' expr { $$ = $1; ast_add_kid(c, $$, $3); }
    ;

%%

/* Just after the last visible character: where a missing ')' belongs. */
static Loc end_of_text(Ctx *c) {
  size_t n = c->src.len;
  while (n > 0 && (c->src.text[n - 1] == '\n' || c->src.text[n - 1] == ' ' || c->src.text[n - 1] == '\t' ||
                   c->src.text[n - 1] == '\r'))
    n--;
  Loc loc = {1, 1};
  for (size_t i = 0; i < n; i++) {
    if (c->src.text[i] == '\n')
      loc.line++, loc.col = 1;
    else
      loc.col++;
  }
  return loc;
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

static int yyreport_syntax_error(const yypcontext_t *ctx, Ctx *c, yyscan_t scanner) {
  (void)scanner;
  if (c->has_error) /* the lexer already said what is wrong */
    return 0;
  Buf b = {0};
  yysymbol_kind_t tok = yypcontext_token(ctx);
  buf_puts(&b, "unexpected ");
  describe(&b, tok);
  yysymbol_kind_t expected[6];
  int n = yypcontext_expected_tokens(ctx, expected, 6);
  int wants_expr = 0;
  for (int i = 0; i < n; i++)
    if (expected[i] == YYSYMBOL_NUMBER || expected[i] == YYSYMBOL_IDENT)
      wants_expr = 1;
  if (wants_expr) {
    buf_puts(&b, "; expected an expression");
  } else if (n > 0 && n <= 5) {
    buf_puts(&b, "; expected ");
    for (int i = 0; i < n; i++) {
      if (i)
        buf_puts(&b, i == n - 1 ? " or " : ", ");
      describe(&b, expected[i]);
    }
  }
  Loc loc = L(*yypcontext_location(ctx));
  if (tok == YYSYMBOL_YYEOF || (tok == YYSYMBOL_SEP && c->nesting < 0))
    loc = end_of_text(c);
  diag_record(c, loc, "%s", b.data);
  buf_free(&b);
  return 0;
}

static void bperror(YYLTYPE *loc, Ctx *c, yyscan_t scanner, const char *msg) {
  (void)scanner;
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
  int rc = bpparse(c, scanner);
  bplex_destroy(scanner);
  if (rc != 0 || c->has_error) {
    if (!c->has_error)
      diag_record(c, (Loc){0, 0}, "could not parse the file");
    longjmp(c->on_error, 1);
  }
}
