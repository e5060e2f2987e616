"""bpmodel.py: .bp programs as Python objects, printed as .bp text and
evaluated independently of bpc (tests/difftest/README.md).

A Program is a list of statements (Dim, Param, Input, Assign). Expressions
are small trees of Expr nodes that know their shape. evaluate() runs a
program with one of two arithmetic back ends:

  TorchOps   PyTorch, float64 (the reference, with autograd) or float32
  MpOps      mpmath at high precision, on numpy object arrays (the arbiter
             when bpc and PyTorch disagree)

The semantics are docs/language.md's, written down again here from the
documentation, not from bpc's source."""

import decimal
import math

import mpmath
import numpy as np
import torch

# ---- expressions ---------------------------------------------------------------

UNARY = ("exp", "log", "sqrt", "abs", "sin", "cos", "tanh", "sigmoid", "relu", "softplus")


class Expr:
    """kind: num ref neg bin pow call index, or raw (text around children,
    for ill-typed variants). shape: () (n,) (m, n)."""

    __slots__ = ("kind", "shape", "value", "name", "op", "args", "fn", "axis", "idx", "paren", "dep", "vals",
                 "style")

    def __init__(self, kind, shape, **kw):
        self.kind = kind
        self.shape = tuple(shape)
        self.value = None  # num: the number; pow: the exponent
        self.name = None  # ref
        self.op = None  # bin: + - * / @
        self.args = []  # children
        self.fn = None  # call: the function name
        self.axis = None  # call sum/mean: the axis, or None
        self.idx = ()  # index: the integer indices
        self.paren = False  # printed in (redundant) parentheses
        self.dep = False  # depends on an input (generator bookkeeping)
        self.vals = None  # per example values while generating
        self.style = None  # printing variant (index: dim names, chained)
        for k, v in kw.items():
            setattr(self, k, v)

    def copy(self):
        e = Expr(self.kind, self.shape)
        for k in Expr.__slots__:
            setattr(e, k, getattr(self, k))
        e.args = [a.copy() for a in self.args]
        return e

    def walk(self):
        yield self
        for a in self.args:
            yield from a.walk()


def num(v):
    return Expr("num", (), value=float(v))


def ref(name, shape):
    return Expr("ref", shape, name=name)


# ---- statements ------------------------------------------------------------------


class Dim:
    def __init__(self, name, value):
        self.name, self.value = name, value


class Param:
    """values: a flat list of floats (row-major); style: list, nested, fill or
    scalar; dimnames: per axis a dim name to print instead of the number."""

    def __init__(self, name, shape, values, style="list", dimnames=None, numfmt=0):
        self.name, self.shape, self.values, self.style = name, tuple(shape), list(values), style
        self.dimnames = dimnames or [None] * len(shape)
        self.numfmt = numfmt  # fmt_num's style for the values


class Input:
    def __init__(self, name, shape, dimnames=None):
        self.name, self.shape = name, tuple(shape)
        self.dimnames = dimnames or [None] * len(shape)


class Assign:
    """kind: value, output or loss."""

    def __init__(self, name, expr, kind="value"):
        self.name, self.expr, self.kind = name, expr, kind


class Program:
    def __init__(self, stmts=None, joins=None, comments=None):
        self.stmts = stmts or []
        self.joins = joins or set()  # statement indices printed on the previous statement's line after ';'
        self.comments = comments or {}  # statement index -> trailing comment

    def params(self):
        return [s for s in self.stmts if isinstance(s, Param)]

    def inputs(self):
        return [s for s in self.stmts if isinstance(s, Input)]

    def outputs(self):
        return [s for s in self.stmts if isinstance(s, Assign) and s.kind == "output"]

    def copy(self):
        out = Program([], set(self.joins), dict(self.comments))
        for s in self.stmts:
            if isinstance(s, Assign):
                out.stmts.append(Assign(s.name, s.expr.copy(), s.kind))
            elif isinstance(s, Param):
                out.stmts.append(Param(s.name, s.shape, s.values, s.style, list(s.dimnames), s.numfmt))
            elif isinstance(s, Input):
                out.stmts.append(Input(s.name, s.shape, list(s.dimnames)))
            else:
                out.stmts.append(Dim(s.name, s.value))
        return out

    def nparams(self):
        return sum(numel(p.shape) for p in self.params())

    def ninputs(self):
        return sum(numel(p.shape) for p in self.inputs())


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


# ---- printing ----------------------------------------------------------------------


def fmt_num(v, style=0):
    """A float as .bp text that reads back as exactly v: integers without a
    point, others as repr writes them; style 1 leaves out a leading 0
    (.5), 2 writes an exponent (5e-1, 3e0), 3 puts '+' before a positive
    number (initialisers only)."""
    if v == int(v) and abs(v) < 1e15:
        s = str(int(v))
        if style == 2:
            s += "e0"
        elif style == 1:
            s += ".0"
    else:
        s = repr(float(v))
        if "e" not in s and style == 1 and s.lstrip("-").startswith("0."):
            s = s.replace("0.", ".", 1)
        elif "e" not in s and style == 2:
            s = format(decimal.Decimal(s).scaleb(2), "f") + "e-2"
    if style == 3 and v > 0:
        s = "+" + s
    return s


# precedence levels: + - 1, * / @ 2, unary - 3, ^ 4, postfix and atoms 5
def level(e):
    if e.kind == "bin":
        return 1 if e.op in "+-" else 2
    if e.kind == "neg":
        return 3
    if e.kind == "num" and (e.value < 0 or (e.value == 0 and math.copysign(1, e.value) < 0)):
        return 3
    if e.kind == "pow":
        return 4
    return 5


def fmt_expr(e, dims=None):
    """The expression as .bp text with the parentheses its tree needs (and
    those marked paren). dims maps values to dim names for e.style."""
    s = _fmt(e, dims or {})
    return "(" + s + ")" if e.paren else s


def _sub(e, dims, need):
    s = _fmt(e, dims)
    return "(" + s + ")" if need or e.paren else s


def _fmt(e, dims):
    k = e.kind
    if k == "num":
        return fmt_num(e.value, (e.style or 0) % 3)
    if k == "ref":
        return e.name
    if k == "neg":
        a = e.args[0]
        s = _sub(a, dims, level(a) < 3)
        return "-" + (" " + s if s.startswith("-") else s)
    if k == "bin":
        L = level(e)
        a, b = e.args
        sp = " " if (e.style or 0) % 3 != 1 else ""
        return _sub(a, dims, level(a) < L) + sp + e.op + sp + _sub(b, dims, level(b) <= L)
    if k == "pow":
        a = e.args[0]
        p = e.value
        ps = fmt_num(p)
        if p < 0 and (e.style or 0) % 2 == 0:
            ps = "(" + ps + ")"
        return _sub(a, dims, level(a) <= 4) + " ^ " + ps
    if k == "call":
        parts = [fmt_expr(a, dims) for a in e.args]
        if e.axis is not None:
            parts.append(str(e.axis))
        return e.fn + "(" + ", ".join(parts) + ")"
    if k == "raw":  # text with {0}, {1}... for the children (ill-typed variants)
        return e.name.format(*[fmt_expr(a, dims) for a in e.args])
    if k == "index":
        a = e.args[0]
        base = _sub(a, dims, a.kind not in ("ref", "call", "index"))
        names = [dims.get(i) if (e.style or 0) & 1 else None for i in e.idx]
        txt = [n if n else str(i) for n, i in zip(names, e.idx)]
        return base + "[" + ", ".join(txt) + "]"
    raise ValueError(k)


def fmt_shape(shape, dimnames):
    if not shape:
        return ""
    return "[" + ", ".join(n if n else str(d) for d, n in zip(shape, dimnames)) + "]"


def fmt_values(p, multiline=False):
    f = p.numfmt
    if p.style == "fill" or not p.shape:
        return fmt_num(p.values[0], f)
    if p.style == "nested" and len(p.shape) == 2:
        m, n = p.shape
        rows = ["[" + ", ".join(fmt_num(v, f) for v in p.values[r * n:(r + 1) * n]) + "]" for r in range(m)]
        return "[" + (",\n    " if multiline else ", ").join(rows) + "]"
    return "[" + ", ".join(fmt_num(v, f) for v in p.values) + "]"


def fmt_stmt(s, dims, multiline=False):
    if isinstance(s, Dim):
        return "dim %s = %d" % (s.name, s.value)
    if isinstance(s, Param):
        return "param %s%s = %s" % (s.name, fmt_shape(s.shape, s.dimnames), fmt_values(s, multiline))
    if isinstance(s, Input):
        return "input %s%s" % (s.name, fmt_shape(s.shape, s.dimnames))
    pre = "output " if s.kind == "output" else ""
    return pre + s.name + " = " + fmt_expr(s.expr, dims)


def dim_lookup(prog):
    """value -> dim name (the first dim of that value), for indices."""
    d = {}
    for s in prog.stmts:
        if isinstance(s, Dim):
            d.setdefault(s.value, s.name)
    return d


def render(prog, header=(), multiline=False):
    """The program as .bp text, and per statement the line it starts on."""
    dims = dim_lookup(prog)
    lines = list(header)
    where = []
    for i, s in enumerate(prog.stmts):
        text = fmt_stmt(s, dims, multiline and isinstance(s, Param) and s.style == "nested")
        if i in prog.comments:
            text += "  # " + prog.comments[i]
        if i in prog.joins and lines and where and "#" not in lines[-1]:  # a comment runs to the end of the line
            where.append(len(lines))
            lines[-1] = lines[-1] + "; " + text
        else:
            where.append(len(lines) + 1)
            lines.extend(text.split("\n"))
    return "\n".join(lines) + "\n", where


# ---- arithmetic back ends ------------------------------------------------------------


class TorchOps:
    def __init__(self, dtype=torch.float64):
        self.dtype = dtype

    def const(self, v):
        return torch.tensor(v, dtype=self.dtype)

    def tensor(self, values, shape, grad=False):
        t = torch.tensor(values, dtype=self.dtype).reshape(shape)
        if grad:
            t.requires_grad_(True)
        return t

    def neg(self, a):
        return -a

    def add(self, a, b):
        return a + b

    def sub(self, a, b):
        return a - b

    def mul(self, a, b):
        return a * b

    def div(self, a, b):
        return a / b

    def matmul(self, a, b):
        return torch.matmul(a, b)

    def pow(self, a, p):
        return torch.pow(a, p)

    def unary(self, fn, a):
        if fn == "softplus":
            return torch.logaddexp(a, torch.zeros_like(a))
        if fn == "relu":
            return torch.relu(a)
        return getattr(torch, fn)(a)

    def max2(self, a, b):
        return torch.maximum(a, b)

    def min2(self, a, b):
        return torch.minimum(a, b)

    def sum(self, a, axis):
        return a.sum() if axis is None else a.sum(dim=axis)

    def maxall(self, a):
        return a.max()

    def minall(self, a):
        return a.min()

    def lse(self, a):
        return torch.logsumexp(a, dim=-1)

    def softmax(self, a):
        return torch.softmax(a, dim=-1)

    def log_softmax(self, a):
        return torch.log_softmax(a, dim=-1)

    def transpose(self, a):
        return a.t()

    def index(self, a, idx):
        return a[idx]

    def shape_of(self, a):
        return tuple(a.shape)

    def flat(self, a):
        return [float(v) for v in a.detach().reshape(-1)]


def _vec(f):
    return np.vectorize(f, otypes=[object])


class MpOps:
    """mpmath numbers in numpy object arrays (0-d arrays for scalars)."""

    def __init__(self):
        self._exp = _vec(mpmath.exp)
        self._log = _vec(mpmath.log)
        self._sqrt = _vec(mpmath.sqrt)
        self._abs = _vec(mpmath.fabs)
        self._sin = _vec(mpmath.sin)
        self._cos = _vec(mpmath.cos)
        self._tanh = _vec(mpmath.tanh)
        self._sigmoid = _vec(lambda x: 1 / (1 + mpmath.exp(-x)))
        self._relu = _vec(lambda x: x if x > 0 else mpmath.mpf(0))
        self._softplus = _vec(lambda x: mpmath.log(1 + mpmath.exp(x)))
        self._max = _vec(lambda a, b: a if a > b else b)
        self._min = _vec(lambda a, b: a if a < b else b)

    @staticmethod
    def A(x):
        return np.array(x, dtype=object)

    def const(self, v):
        return self.A(mpmath.mpf(v))

    def tensor(self, values, shape, grad=False):
        return self.A([mpmath.mpf(v) for v in values]).reshape(shape)

    def neg(self, a):
        return self.A(-a)

    def add(self, a, b):
        return self.A(a + b)

    def sub(self, a, b):
        return self.A(a - b)

    def mul(self, a, b):
        return self.A(a * b)

    def div(self, a, b):
        return self.A(a / b)

    def matmul(self, a, b):
        return self.A(np.matmul(a, b))

    def pow(self, a, p):
        q = int(p) if p == int(p) else mpmath.mpf(p)
        return self.A(_vec(lambda x: mpmath.power(x, q))(a))

    def unary(self, fn, a):
        return self.A(getattr(self, "_" + fn)(a))

    def max2(self, a, b):
        return self.A(self._max(a, b))

    def min2(self, a, b):
        return self.A(self._min(a, b))

    def sum(self, a, axis):
        if axis is None:
            s = mpmath.mpf(0)
            for v in a.reshape(-1):
                s += v
            return self.A(s)
        return self.A(np.sum(a, axis=axis) + mpmath.mpf(0))

    def maxall(self, a):
        return self.A(max(a.reshape(-1)))

    def minall(self, a):
        return self.A(min(a.reshape(-1)))

    def lse(self, a):
        if a.ndim == 1:
            m = max(a)
            return self.A(m + mpmath.log(sum((mpmath.exp(v - m) for v in a), mpmath.mpf(0))))
        return self.A([self.lse(row)[()] for row in a])

    def softmax(self, a):
        return self.A(self._exp(self.log_softmax(a)))

    def log_softmax(self, a):
        l = self.lse(a)
        return self.A(a - (l[..., None] if a.ndim == 2 else l))

    def transpose(self, a):
        return self.A(a.T)

    def index(self, a, idx):
        return self.A(a[idx])

    def shape_of(self, a):
        return tuple(a.shape)

    def flat(self, a):
        return list(a.reshape(-1))


# ---- evaluation ------------------------------------------------------------------------


def apply(e, args, ops):
    """The value of node e from its children's values args."""
    k = e.kind
    if k == "num":
        return ops.const(e.value)
    if k == "neg":
        return ops.neg(args[0])
    if k == "bin":
        a, b = args
        return {"+": ops.add, "-": ops.sub, "*": ops.mul, "/": ops.div, "@": ops.matmul}[e.op](a, b)
    if k == "pow":
        return ops.pow(args[0], e.value)
    if k == "index":
        return ops.index(args[0], tuple(e.idx))
    if k == "call":
        f = e.fn
        if f in UNARY:
            return ops.unary(f, args[0])
        if f in ("max", "min"):
            if len(args) == 2:
                return ops.max2(*args) if f == "max" else ops.min2(*args)
            return ops.maxall(args[0]) if f == "max" else ops.minall(args[0])
        if f in ("sum", "mean"):
            x = args[0]
            s = ops.sum(x, e.axis)
            if f == "mean":
                shape = e.args[0].shape
                n = numel(shape) if e.axis is None else shape[e.axis]
                s = ops.div(s, ops.const(float(n)))
            return s
        if f == "dot":
            return ops.matmul(*args)
        if f == "transpose":
            return ops.transpose(args[0])
        if f == "softmax":
            return ops.softmax(args[0])
        if f == "log_softmax":
            return ops.log_softmax(args[0])
        if f == "logsumexp":
            return ops.lse(args[0])
        if f == "cross_entropy":
            p, t = args
            return ops.neg(ops.sum(ops.mul(t, ops.unary("log", p)), None))
        if f == "softmax_cross_entropy":
            z, t = args
            return ops.neg(ops.sum(ops.mul(t, ops.log_softmax(z)), None))
    raise ValueError("cannot evaluate %s %s" % (k, e.fn))


def eval_expr(e, env, ops):
    if e.kind == "ref":
        return env[e.name]
    return apply(e, [eval_expr(a, env, ops) for a in e.args], ops)


def evaluate(prog, ops, params, inputs):
    """params, inputs: name -> tensor of the back end. Returns (loss,
    [output values], env)."""
    env = {}
    loss, outs = None, []
    for s in prog.stmts:
        if isinstance(s, Dim):
            env[s.name] = ops.const(float(s.value))
        elif isinstance(s, Param):
            env[s.name] = params[s.name]
        elif isinstance(s, Input):
            env[s.name] = inputs[s.name]
        else:
            v = eval_expr(s.expr, env, ops)
            env[s.name] = v
            if s.kind == "loss":
                loss = v
            elif s.kind == "output":
                outs.append(v)
    return loss, outs, env


def split_inputs(prog, flat):
    """One example's flat input values -> name -> list of floats."""
    out, k = {}, 0
    for s in prog.inputs():
        n = numel(s.shape)
        out[s.name] = flat[k:k + n]
        k += n
    return out


def torch_reference(prog, examples, dtype=torch.float64):
    """Per example: (loss, flat gradient in parameter order, flat outputs),
    by PyTorch autograd."""
    ops = TorchOps(dtype)
    res = []
    for ex in examples:
        params = {p.name: ops.tensor(p.values, p.shape, grad=True) for p in prog.params()}
        ins = {n: ops.tensor(v, s.shape) for (n, v), s in zip(split_inputs(prog, ex).items(), prog.inputs())}
        loss, outs, _ = evaluate(prog, ops, params, ins)
        plist = [params[p.name] for p in prog.params()]
        grads = torch.autograd.grad(loss, plist, allow_unused=True) if plist and loss.requires_grad else \
            [None] * len(plist)
        g = []
        for p, gr in zip(prog.params(), grads):
            g.extend([0.0] * numel(p.shape) if gr is None else ops.flat(gr))
        o = []
        for v in outs:
            o.extend(ops.flat(v))
        res.append((float(loss.detach()), g, o))
    return res


def mp_reference(prog, examples, dps=50, h="1e-15", only=None, fallback=None):
    """The same at dps digits with mpmath: the gradient by central
    differences of step h (an error of order h^2, far below double). With
    only (a set of (example, gradient index)), just those gradient elements
    are differenced; the others are taken from fallback (another reference
    of the same form)."""
    ops = MpOps()
    res = []
    with mpmath.workdps(dps):
        step = mpmath.mpf(h)
        for e_i, ex in enumerate(examples):
            ins = {n: ops.tensor(v, s.shape) for (n, v), s in zip(split_inputs(prog, ex).items(), prog.inputs())}
            base = {p.name: ops.tensor(p.values, p.shape) for p in prog.params()}

            def loss_at(params):
                return evaluate(prog, ops, params, ins)[0][()]

            loss, outs, _ = evaluate(prog, ops, base, ins)
            g = []
            flat = 0
            for p in prog.params():
                for k in range(numel(p.shape)):
                    flat += 1
                    if only is not None and (e_i, flat - 1) not in only:
                        g.append(fallback[e_i][1][flat - 1])
                        continue
                    vals = [mpmath.mpf(v) for v in p.values]
                    vals[k] += step
                    hi = loss_at({**base, p.name: ops.A(vals).reshape(p.shape)})
                    vals[k] -= 2 * step
                    lo = loss_at({**base, p.name: ops.A(vals).reshape(p.shape)})
                    g.append(float((hi - lo) / (2 * step)))
            o = []
            for v in outs:
                o.extend(float(x) for x in v.reshape(-1))
            res.append((float(loss[()]), g, o))
    return res
