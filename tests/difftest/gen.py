"""gen.py: a seeded generator of well-typed .bp programs (tests/difftest/README.md).

Programs are built bottom-up with the values of every subexpression known
(PyTorch, float64, per example), so each construct is only used where it is
smooth and finite: log, sqrt and fractional powers see values above 0.05,
divisors are away from zero, exp sees moderate arguments, and relu, abs,
max, min (of two values or of all elements) are kept at least ~0.02 away
from their kinks and ties. A candidate that breaks a rule is thrown away
and another one built, so every generated program is usable as it is.

Generator(seed).program() returns a Case: the Program, its examples' input
values, and whether the generator kept the model batchable (then the JIT
must have fixed-batch functions for it)."""

import math
import random

import torch

from bpmodel import (Assign, Dim, Expr, Input, Param, Program, TorchOps, UNARY, apply, num, numel, ref, split_inputs)

PARAM_NAMES = ["W", "b", "w", "V", "U", "c", "theta", "alpha", "A", "B", "k", "bias", "gain", "P", "q"]
INPUT_NAMES = ["x", "y", "t", "phi", "u", "target", "feat", "z_in", "label"]
VALUE_NAMES = ["h", "z", "a", "r", "g", "m", "d", "p", "o", "s2", "hid", "act", "pre", "logits", "e2"]
OUTPUT_NAMES = ["out", "pred", "score", "prob", "yhat"]
DIM_NAMES = ["N", "M", "K", "D", "H", "C"]
# names the generated C must rename or keep apart from its own (docs/c-api.md, "Names")
TRICKY_NAMES = ["int", "double", "float", "NAN", "M_PI", "INFINITY", "s", "i", "j", "n", "grad", "ws", "row", "at",
                "sc", "class", "typeof", "restrict", "inline", "m_forward", "M_NUM_PARAMS", "BP_REAL_DEFINED",
                "bpk_x", "size_t", "uint64_t", "NULL", "main", "params", "inputs", "outputs", "loss_sum", "scale",
                "acc", "e", "t3", "sc0", "m_train_batch", "bp_real", "static", "x_", "errno", "sqrtf", "HUGE_VAL"]

MARGIN = 0.02  # distance kept from kinks and ties (absolute, plus 1e-4 relative)
LIMIT = 1e3  # largest magnitude of any value


class Case:
    def __init__(self, prog, examples, batchable, seed):
        self.prog, self.examples, self.batchable, self.seed = prog, examples, batchable, seed


class Reject(Exception):
    pass


def tmin(t):
    return float(t.min()) if t.numel() else math.inf


def tmax(t):
    return float(t.max()) if t.numel() else -math.inf


def check_node(e):
    """Smoothness and domain rules on the arguments' values."""
    a = e.args

    def far(x):  # every element at least MARGIN from zero
        for v in x:
            if v.numel() and float((v.abs() - (MARGIN + 1e-4 * v.abs())).min()) <= 0:
                raise Reject()

    def pos(x, lo=0.05):
        for v in x:
            if tmin(v) <= lo:
                raise Reject()

    if e.kind == "call":
        f = e.fn
        if f in ("log", "sqrt"):
            pos(a[0].vals)
        elif f == "exp":
            for v in a[0].vals:
                if tmax(v) > 6:
                    raise Reject()
        elif f in ("relu", "abs"):
            far(a[0].vals)
        elif f in ("max", "min") and len(a) == 2:
            far([x - y for x, y in zip(a[0].vals, a[1].vals)])
        elif f in ("max", "min"):
            for v in a[0].vals:
                s = torch.sort(v.reshape(-1)).values
                if s.numel() > 1:
                    gap = float(s[-1] - s[-2]) if f == "max" else float(s[1] - s[0])
                    if gap <= MARGIN + 1e-4 * float(s.abs().max()):
                        raise Reject()
        elif f == "cross_entropy":
            pos(a[0].vals, 0.01)
    elif e.kind == "pow":
        p = e.value
        if p != int(p):
            pos(a[0].vals)
        elif p < 0:
            far(a[0].vals)
            for v in a[0].vals:
                if float(v.abs().min()) < 0.2:
                    raise Reject()
    elif e.kind == "bin" and e.op == "/":
        for v in a[1].vals:
            if float(v.abs().min()) < 0.2:
                raise Reject()


def annotate(prog, examples):
    """Evaluates every node of prog at every example (float64), keeping the
    values on the nodes, and applies the generator's rules to each: False if
    a value is too large or a construct is near a kink, off its domain or
    not finite (then the program says nothing about bpc)."""
    ops = TorchOps(torch.float64)
    envs = []
    for ex in examples:
        env = {}
        ins = split_inputs(prog, ex)
        for s in prog.stmts:
            if isinstance(s, Dim):
                env[s.name] = ops.const(float(s.value))
            elif isinstance(s, Param):
                env[s.name] = ops.tensor(s.values, s.shape)
            elif isinstance(s, Input):
                env[s.name] = ops.tensor(ins[s.name], s.shape)
            else:
                env[s.name] = _eval_keep(s.expr, env, ops, len(envs), len(examples))
        envs.append(env)
    try:
        for s in prog.stmts:
            if isinstance(s, Assign):
                for e in s.expr.walk():
                    if e.kind != "ref":
                        check_node(e)
                    for v in e.vals:
                        if not torch.isfinite(v).all() or (v.numel() and float(v.abs().max()) > 10 * LIMIT):
                            raise Reject()
    except Reject:
        return False
    return True


def _eval_keep(e, env, ops, k, n):
    if e.kind == "ref":
        v = env[e.name]
    else:
        v = apply(e, [_eval_keep(a, env, ops, k, n) for a in e.args], ops)
    if e.vals is None or len(e.vals) != n:
        e.vals = [None] * n
    e.vals[k] = v
    return v


class Generator:
    def __init__(self, seed, batch_mode=None):
        self.seed = seed
        self.r = random.Random(seed)
        r = self.r
        self.ops = TorchOps(torch.float64)
        self.batch_mode = r.random() < 0.5 if batch_mode is None else batch_mode
        self.nex = r.choice([2, 3, 3, 4, 5, 8])
        pool = [1, 2, 2, 3, 3, 3, 4, 4, 5]
        self.sizes = sorted(set(r.sample(pool, r.choice([2, 3]))))
        if len(self.sizes) == 1:
            self.sizes.append(self.sizes[0] + 1)
        if r.random() < 0.25:  # past the kernels' unrolled and vectorised widths
            self.sizes = sorted(set(self.sizes[:-1] + [r.choice([6, 7, 8, 9, 12, 16, 17, 33])]))
        self.stmts = []
        self.env = {}  # name -> (shape, dep, per example tensors)
        self.kind = {}  # name -> param, input, value, dim
        self.uses = {}
        self.names = set()
        self.dims = {}  # value -> dim name
        self.input_order = []
        self.tricky = r.random() < 0.3

    # ---- names, declarations ----------------------------------------------------

    def fresh(self, pool):
        r = self.r
        for _ in range(50):
            if self.tricky and r.random() < 0.25:
                n = r.choice(TRICKY_NAMES)
            else:
                n = r.choice(pool) + (str(r.randint(1, 9)) if r.random() < 0.5 else "")
            if n not in self.names and n != "loss":
                self.names.add(n)
                return n
        n = "v%d" % len(self.names)
        self.names.add(n)
        return n

    def dimnames(self, shape):
        return [self.dims.get(d) if self.r.random() < 0.7 else None for d in shape]

    def rand_value(self):
        r = self.r
        k = r.random()
        if k < 0.15:
            return float(r.randint(-3, 3))
        if k < 0.3:
            return r.choice([0.5, -0.5, 0.25, 1.5, -1.25, 0.1, -0.75, 2.5])
        return round(r.uniform(-2, 2), r.choice([1, 2, 3]))

    def new_param(self, shape):
        r = self.r
        name = self.fresh(PARAM_NAMES)
        n = numel(shape)
        style = "list"
        if not shape:
            style = "scalar"
            vals = [self.rand_value()]
        elif r.random() < 0.08 and n > 1:
            style = "fill"  # every element the same: ties everywhere, which the checks must keep away from
            vals = [self.rand_value()] * n
        else:
            vals = [self.rand_value() for _ in range(n)]
            if len(shape) == 2 and r.random() < 0.6:
                style = "nested"
        if style == "fill" and vals[0] == 0:
            vals = [0.5] * n
        numfmt = r.choice([0, 0, 0, 0, 0, 0, 1, 2, 3])
        self.stmts.append(Param(name, shape, vals, style, self.dimnames(shape), numfmt))
        t = torch.tensor(vals, dtype=torch.float64).reshape(shape)
        self.env[name] = (tuple(shape), False, [t] * self.nex)
        self.kind[name] = "param"
        return name

    def new_input(self, shape, positive=False):
        r = self.r
        name = self.fresh(INPUT_NAMES)
        self.stmts.append(Input(name, shape, self.dimnames(shape)))
        vals = []
        for e in range(self.nex):
            if positive:
                v = [r.uniform(0.1, 1.5) for _ in range(numel(shape))]
            else:
                v = [r.uniform(-2, 2) for _ in range(numel(shape))]
            vals.append(v)
        self.input_order.append((name, vals))
        ts = [torch.tensor(v, dtype=torch.float64).reshape(shape) for v in vals]
        self.env[name] = (tuple(shape), True, ts)
        self.kind[name] = "input"
        return name

    def shapes(self):
        s = self.sizes
        out = [()]
        for a in s:
            out.append((a,))
        for a in s:
            for b in s:
                out.append((a, b))
        return out

    def pick_shape(self, allow_matrix=True):
        r = self.r
        if r.random() < 0.5 and self.env:
            cands = [v[0] for k, v in self.env.items() if self.kind[k] != "dim"]
            cands = [c for c in cands if allow_matrix or len(c) < 2]
            if cands:
                return r.choice(cands)
        cands = [s for s in self.shapes() if allow_matrix or len(s) < 2]
        return r.choice(cands)

    # ---- nodes --------------------------------------------------------------------

    def mk(self, kind, shape, args, **kw):
        """A node with its values, or Reject when a rule is broken."""
        e = Expr(kind, shape, **kw)
        e.args = args
        e.dep = any(a.dep for a in args)
        if self.batch_mode and e.dep:
            if len(shape) == 2 or kind == "index" or (kind == "call" and e.fn in ("max", "min") and len(args) == 1):
                raise Reject()
            if kind == "bin" and e.op == "@" and all(a.dep for a in args) and \
                    not (len(args[0].shape) == 1 and len(args[1].shape) == 1):
                raise Reject()
        check_node(e)
        vals = []
        for k in range(self.nex):
            v = apply(e, [a.vals[k] for a in args], self.ops)
            if tuple(v.shape) != tuple(shape):
                raise AssertionError("shape of %s %s %s: %s, not %s" % (kind, e.op, e.fn, tuple(v.shape), shape))
            if not torch.isfinite(v).all() or (v.numel() and float(v.abs().max()) > LIMIT):
                raise Reject()
            vals.append(v)
        e.vals = vals
        e.style = self.r.randint(0, 5)
        e.paren = self.r.random() < 0.04
        return e

    def leafref(self, name):
        shape, dep, vals = self.env[name]
        e = ref(name, shape)
        e.dep, e.vals = dep, vals
        self.uses[name] = self.uses.get(name, 0) + 1
        return e

    def constant(self):
        r = self.r
        if self.dims and r.random() < 0.2:
            v, n = r.choice(sorted(self.dims.items()))
            e = ref(n, ())
            e.vals = [torch.tensor(float(v), dtype=torch.float64)] * self.nex
            return e
        v = r.choice([0.5, 2, 3, -1, 0.25, 1.5, 1e-3, 0.1, 10, 4, -0.5, 1, 1e-05, 2.5e-3, 0.75])
        e = num(v)
        e.style = r.randint(0, 5)
        e.vals = [torch.tensor(float(v), dtype=torch.float64)] * self.nex
        return e

    # ---- building -----------------------------------------------------------------

    def build(self, shape, depth):
        shape = tuple(shape)
        for _ in range(8):
            try:
                if depth <= 0 or self.r.random() < 0.15:
                    return self.leaf(shape)
                return self.compound(shape, depth)
            except Reject:
                continue
        return self.leaf(shape, simple=True)

    def leaf(self, shape, simple=False):
        r = self.r
        names = [n for n, v in self.env.items() if v[0] == shape and self.kind[n] != "dim"]
        if names and (simple or r.random() < 0.75):
            unused = [n for n in names if self.kind[n] == "input" and not self.uses.get(n)]
            vals = [n for n in names if self.kind[n] == "value"]
            ins = [n for n in names if self.kind[n] == "input"]
            k = r.random()
            if unused and k < 0.8:
                return self.leafref(r.choice(unused))
            if vals and k < 0.5:
                return self.leafref(r.choice(vals[-4:]))
            if ins and k < 0.7:
                return self.leafref(r.choice(ins))
            return self.leafref(r.choice(names))
        if not simple:
            if shape == () and r.random() < 0.4:
                return self.constant()
            try:
                if shape == () and r.random() < 0.6:
                    src = [n for n, v in self.env.items() if len(v[0]) >= 1 and self.kind[n] != "dim" and
                           not (self.batch_mode and v[1])]
                    if src:
                        x = self.leafref(r.choice(src))
                        idx = tuple(r.randrange(d) for d in x.shape)
                        if len(idx) == 2 and r.random() < 0.3:  # M[i][j]
                            row = self.mk("index", (x.shape[1],), [x], idx=idx[:1])
                            return self.mk("index", (), [row], idx=idx[1:])
                        return self.mk("index", (), [x], idx=idx)
                if len(shape) == 1 and r.random() < 0.5:
                    src = [n for n, v in self.env.items() if len(v[0]) == 2 and v[0][1] == shape[0] and
                           not (self.batch_mode and v[1])]
                    if src:
                        x = self.leafref(r.choice(src))
                        return self.mk("index", shape, [x], idx=(r.randrange(x.shape[0]),))
            except Reject:
                pass
        if shape == () and simple and r.random() < 0.5:
            return self.constant()
        return self.leafref(self.new_param(shape))

    def positive(self, shape, depth):
        """An expression whose every element is above 0.05."""
        r = self.r
        e = self.build(shape, depth)
        if all(tmin(v) > 0.1 for v in e.vals) and r.random() < 0.7:
            return e
        k = r.randrange(6)
        if k == 0:
            return self.call("softplus", shape, [e])
        if k == 1:
            return self.call("exp", shape, [self.call("tanh", shape, [e])])
        if k == 2:
            return self.mk("bin", shape, [self.mk("bin", shape, [e, e], op="*"), self.constant_pos()], op="+")
        if k == 3:
            return self.mk("bin", shape, [self.mk("pow", shape, [e], value=2.0), self.constant_pos()], op="+")
        if k == 4:
            return self.mk("bin", shape, [self.call("sigmoid", shape, [e]), self.constant_pos()], op="+")
        return self.call("sqrt", shape, [self.mk("bin", shape, [self.mk("bin", shape, [e, e], op="*"),
                                                                 self.constant_pos()], op="+")])

    def constant_pos(self):
        v = self.r.choice([0.5, 1, 0.25, 2, 0.1])
        e = num(v)
        e.vals = [torch.tensor(float(v), dtype=torch.float64)] * self.nex
        return e

    def bounded(self, shape, depth):
        """An expression fit for exp (at most ~4)."""
        e = self.build(shape, depth)
        if all(tmax(v) < 4 for v in e.vals):
            return e
        return self.call("tanh" if self.r.random() < 0.5 else "sin", shape, [e])

    def call(self, fn, shape, args, axis=None):
        return self.mk("call", shape, args, fn=fn, axis=axis)

    def operand_shapes(self, shape):
        """Shapes (a, b) that broadcast to shape under the language's rules."""
        r = self.r
        k = r.random()
        if len(shape) == 2:  # a vector over the rows of a matrix is the interesting case
            if k < 0.4:
                return shape, shape
            other = () if k < 0.55 else (shape[1],)
        else:
            if k < 0.55:
                return shape, shape
            other = ()
        return (shape, other) if r.random() < 0.5 else (other, shape)

    def operands(self, shape, d):
        """Two operands broadcasting to shape; a vector beside a matrix is
        sometimes a row of that very matrix (h - h[0]: fan-out through a row
        view)."""
        r = self.r
        sa, sb = self.operand_shapes(shape)
        flip = len(sa) < len(sb)
        big, small = (sb, sa) if flip else (sa, sb)
        a = self.build(big, d)
        if len(big) == 2 and len(small) == 1 and r.random() < 0.35 and not (self.batch_mode and a.dep):
            b = self.mk("index", small, [a], idx=(r.randrange(big[0]),))
        elif small == big and r.random() < 0.2:
            b = a  # the same value on both sides
        else:
            b = self.build(small, d)
        return (b, a) if flip else (a, b)

    def compound(self, shape, depth):
        r = self.r
        d = depth - 1
        rank = len(shape)
        choices = ["unary", "unary", "binary", "binary", "binary", "pow", "neg", "max2"]
        if rank >= 1:
            choices += ["matmul", "matmul", "softmax", "reduce_axis", "index_expr"]
        if rank == 1:
            choices += ["reduce_axis", "reduce_axis"]
        if rank == 2:
            choices += ["transpose"]
        if rank == 0:
            choices += ["reduce", "reduce", "reduce", "dot", "sce", "ce", "index_expr", "matmul"]
        c = r.choice(choices)
        if c == "unary":
            fn = r.choice(UNARY)
            if fn in ("log", "sqrt"):
                return self.call(fn, shape, [self.positive(shape, d)])
            if fn == "exp":
                return self.call(fn, shape, [self.bounded(shape, d)])
            return self.call(fn, shape, [self.build(shape, d)])
        if c == "neg":
            return self.mk("neg", shape, [self.build(shape, d)])
        if c == "binary":
            op = r.choice("+-*/")
            if op == "/":  # the divisor on the right, away from zero
                sa, sb = self.operand_shapes(shape)
                a = self.build(sa, d)
                b = self.positive(sb, d) if r.random() < 0.6 else self.build(sb, d)
                return self.mk("bin", shape, [a, b], op=op)
            a, b = self.operands(shape, d)
            return self.mk("bin", shape, [a, b], op=op)
        if c == "pow":
            p = r.choice([2.0, 2.0, 3.0, 0.5, -1.0, 1.5, -0.5, 4.0, 1.0, 0.0, -2.0, 2.5])
            base = self.positive(shape, d) if p != int(p) else self.build(shape, d)
            return self.mk("pow", shape, [base], value=p)
        if c == "max2":
            a, b = self.operands(shape, d)
            return self.call(r.choice(["max", "min"]), shape, [a, b])
        if c == "matmul":
            k = r.choice(self.sizes)
            fn_dot = r.random() < 0.25
            if rank == 0:
                a, b = self.build((k,), d), self.build((k,), d)
            elif rank == 1:
                if r.random() < 0.5:
                    a, b = self.build((k,), d), self.matrix((k, shape[0]), d)
                else:
                    a, b = self.matrix((shape[0], k), d), self.build((k,), d)
            else:
                a, b = self.matrix((shape[0], k), d), self.matrix((k, shape[1]), d)
            if fn_dot:
                return self.call("dot", shape, [a, b])
            return self.mk("bin", shape, [a, b], op="@")
        if c == "dot":
            k = r.choice(self.sizes)
            a = self.build((k,), d)
            b = a if r.random() < 0.2 else self.build((k,), d)
            return self.call("dot", (), [a, b])
        if c == "transpose":
            return self.call("transpose", shape, [self.build((shape[1], shape[0]), d)])
        if c == "softmax":
            fn = r.choice(["softmax", "log_softmax"])
            return self.call(fn, shape, [self.build(shape, d)])
        if c == "reduce_axis":
            k = r.choice(self.sizes)
            if rank == 1:
                kind = r.randrange(3)
                if kind == 0:
                    return self.call(r.choice(["sum", "mean"]), shape, [self.build((k, shape[0]), d)], axis=0)
                if kind == 1:
                    return self.call(r.choice(["sum", "mean"]), shape, [self.build((shape[0], k), d)], axis=1)
                return self.call("logsumexp", shape, [self.build((shape[0], k), d)])
            raise Reject()
        if c == "reduce":
            x = self.build(self.pick_shape(), d)
            if x.shape == ():
                x = self.build((r.choice(self.sizes),), d)
            fn = r.choice(["sum", "sum", "mean", "max", "min", "logsumexp", "sum_axis"])
            if fn == "sum_axis":
                if len(x.shape) != 1:
                    raise Reject()
                return self.call(r.choice(["sum", "mean"]), (), [x], axis=0)
            if fn == "logsumexp" and len(x.shape) != 1:
                raise Reject()
            return self.call(fn, (), [x])
        if c == "sce":
            s = self.pick_shape()
            if s == ():
                s = (r.choice(self.sizes),)
            z = self.build(s, d)
            t = self.target(s)
            return self.call("softmax_cross_entropy", (), [z, t])
        if c == "ce":
            s = self.pick_shape()
            if s == ():
                s = (r.choice(self.sizes),)
            if r.random() < 0.5:
                p = self.call("softmax", s, [self.build(s, d)])  # recognised as the fused form
            else:
                p = self.positive(s, d)
            return self.call("cross_entropy", (), [p, self.target(s)])
        if c == "index_expr":
            if rank == 0:
                src = (r.choice(self.sizes),) if r.random() < 0.6 else (r.choice(self.sizes), r.choice(self.sizes))
                x = self.build(src, d)
                return self.mk("index", (), [x], idx=tuple(r.randrange(n) for n in src))
            if rank == 1:
                x = self.build((r.choice(self.sizes), shape[0]), d)
                return self.mk("index", shape, [x], idx=(r.randrange(x.shape[0]),))
            raise Reject()
        raise Reject()

    def matrix(self, shape, d):
        """A matrix operand of a product, sometimes written as a transpose."""
        if self.r.random() < 0.2:
            inner = self.build((shape[1], shape[0]), d)
            return self.call("transpose", shape, [inner])
        return self.build(shape, d)

    def target(self, shape):
        """A target for the cross entropies: an input, a parameter or a value."""
        r = self.r
        k = r.random()
        if k < 0.4 and not (self.batch_mode and len(shape) == 2):
            names = [n for n, v in self.env.items() if v[0] == shape and self.kind[n] == "input"]
            return self.leafref(r.choice(names) if names else self.new_input(shape, positive=True))
        if k < 0.7:
            return self.leafref(self.new_param(shape))
        return self.build(shape, 1)

    # ---- the program ----------------------------------------------------------------

    def assign(self, name, expr, kind="value"):
        self.stmts.append(Assign(name, expr, kind))
        self.env[name] = (expr.shape, expr.dep, expr.vals)
        self.kind[name] = "value"

    def program(self):
        r = self.r
        for size in self.sizes:
            if r.random() < 0.3:
                n = self.fresh(DIM_NAMES)
                self.stmts.append(Dim(n, size))
                self.dims[size] = n
                self.kind[n] = "dim"
                self.env[n] = ((), False, [torch.tensor(float(size), dtype=torch.float64)] * self.nex)
        for _ in range(r.randint(1, 3)):
            self.new_param(self.pick_shape())
        for _ in range(r.choice([0, 1, 1, 2, 2, 3])):
            self.new_input(self.pick_shape(allow_matrix=not self.batch_mode))
        for _ in range(r.randint(2, 7)):
            shape = self.pick_shape(allow_matrix=True)
            e = self.build(shape, r.randint(1, 3))
            kind = "output" if r.random() < 0.15 else "value"
            if e.kind == "num" and kind == "output":
                kind = "value"
            self.assign(self.fresh(OUTPUT_NAMES if kind == "output" else VALUE_NAMES), e, kind)
        self.assign("loss", self.loss(), "loss")
        prog = Program(self.stmts)
        n = len(self.stmts)
        for i in range(1, n):
            if r.random() < 0.08:
                prog.joins.add(i)
            if r.random() < 0.05:
                prog.comments[i] = r.choice(["a comment", "fan-out", "# hash in a comment", "x = 1"])
        examples = []
        for e in range(self.nex):
            flat = []
            for name, vals in self.input_order:
                flat.extend(vals[e])
            examples.append(flat)
        return Case(prog, examples, self.batchable(prog), self.seed)

    def scalarize(self, x):
        r = self.r
        s = x.shape
        if s == ():
            return x
        for _ in range(6):
            try:
                k = r.randrange(8)
                if k == 0:
                    return self.call("mean", (), [x])
                if k == 1:
                    return self.call("sum", (), [self.mk("bin", s, [x, x], op="*")])
                if k == 2 and len(s) == 1:
                    return self.call("dot", (), [x, x]) if r.random() < 0.5 else self.mk("bin", (), [x, x], op="@")
                if k == 3:
                    return self.call("sum", (), [self.mk("pow", s, [x], value=2.0)])
                if k == 4 and len(s) == 1:
                    return self.call("logsumexp", (), [x])
                if k == 5:
                    return self.call("softmax_cross_entropy", (), [x, self.target(s)])
                if k == 6:
                    return self.call(r.choice(["max", "min"]), (), [x])
                return self.call("sum", (), [x])
            except Reject:
                continue
        return self.call("mean", (), [x])

    def loss(self):
        r = self.r
        used_later = set()
        for st in self.stmts:
            if isinstance(st, Assign):
                for e in st.expr.walk():
                    if e.kind == "ref":
                        used_later.add(e.name)
        values = [st for st in self.stmts if isinstance(st, Assign)]
        ends = [st for st in values if st.name not in used_later] or values[-1:]
        terms = []
        for st in ends[-4:]:
            x = self.leafref(st.name)
            terms.append(self.scalarize(x))
        if r.random() < 0.3:
            terms.append(self.build((), 2))
        total = terms[0]
        for t in terms[1:]:
            for _ in range(3):
                try:
                    op = r.choice("++-*")
                    total = self.mk("bin", (), [total, t], op=op)
                    break
                except Reject:
                    continue
        return total

    def batchable(self, prog):
        """Whether the model keeps every per-example value a scalar or a vector
        and uses only ops with a batched form (compiler/batch.c)."""
        if not self.batch_mode:
            return False
        return all(len(s.shape) < 2 for s in prog.inputs())


def generate(seed):
    return Generator(seed).program()
