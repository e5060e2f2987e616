"""minimize.py: shrinks a disagreeing program to a small reproducer
(tests/difftest/README.md).

Greedy: each step tries candidates (a smaller loss, a statement fewer, a
subexpression replaced by one of its children or by a parameter holding its
value, fewer examples, inputs made parameters, rounder values, plain names)
and keeps the first one that still fails the same way in the same form and
still obeys the generator's rules (no kinks, finite values). The result is
confirmed against mpmath."""

import time

import difftest
from bpmodel import Assign, Dim, Expr, Input, Param, num, numel, ref, render
from gen import annotate


def size(prog, examples):
    n = 0
    for s in prog.stmts:
        n += 1
        if isinstance(s, Assign):
            n += sum(1 for _ in s.expr.walk())
        elif isinstance(s, Param):
            n += 0.05 * len(s.values)
    return n + 0.5 * len(examples)


def preorder(expr):
    """(parent, position, node) in pre-order, the root with parent None."""
    out = []

    def go(p, k, e):
        out.append((p, k, e))
        for i, a in enumerate(e.args):
            go(e, i, a)

    go(None, None, expr)
    return out


def referenced(prog):
    names = set()
    for s in prog.stmts:
        if isinstance(s, Assign):
            for e in s.expr.walk():
                if e.kind == "ref":
                    names.add(e.name)
        if isinstance(s, (Param, Input)):
            names.update(n for n in s.dimnames if n)
    return names


def fresh_name(prog, base):
    taken = {s.name for s in prog.stmts}
    k = 1
    while "%s%d" % (base, k) in taken:
        k += 1
    return "%s%d" % (base, k)


def input_columns(prog):
    """name -> (first column, count) in an example's flat values."""
    out, k = {}, 0
    for s in prog.inputs():
        out[s.name] = (k, numel(s.shape))
        k += numel(s.shape)
    return out


def candidates(prog, examples):
    """Smaller variants, most promising first: (prog, examples) pairs."""
    stmts = prog.stmts
    loss_i = [i for i, s in enumerate(stmts) if isinstance(s, Assign) and s.kind == "loss"][0]
    # 0. every output a plain value, then everything unused gone at once
    p = prog.copy()
    for s in p.stmts:
        if isinstance(s, Assign) and s.kind == "output":
            s.kind = "value"
    yield _drop_unused(p, examples)
    # 1. a value as the whole loss, the earliest first
    for i in range(loss_i):
        s = stmts[i]
        if isinstance(s, Assign):
            p = prog.copy()
            p.stmts = p.stmts[:i + 1] + [Assign("loss", _sum_of(ref(s.name, s.expr.shape)), "loss")]
            p.joins = {j for j in p.joins if j <= i}
            yield p, examples
    # 2. a statement fewer
    used = referenced(prog)
    for i, s in enumerate(stmts):
        if isinstance(s, Assign) and s.kind == "output":
            p = prog.copy()
            p.stmts[i].kind = "value"
            yield p, examples
        if i != loss_i and s.name not in used:
            p = prog.copy()
            del p.stmts[i]
            p.joins = {j - (j > i) for j in p.joins if j != i}
            p.comments = {}
            if isinstance(s, Input):
                c, n = input_columns(prog)[s.name]
                yield p, [ex[:c] + ex[c + n:] for ex in examples]
            else:
                yield p, examples
    # 3. fewer examples, inputs as parameters
    if len(examples) > 1:
        yield prog, examples[:-1]
    cols = input_columns(prog)
    for i, s in enumerate(stmts):
        if isinstance(s, Input):
            c, n = cols[s.name]
            p = prog.copy()
            p.stmts[i] = Param(s.name, s.shape, examples[0][c:c + n], "list" if s.shape else "scalar",
                               list(s.dimnames))
            yield p, [ex[:c] + ex[c + n:] for ex in examples]
    # 4. smaller expressions
    for i, s in enumerate(stmts):
        if not isinstance(s, Assign):
            continue
        nodes = preorder(s.expr)
        for k, (parent, pos, node) in enumerate(nodes):
            if node.kind in ("ref", "num"):
                continue
            for a in node.args:
                if a.shape == node.shape:
                    p = prog.copy()
                    _put(p.stmts[i], preorder(p.stmts[i].expr)[k], a.copy())
                    yield p, examples
            if node.vals and not node.dep:
                p = prog.copy()
                name = fresh_name(p, "c")
                vals = [float(v) for v in node.vals[0].reshape(-1)]
                p.stmts.insert(0, Param(name, node.shape, vals, "list" if node.shape else "scalar"))
                _put(p.stmts[i + 1], preorder(p.stmts[i + 1].expr)[k], ref(name, node.shape))
                p.joins = {j + 1 for j in p.joins}
                p.comments = {}
                yield p, examples
            if node.shape == ():
                p = prog.copy()
                _put(p.stmts[i], preorder(p.stmts[i].expr)[k], num(1.0))
                yield p, examples


def _drop_unused(prog, examples):
    """prog without the statements nothing uses (repeatedly), and examples
    without the dropped inputs' columns."""
    p = prog.copy()
    cols = input_columns(p)
    while True:
        used = referenced(p)
        keep = [s for s in p.stmts if isinstance(s, Assign) and s.kind in ("loss", "output") or s.name in used]
        if len(keep) == len(p.stmts):
            break
        p.stmts = keep
    p.joins, p.comments = set(), {}
    names = {s.name for s in p.inputs()}
    ex = []
    for e in examples:
        row = []
        for name, (c, n) in cols.items():
            if name in names:
                row.extend(e[c:c + n])
        ex.append(row)
    return p, ex


def _sum_of(e):
    if e.shape == ():
        return e
    s = Expr("call", (), fn="sum")
    s.args = [e]
    return s


def _put(stmt, where, new):
    parent, pos, _ = where
    if parent is None:
        stmt.expr = new
    else:
        parent.args[pos] = new


def cosmetic(prog, examples):
    """Same size, easier to read: round values, plain layout and names."""
    for digits in (0, 1):
        p = prog.copy()
        changed = False
        for s in p.stmts:
            if isinstance(s, Param):
                new = [float(round(v, digits)) for v in s.values]
                if digits == 0:
                    new = [v if v != 0 else 1.0 for v in new]
                changed |= new != s.values
                s.values = new
        if changed:
            yield p, [[float(round(v, digits)) for v in ex] for ex in examples]
            yield p, examples
    p = prog.copy()
    p.joins, p.comments = set(), {}
    for s in p.stmts:
        if isinstance(s, Assign):
            for e in s.expr.walk():
                e.paren, e.style = False, 0
        if isinstance(s, (Param, Input)):
            s.dimnames = [None] * len(s.shape)
    p.stmts = [s for s in p.stmts if not isinstance(s, Dim) or s.name in referenced(p)]
    yield p, examples


def minimise(env, case, outcome, budget=60.0):
    """(program, examples, outcome) of a smaller program failing like case
    did (the outcome with mpmath's numbers), or the original."""
    want = outcome.signature()
    if any(k in ("compile_error",) for _, k in want):
        check_kinds = {"compile_error"}
    else:
        check_kinds = None
    cc, jit_cc = outcome.cc, outcome.jit_cc
    t_end = time.time() + budget

    def fails(prog, examples):
        if not examples or not prog.params():
            return None
        if not annotate(prog, examples):
            return None
        try:
            o = difftest.check_program(env, prog, examples, cc=cc, jit_cc=jit_cc, recheck=False, timeout=2)
        except Exception:  # a candidate the reference cannot evaluate
            return None
        got = o.signature()
        if check_kinds:
            return o if any(k in check_kinds for _, k in got) else None
        return o if got & want else None

    prog, examples = case.prog.copy(), [list(ex) for ex in case.examples]
    if not annotate(prog, examples):
        return case.prog, case.examples, outcome
    best = size(prog, examples)
    progress = True
    while progress and time.time() < t_end:
        progress = False
        for p, ex in candidates(prog, examples):
            if time.time() > t_end:
                break
            s = size(p, ex)
            if s >= best:
                continue
            if fails(p, ex):
                prog, examples, best, progress = p, [list(e) for e in ex], s, True
                break
    for p, ex in cosmetic(prog, examples):
        if time.time() > t_end + 10:
            break
        if fails(p, ex):
            prog, examples = p, ex
    annotate(prog, examples)
    final = difftest.check_program(env, prog, examples, cc=cc, jit_cc=jit_cc, recheck=True)
    if not (final.signature() & want):
        return case.prog, case.examples, outcome
    return prog, examples, final
