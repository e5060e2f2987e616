"""mutate.py: ill-typed variants of well-typed programs (tests/difftest/README.md).

mutate(case, rng) changes one statement of a generated program so that the
program must be refused, and says which line bpc's error must name and
what its message must speak of. Every statement is printed on a line of its
own, and the program before the mutation compiles, so the first error is in
the mutated statement."""

from bpmodel import Assign, Expr, Input, Param, numel, ref

# kind -> a regular expression the message must match (case-insensitive)
MESSAGES = {
    "undefined": r"undefined name",
    "use-before-def": r"undefined name",
    "shape-elementwise": r"cannot compute .* the shapes do not match",
    "shape-max2": r"cannot compute .* the shapes do not match",
    "matmul-inner": r"cannot compute .*inner dimensions",
    "dot-length": r"cannot compute dot|lengths .* differ",
    "loss-not-scalar": r"loss must be a scalar",
    "index-range": r"index -?\d+ is out of range",
    "index-too-many": r"subscripts? given",
    "index-scalar": r"cannot index a scalar",
    "index-nonint": r"must be an integer",
    "index-nonconst": r"must be a constant integer",
    "unknown-function": r"unknown function",
    "arity": r"takes \d+|transpose\(x, \[",
    "axis-range": r"axis -?\d+ is out of range",
    "transpose-vector": r"transpose\(\) needs a matrix",
    "softmax-scalar": r"needs a vector or a matrix",
    "exponent-nonconst": r"exponent of '\^' must be a constant",
    "redefine": r"already defined",
    "second-loss": r"loss is already defined",
    "init-count": r"initialiser for",
    "ce-shapes": r"needs two arguments of the same shape",
    "syntax": r"unexpected",
    "bad-char": r"unexpected character",
    "unknown-dim": r"unknown dimension",
    "scalar-matmul": r"matrix products need vectors or matrices",
    "not-a-function": r"is a function",
    "underscore-name": r"must not start with '_'",
    "dim-nonpositive": r"must be positive",
}


def raw(template, *args, shape=()):
    e = Expr("raw", shape, name=template)
    e.args = list(args)
    return e


def shapes_broadcast(a, b):
    """numpy's rule: aligned at the right, each pair equal or one of them 1."""
    for x, y in zip(reversed(a), reversed(b)):
        if x != y and x != 1 and y != 1:
            return False
    return True


class Mutation:
    def __init__(self, kind, prog, stmt_index):
        self.kind, self.prog, self.stmt_index = kind, prog, stmt_index
        self.message = MESSAGES[kind]


def _defined_before(prog, i):
    """name -> shape of every param, input and value defined before statement i."""
    out = {}
    for s in prog.stmts[:i]:
        if isinstance(s, (Param, Input)):
            out[s.name] = s.shape
        elif isinstance(s, Assign):
            out[s.name] = s.expr.shape
    return out


def _nodes(expr):
    """(parent, position, node) of every node, the root with parent None."""
    out = [(None, None, expr)]
    for e in expr.walk():
        for k, a in enumerate(e.args):
            out.append((e, k, a))
    return out


def _replace(stmt, parent, pos, new):
    if parent is None:
        stmt.expr = new
    else:
        parent.args[pos] = new


def _new_param_first(prog, name, shape):
    """Declares a parameter at the top (so it is known everywhere) and
    returns the statement index shift (1)."""
    vals = [0.5] * max(1, numel(shape))
    prog.stmts.insert(0, Param(name, shape, vals, "list" if shape else "scalar"))
    return 1


def _declared_dim(prog, rng):
    """A param or input with a shape, (its statement index, it), its dims ready to be
    changed; None if there is none."""
    decls = [j for j, s in enumerate(prog.stmts) if isinstance(s, (Param, Input)) and s.shape]
    if not decls:
        return None
    i = rng.choice(decls)
    d = prog.stmts[i]
    d.dimnames = list(d.dimnames)
    return i, d


def mutate(case, rng):
    """A Mutation of case.prog, or None if the chosen kind does not apply."""
    prog = case.prog.copy()
    prog.joins = set()
    prog.comments = {}
    kinds = list(MESSAGES)
    kind = rng.choice(kinds)
    assigns = [i for i, s in enumerate(prog.stmts) if isinstance(s, Assign)]
    values = [i for i in assigns if prog.stmts[i].kind != "loss"]
    loss_i = [i for i in assigns if prog.stmts[i].kind == "loss"][0]
    i = rng.choice(assigns)
    st = prog.stmts[i]
    nodes = _nodes(st.expr)
    parent, pos, node = rng.choice(nodes)
    known = _defined_before(prog, i)
    if kind == "undefined":
        refs = [(p, k, n) for p, k, n in nodes if n.kind == "ref"]
        if not refs:
            return None
        p, k, n = rng.choice(refs)
        _replace(st, p, k, ref(n.name + "_undef", n.shape))
    elif kind == "use-before-def":
        later = [j for j in values if j > i]
        if not later:
            return None
        j = rng.choice(later)
        _replace(st, parent, pos, ref(prog.stmts[j].name, prog.stmts[j].expr.shape))
        if node.shape != prog.stmts[j].expr.shape:
            return None
    elif kind in ("shape-elementwise", "shape-max2"):
        if node.shape == ():
            return None  # a scalar combines with anything
        bad = [n for n, s in known.items() if not shapes_broadcast(s, node.shape)]
        if bad:
            other = ref(rng.choice(bad), ())
        else:
            # a shape that does not broadcast: one more than the node's last
            # dimension that is not 1, ones after it (any shape broadcasts
            # with one made of 1s)
            ks = [k for k, d in enumerate(node.shape) if d != 1]
            if not ks:
                return None
            k = ks[-1]
            shape = (node.shape[k] + 1,) + (1,) * (len(node.shape) - 1 - k)
            i += _new_param_first(prog, "bad_p", shape)
            other = ref("bad_p", shape)
        args = [node, other] if rng.random() < 0.5 else [other, node]
        if kind == "shape-max2":
            _replace(st, parent, pos, raw("max({0}, {1})", *args))
        else:
            _replace(st, parent, pos, raw("(({0}) " + rng.choice("+-*/") + " ({1}))", *args))
    elif kind == "matmul-inner":
        if len(node.shape) == 0:
            return None
        inner = node.shape[-1]
        bad = [n for n, s in known.items() if len(s) >= 1 and s[0] != inner]
        if bad:
            other = ref(rng.choice(bad), ())
        else:
            i += _new_param_first(prog, "bad_m", (inner + 1, 2))
            other = ref("bad_m", ())
        _replace(st, parent, pos, raw("(({0}) @ ({1}))", node, other))
    elif kind == "dot-length":
        vecs = [(n, s) for n, s in known.items() if len(s) == 1]
        pairs = [(a, b) for a, sa in vecs for b, sb in vecs if sa != sb]
        if pairs:
            a, b = rng.choice(pairs)
        else:
            i += _new_param_first(prog, "bad_u", (2,))
            prog.stmts.insert(0, Param("bad_v", (3,), [1, 2, 3]))
            i += 1
            a, b = "bad_u", "bad_v"
        _replace(st, parent, pos, raw("(dot({0}, {1}) + ({2}))", ref(a, ()), ref(b, ()), node))
    elif kind == "loss-not-scalar":
        nonscalar = [n for n, s in _defined_before(prog, loss_i).items() if s != ()]
        if not nonscalar:
            return None
        i = loss_i
        prog.stmts[i].expr = raw("({0}) + " + rng.choice(nonscalar), prog.stmts[i].expr)
    elif kind == "index-range":
        if not node.shape:
            return None
        k = rng.randrange(len(node.shape))
        idx = [0] * len(node.shape)
        idx[k] = node.shape[k] + rng.choice([0, 1, 5])
        if rng.random() < 0.3:
            idx[k] = -node.shape[k] - 1  # negative indices count from the end: one too far
        _replace(st, parent, pos, raw("({0})[" + ", ".join(map(str, idx)) + "]", node))
    elif kind == "index-too-many":
        if len(node.shape) != 1:
            return None
        _replace(st, parent, pos, raw("({0})[0, 0]", node))
    elif kind == "index-scalar":
        if node.shape != ():
            return None
        _replace(st, parent, pos, raw("({0})[0]", node))
    elif kind == "index-nonint":
        if not node.shape:
            return None
        _replace(st, parent, pos, raw("({0})[0.5]", node))
    elif kind == "index-nonconst":
        if not node.shape:
            return None
        # a parameter or input: a named value may fold to a constant (q[0] - q[0]), a fine index
        leaves = {s.name for s in prog.stmts[:i] if isinstance(s, (Param, Input))}
        names = [n for n, s in known.items() if s == () and n in leaves]
        if not names:
            return None
        _replace(st, parent, pos, raw("({0})[" + rng.choice(names) + "]", node))
    elif kind == "unknown-function":
        _replace(st, parent, pos, raw(rng.choice(["foo({0})", "sofplus({0})", "expp({0})", "Sum({0})"]), node))
    elif kind == "arity":
        t = rng.choice(["exp({0}, {0})", "dot({0})", "transpose({0}, {0})", "softmax()", "sum({0}, 0, 1)",
                        "softmax_cross_entropy({0})", "max({0}, {0}, {0})"])
        _replace(st, parent, pos, raw(t, node))
    elif kind == "axis-range":
        if not node.shape:
            return None
        ax = len(node.shape) + rng.choice([0, 1])
        if rng.random() < 0.3:
            ax = -len(node.shape) - 1  # negative axes count from the end: one too far
        _replace(st, parent, pos, raw(rng.choice(["sum", "mean"]) + "({0}, " + str(ax) + ")", node))
    elif kind == "transpose-vector":
        if len(node.shape) == 2:
            return None
        _replace(st, parent, pos, raw("transpose({0})", node))
    elif kind == "softmax-scalar":
        if node.shape != ():
            return None
        _replace(st, parent, pos, raw(rng.choice(["softmax", "log_softmax", "logsumexp"]) + "({0})", node))
    elif kind == "exponent-nonconst":
        # a parameter or input: a named value may be a constant (k = 2), which is a fine exponent
        leaves = {s.name for s in prog.stmts[:i] if isinstance(s, (Param, Input))}
        names = [n for n, s in known.items() if s == () and n in leaves]
        if not names:
            return None
        _replace(st, parent, pos, raw("(({0}) ^ " + rng.choice(names) + ")", node))
    elif kind == "redefine":
        if st.kind == "loss" or not known:
            return None
        st.name = rng.choice(sorted(known))
    elif kind == "second-loss":
        prog.stmts.append(Assign("loss", raw("sum({0})", ref(st.name, ())), "value"))
        i = len(prog.stmts) - 1
    elif kind == "init-count":
        ps = [j for j, s in enumerate(prog.stmts) if isinstance(s, Param) and s.shape and s.style == "list"]
        if not ps:
            return None
        i = rng.choice(ps)
        p = prog.stmts[i]
        p.values = p.values[:-1] if rng.random() < 0.5 and len(p.values) > 1 else p.values + [1.0]
    elif kind == "ce-shapes":
        if not node.shape:
            return None
        bad = [n for n, s in known.items() if s != node.shape]
        if not bad:
            return None
        fn = rng.choice(["softmax_cross_entropy", "cross_entropy"])
        _replace(st, parent, pos, raw("(" + fn + "({0}, " + rng.choice(bad) + ") + {0})", node))
    elif kind == "syntax":
        _replace(st, parent, pos, raw(rng.choice(["({0} + * {0})", "({0} +)", "{0} = {0}",
                                                  "({0}, {0})", "({0} ^^ 2)"]), node))
    elif kind == "bad-char":
        _replace(st, parent, pos, raw(rng.choice(["({0} $ 1)", "({0} ! 2)", "({0} ? 2)", "({0} & {0})"]), node))
    elif kind == "unknown-dim":
        picked = _declared_dim(prog, rng)
        if not picked:
            return None
        i, d = picked
        d.dimnames[rng.randrange(len(d.shape))] = "UNDECLARED"
    elif kind == "scalar-matmul":
        if node.shape != ():
            return None
        vecs = [n for n, s in known.items() if s]
        if not vecs:
            return None
        args = "({0} @ " + rng.choice(vecs) + ")" if rng.random() < 0.5 else "(" + rng.choice(vecs) + " @ {0})"
        _replace(st, parent, pos, raw("sum(" + args + ")", node))
    elif kind == "not-a-function":
        _replace(st, parent, pos, raw("({0} + " + rng.choice(["exp", "sum", "softmax", "relu"]) + ")", node))
    elif kind == "underscore-name":
        if st.kind == "loss":
            return None
        st.name = "_" + st.name
    elif kind == "dim-nonpositive":
        picked = _declared_dim(prog, rng)
        if not picked:
            return None
        i, d = picked
        d.dimnames[rng.randrange(len(d.shape))] = rng.choice(["0", "-2"])
    return Mutation(kind, prog, i)
