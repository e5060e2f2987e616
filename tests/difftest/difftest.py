#!/usr/bin/python3
"""difftest.py: bpc's standing differential test (tests/difftest/README.md).

  difftest.py --fast                 the fixed seed set `make test` runs
  difftest.py --seconds N [--seed S] random programs for N seconds (make difftest)
  difftest.py --replay FILE.bp...    reproducers: regressions/ or findings/
  difftest.py --show SEED            print one generated program and its values

Every generated program is compiled by bpc in every form (driver.c) and
compared with PyTorch (float64, autograd); a disagreement is rechecked with
mpmath at 50 digits, so only bpc's own errors are reported. Ill-typed
variants must be refused with an error naming the mutated line. Findings
are minimised and written to build/difftest/findings/."""

import argparse
import hashlib
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import torch  # noqa: E402

torch.set_num_threads(1)

import gen  # noqa: E402
import mutate  # noqa: E402
from bpmodel import mp_reference, render, torch_reference  # noqa: E402

DOUBLE_FORMS = ("interp", "file-double-locals", "file-double-slots", "file-double-parts", "jit-double")
FLOAT_FORMS = ("file-float-locals", "file-float-slots", "file-float-parts", "jit-float")
ALL_FORMS = DOUBLE_FORMS + FLOAT_FORMS
FAST_SEEDS = range(1, 61)  # the programs `make test` checks
FAST_MUTATIONS = 3  # ill-typed variants per fast program
# Seeds of the fast set whose program hits an open finding (tests/difftest/findings/):
# their ill-typed variants run, the program itself is not run but named in every
# summary. Once the finding is fixed, drop the seed here and move the finding to
# regressions/ (make difftest replays findings/ and shows which pass).
KNOWN_OPEN = {}


# ---- running the driver ---------------------------------------------------------------


class Run:
    def __init__(self):
        self.forms = {}
        self.order = []
        self.sizes = None
        self.done = False
        self.compile_error = None
        self.rc = 0
        self.stderr = ""


RECORD_TAGS = ("fwd", "bwd", "pred", "fixedpred", "batch", "sum", "accsum", "fixed", "fixedacc", "evalsum",
               "evalfixed", "init")


def parse_driver(out):
    """The driver's records by form. Other lines (the system C compiler's
    messages, which the cc backend lets through to stdout) are kept as
    'stray' text of the form they appeared in."""
    run = Run()
    cur = None
    for line in out.splitlines():
        tag, _, rest = line.partition(" ")
        if tag == "sizes":
            run.sizes = [int(x) for x in rest.split()]
        elif tag == "form":
            cur = run.forms.setdefault(rest, {})
            run.order.append(rest)
        elif tag == "done":
            run.done = True
        elif tag == "compile_error":
            run.compile_error = rest
        elif tag in ("error", "nofixed"):
            cur[tag] = rest
        elif cur is not None and tag in RECORD_TAGS:
            try:
                nums = [float(x) for x in rest.split()]
            except ValueError:
                cur.setdefault("stray", []).append(line)
                continue
            if tag == "fwd":
                cur.setdefault(tag, {})[int(nums[0])] = nums[1]
            elif tag == "bwd":
                cur.setdefault(tag, {})[int(nums[0])] = (nums[1], nums[2:])
            elif tag in ("pred", "fixedpred"):
                cur.setdefault(tag, {})[int(nums[0])] = nums[1:]
            elif tag in ("batch", "sum", "accsum", "fixed", "fixedacc"):
                cur[tag] = (nums[0], nums[1:])
            elif tag in ("evalsum", "evalfixed"):
                cur[tag] = nums[0]
            elif tag == "init":
                cur[tag] = nums
        elif cur is not None:
            cur.setdefault("stray", []).append(line)
    return run


def values_text(params, examples):
    lines = []
    if params is not None:
        lines.append("params " + " ".join(repr(float(v)) for v in params))
    for ex in examples:
        lines.append("example " + " ".join(repr(float(v)) for v in ex))
    return "\n".join(lines) + "\n"


def limit_memory():
    """The driver's address space is capped: a compiler that runs away
    fails the program instead of the machine."""
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


class Env:
    """Paths and options of one difftest run."""

    def __init__(self, args):
        self.bpc = os.path.abspath(args.bpc)
        self.driver = os.path.abspath(args.driver)
        self.out = os.path.abspath(args.out)
        os.makedirs(self.out, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix="run-", dir=self.out)
        self.findings = os.path.join(self.out, "findings")
        self.verbose = args.verbose
        os.environ["BPC_CACHE_DIR"] = os.path.join(self.out, "cache")
        # AddressSanitizer reserves terabytes of address space: no cap then
        with open(self.driver, "rb") as f:
            self.sanitized = b"__asan_init" in f.read()

    def start_driver(self, text, params, examples, cc=False, jit_cc=False, name="case", perturb=None):
        bp = os.path.join(self.tmp, name + ".bp")
        vals = os.path.join(self.tmp, name + ".values")
        with open(bp, "w") as f:
            f.write(text)
        with open(vals, "w") as f:
            f.write(values_text(params, examples))
        cmd = [self.driver] + (["--cc"] if cc else []) + (["--jit-cc"] if jit_cc else []) + \
            (["--perturb", perturb] if perturb else []) + [bp, vals]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=None if self.sanitized else limit_memory)

    @staticmethod
    def finish_driver(proc, timeout=60):
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            err += "\n(killed after %d s)" % timeout
        run = parse_driver(out)
        run.rc = proc.returncode
        run.stderr = err
        return run


# ---- what each form must print ------------------------------------------------------------


def expectations(ref):
    """Records every form must reproduce, from per-example (loss, grad, outputs)."""
    n = len(ref)
    L = sum(r[0] for r in ref)
    G = [sum(r[1][k] for r in ref) for k in range(len(ref[0][1]))]
    E = {
        "fwd": {e: r[0] for e, r in enumerate(ref)},
        "bwd": {e: (r[0], r[1]) for e, r in enumerate(ref)},
        "pred": {e: r[2] for e, r in enumerate(ref)},
        "batch": (L / n, [g / n for g in G]),
        "sum": (L, G),
        "accsum": (L, [g + g0 for g, g0 in zip(G, ref[0][1])]),
        "evalsum": L,
        "fixed": (L, G),
        "fixedacc": (L, [2 * g for g in G]),
        "fixedpred": {e: r[2] for e, r in enumerate(ref)},
        "evalfixed": L,
    }
    return E


FORM_RECORDS = {
    "interp": ("bwd", "pred"),
    "file": ("fwd", "bwd", "pred", "batch"),
    "jit": ("fwd", "bwd", "pred", "sum", "accsum", "evalsum"),
}


class Mismatch:
    def __init__(self, form, record, index, got, want, tol, kind="mismatch", note=""):
        self.form, self.record, self.index = form, record, index
        self.got, self.want, self.tol, self.kind, self.note = got, want, tol, kind, note

    def __str__(self):
        if self.kind != "mismatch":
            return "%s: %s %s" % (self.form, self.kind, self.note)
        return "%s %s[%s]: bpc %.17g, expected %.17g (tolerance %.3g)" % (
            self.form, self.record, self.index, self.got, self.want, self.tol)


def _flat_pairs(rec, got, want, want32):
    """(label, got, want, want32, scale) for one record: losses and outputs
    alone, gradient elements against the gradient's largest element."""
    out = []
    if rec in ("fwd", "evalsum", "evalfixed"):
        out.append(("loss", got, want, want32, abs(want)))
    elif rec in ("pred", "fixedpred"):
        scale = max([abs(w) for w in want] + [0])
        if len(got) != len(want):
            return None
        for k, (g, w) in enumerate(zip(got, want)):
            out.append((str(k), g, w, want32[k] if want32 else None, scale))
    else:
        gl, gg = got
        wl, wg = want
        w32 = want32 if want32 else (None, None)
        if len(gg) != len(wg):
            return None
        out.append(("loss", gl, wl, w32[0], abs(wl)))
        scale = max([abs(w) for w in wg] + [0])
        for k, (g, w) in enumerate(zip(gg, wg)):
            out.append(("g%d" % k, g, w, w32[1][k] if w32[1] else None, scale))
    return out


def tolerance(want, scale, want32, is_float):
    if is_float:
        t = 3e-4 * max(1.0, abs(want)) + 3e-5 * scale
        if want32 is not None:
            t += 30 * abs(want32 - want)
        return t
    return 1e-9 * max(1.0, abs(want)) + 1e-11 * scale


def compare(run, ref, ref32=None, init=None, expect_fixed=False, forms=ALL_FORMS):
    """Mismatches of every form's records against ref (per example: loss,
    gradient, outputs); ref32 (PyTorch in float32) widens the float forms'
    tolerance by how much float32 itself moves the result."""
    E = expectations(ref)
    E32 = expectations(ref32) if ref32 else None
    out = []
    for form in forms:
        is_float = form in FLOAT_FORMS
        recs = run.forms.get(form)
        if recs is None:
            out.append(Mismatch(form, "", "", 0, 0, 0, "missing", "the driver printed nothing for this form"))
            continue
        if "error" in recs:
            stray = " | ".join(recs.get("stray", []))[:300]
            out.append(Mismatch(form, "", "", 0, 0, 0, "error", recs["error"] + (" | " + stray if stray else "")))
            continue
        family = form.split("-")[0]
        names = list(FORM_RECORDS[family])
        if family == "jit" and "nofixed" not in recs:
            names += ["fixed", "fixedacc", "fixedpred", "evalfixed"]
        if init is not None and family != "interp":
            got = recs.get("init")
            want = [float(torch.tensor(v, dtype=torch.float32)) if is_float else v for v in init]
            if got != want:
                out.append(Mismatch(form, "init", "", 0, 0, 0, "init",
                                    "m_init gave %s, the declared values are %s" % (got, want)))
        for rec in names:
            want = E[rec]
            got = recs.get(rec)
            if rec in ("pred", "fixedpred") and not ref[0][2]:
                continue  # no outputs: nothing printed
            if got is None or (isinstance(want, dict) and set(got) != set(want)):
                out.append(Mismatch(form, rec, "", 0, 0, 0, "missing", "record %s not printed" % rec))
                continue
            items = want.items() if isinstance(want, dict) else [(None, want)]
            for e, w in items:
                g = got[e] if e is not None else got
                w32 = (E32[rec][e] if e is not None else E32[rec]) if E32 else None
                pairs = _flat_pairs(rec, g, w, w32)
                if pairs is None:
                    out.append(Mismatch(form, rec, e, 0, 0, 0, "size", "wrong number of values"))
                    continue
                for label, gv, wv, w32v, scale in pairs:
                    t = tolerance(wv, scale, w32v, is_float)
                    if not abs(gv - wv) <= t:  # NaN fails too
                        idx = label if e is None else "%s,%s" % (e, label)
                        out.append(Mismatch(form, rec, idx, gv, wv, t))
    return out


# ---- checking one program -------------------------------------------------------------------


class Stats:
    def __init__(self):
        self.programs = 0
        self.passed = 0
        self.failed = 0
        self.mutations = 0
        self.mutations_failed = 0
        self.regressions = 0
        self.regressions_failed = 0
        self.torch_off = 0  # PyTorch was wrong, mpmath agreed with bpc
        self.fixed = 0  # programs whose JIT had fixed-batch functions
        self.batchable = 0
        self.fixed_missing = 0  # kept batchable, yet no fixed-batch functions (a note, not a failure)
        self.cc = 0
        self.findings = []
        self.known = []  # fast seeds not run: they hit an open finding
        self.signatures = {}


class Outcome:
    def __init__(self, mismatches, run, ref=None, exact="torch"):
        self.mismatches, self.run, self.ref, self.exact = mismatches, run, ref, exact
        self.cc = self.jit_cc = False  # how the driver built the forms

    def signature(self):
        return frozenset((m.form, m.kind) for m in self.mismatches)


def param_values(prog):
    vals = []
    for p in prog.params():
        vals.extend(p.values)
    return vals


def check_program(env, prog, examples, expect_fixed=False, cc=False, jit_cc=False, recheck=True, stats=None,
                  timeout=60):
    """Runs one program through the driver and compares it with PyTorch (and,
    on a disagreement, with mpmath). Returns an Outcome."""
    text, _ = render(prog)
    params = param_values(prog)
    proc = env.start_driver(text, params, examples, cc, jit_cc)
    ref = torch_reference(prog, examples)  # while the driver runs
    ref32 = torch_reference(prog, examples, torch.float32)
    run = env.finish_driver(proc, timeout)
    o = _check_run(prog, examples, run, ref, ref32, params, expect_fixed, recheck, stats)
    o.cc, o.jit_cc = cc, jit_cc
    return o


def _check_run(prog, examples, run, ref, ref32, params, expect_fixed, recheck, stats):
    if run.compile_error is not None:
        return Outcome([Mismatch("bpc", "", "", 0, 0, 0, "compile_error", run.compile_error)], run, ref)
    bad = []
    if run.rc != 0 or not run.done:
        last = run.order[-1] if run.order else "start"
        bad.append(Mismatch(last, "", "", 0, 0, 0, "crash",
                            "driver exit status %s; stderr: %s" % (run.rc, run.stderr.strip()[-500:])))
        forms = [f for f in run.order[:-1]]
    else:
        forms = ALL_FORMS
    bad += compare(run, ref, ref32, params, expect_fixed, forms)
    if recheck and any(m.kind == "mismatch" for m in bad):
        mp = mp_reference(prog, examples, only=recheck_set(bad, len(examples)), fallback=ref)
        again = [m for m in bad if m.kind != "mismatch"] + \
            [m for m in compare(run, mp, ref32, None, False, forms) if m.kind == "mismatch"]
        if not any(m.kind == "mismatch" for m in again) and stats:
            stats.torch_off += 1
        return Outcome(again, run, mp, "mpmath at 50 digits where bpc disagreed, PyTorch float64 elsewhere")
    return Outcome(bad, run, ref)


def recheck_set(mismatches, nex):
    """(example, gradient index) of every gradient element that disagreed;
    an element of a summed or mean record is rechecked in every example."""
    out = set()
    for m in mismatches:
        if m.kind != "mismatch" or not str(m.index).split(",")[-1].startswith("g"):
            continue
        k = int(str(m.index).split(",")[-1][1:])
        if "," in str(m.index):
            out.add((int(str(m.index).split(",")[0]), k))
        else:
            out.update((e, k) for e in range(nex))
    return out


# ---- ill-typed variants ------------------------------------------------------------------------

ERROR_RE = re.compile(r"^(.*):(\d+):(\d+): error: (.*)$")


def check_mutation(env, mut):
    """bpc must exit 1, write nothing, and name the mutated line. Returns a
    list of problems (empty when it does all that)."""
    text, where = render(mut.prog)
    line = where[mut.stmt_index]
    path = os.path.join(env.tmp, "bad.bp")
    with open(path, "w") as f:
        f.write(text)
    outdir = os.path.join(env.tmp, "bad-out")
    shutil.rmtree(outdir, ignore_errors=True)
    os.makedirs(outdir)
    p = subprocess.run([env.bpc, path, "-o", os.path.join(outdir, "m.c")], capture_output=True, text=True,
                       timeout=60)
    problems = []
    first = p.stderr.split("\n", 1)[0]
    m = ERROR_RE.match(first)
    if p.returncode != 1:
        problems.append("exit status %d, not 1" % p.returncode)
    if not m:
        problems.append("the first line of stderr is not FILE:LINE:COL: error: ... (%r)" % first[:200])
    else:
        if m.group(1) != path:
            problems.append("the error names file %r, not %r" % (m.group(1), path))
        if int(m.group(2)) != line:
            problems.append("the error names line %s, but the mutated statement is on line %d" % (m.group(2), line))
        src = text.split("\n")[line - 1]
        col = int(m.group(3))
        if int(m.group(2)) == line and not 1 <= col <= len(src) + 1:
            problems.append("column %d is outside line %d (%d characters)" % (col, line, len(src)))
        if not re.search(mut.message, m.group(4), re.I):
            problems.append("the message %r does not match /%s/" % (m.group(4), mut.message))
        if int(m.group(2)) == line:  # the line (a window of a long one) and a caret under the column
            c0 = col - 1
            start = c0 - 60 if c0 > 100 else 0
            shown = "%5d | %s%s" % (line, "..." if start else "", src[start:start + 120])
            caret = "      | " + ("   " if start else "") + " " * (c0 - start) + "^"
            got = p.stderr.split("\n")[1:3]
            if got != [shown, caret]:
                problems.append("the source line and caret are not shown as expected: %r" % got)
    if os.listdir(outdir):
        problems.append("files were written: %s" % ", ".join(sorted(os.listdir(outdir))))
    return problems, p.stderr, line, text


# ---- reproducers ----------------------------------------------------------------------------------


def fmt_list(vals):
    return " ".join("%.17g" % v for v in vals)


def reproducer_text(prog, examples, ref, outcome, title, extra=()):
    """The .bp text of a reproducer: what is wrong and the expected numbers
    as comments, the examples and the expected values in #! lines (which
    --replay reads)."""
    text, _ = render(prog)
    head = ["# difftest: " + title]
    head += ["# " + line for line in extra]
    for m in outcome.mismatches[:8]:
        head.append("# " + str(m))
    if len(outcome.mismatches) > 8:
        head.append("# ... %d disagreements in all" % len(outcome.mismatches))
    names = []
    for p in prog.params():
        names.append(p.name)
    for e, (l, g, o) in enumerate(ref):
        head.append("# expected (%s), example %d: loss = %.17g" % (outcome.exact, e, l))
        k = 0
        for p in prog.params():
            n = len(p.values)
            head.append("#   dloss/d%s = [%s]" % (p.name, ", ".join("%.12g" % v for v in g[k:k + n])))
            k += n
        if o:
            head.append("#   outputs = [%s]" % ", ".join("%.12g" % v for v in o))
    head.append("# replay: /usr/bin/python3 tests/difftest/difftest.py --replay THIS_FILE")
    for e, ex in enumerate(examples):
        head.append("#! example " + fmt_list(ex))
    for e, (l, g, o) in enumerate(ref):
        head.append("#! loss %d %.17g" % (e, l))
        head.append("#! grad %d %s" % (e, fmt_list(g)))
        if o:
            head.append("#! out %d %s" % (e, fmt_list(o)))
    return "\n".join(head) + "\n" + text


def save_finding(env, stem, text):
    os.makedirs(env.findings, exist_ok=True)
    h = hashlib.sha1(text.encode()).hexdigest()[:8]
    path = os.path.join(env.findings, "%s-%s.bp" % (stem, h))
    with open(path, "w") as f:
        f.write(text)
    return path


def parse_reproducer(text):
    examples, ref = [], {}
    for line in text.splitlines():
        if not line.startswith("#! "):
            continue
        parts = line[3:].split()
        if parts[0] == "example":
            examples.append([float(x) for x in parts[1:]])
            continue
        e = int(parts[1])
        nums = [float(x) for x in parts[2:]]
        r = ref.setdefault(e, [0.0, [], []])
        if parts[0] == "loss":
            r[0] = nums[0]
        elif parts[0] == "grad":
            r[1] = nums
        elif parts[0] == "out":
            r[2] = nums
    return examples, [tuple(ref[e]) for e in sorted(ref)]


def replay(env, path):
    """A reproducer against its recorded expected values, in every form."""
    with open(path) as f:
        text = f.read()
    examples, ref = parse_reproducer(text)
    if not examples or len(ref) != len(examples):
        return [Mismatch(path, "", "", 0, 0, 0, "format", "no '#! example' and '#! loss' lines")]
    proc = env.start_driver(text, None, examples, name="replay")
    run = env.finish_driver(proc)
    if run.compile_error is not None:
        return [Mismatch("bpc", "", "", 0, 0, 0, "compile_error", run.compile_error)]
    bad = []
    forms = ALL_FORMS
    if run.rc != 0 or not run.done:
        bad.append(Mismatch(run.order[-1] if run.order else "start", "", "", 0, 0, 0, "crash",
                            "driver exit status %s" % run.rc))
        forms = run.order[:-1]
    return bad + compare(run, ref, None, None, False, forms)


def self_check(env, stats):
    """The comparison must notice a wrong gradient: a small model compiled
    with one gradient contribution scaled by 1.001 (the compiler's
    perturb_gradient test hook) must disagree with the reference in every
    form (the fixed-batch functions are built without the hook)."""
    from bpmodel import Assign, Expr, Input, Param, Program, ref as mkref
    dot = Expr("call", (), fn="dot")
    dot.args = [mkref("w", (3,)), mkref("x", (3,))]
    sq = Expr("pow", (), value=2.0)
    sq.args = [dot]
    prog = Program([Param("w", (3,), [1, 2, 3]), Input("x", (3,)), Assign("loss", sq, "loss")])
    examples = [[1, 2, 3], [0.5, 1, -1]]
    text, _ = render(prog)
    proc = env.start_driver(text, param_values(prog), examples, name="selfcheck", perturb="w")
    ref = torch_reference(prog, examples)
    run = env.finish_driver(proc)
    bad = compare(run, ref, torch_reference(prog, examples, torch.float32), None, False, ALL_FORMS)
    noticed = {m.form for m in bad if m.kind == "mismatch" and m.record == "bwd"}
    missed = [f for f in ALL_FORMS if f not in noticed]
    stats.regressions += 1
    if missed or run.compile_error or not run.done:
        stats.regressions_failed += 1
        print("FAIL self-check: a gradient scaled by 1.001 went unnoticed in %s" % (", ".join(missed) or run.stderr))
    elif env.verbose:
        print("ok self-check")


# ---- the modes -------------------------------------------------------------------------------------


def report_failure(env, stats, case, outcome, minimise=True, budget=60.0):
    import minimize

    sig = outcome.signature()
    seen = stats.signatures.get(sig, 0)
    stats.signatures[sig] = seen + 1
    forms = sorted({m.form for m in outcome.mismatches})
    kinds = sorted({m.kind for m in outcome.mismatches})
    print("FAIL seed %d: %s in %s" % (case.seed, "/".join(kinds), ", ".join(forms)))
    for m in outcome.mismatches[:6]:
        print("  " + str(m))
    prog, examples, out2 = case.prog, case.examples, outcome
    if minimise and seen < 3:
        prog, examples, out2 = minimize.minimise(env, case, outcome, budget)
    title = "seed %d: %s in %s" % (case.seed, "/".join(kinds), ", ".join(forms))
    text = reproducer_text(prog, examples, out2.ref, out2, title)
    path = save_finding(env, kinds[0], text)
    if prog is not case.prog:
        orig = reproducer_text(case.prog, case.examples, outcome.ref, outcome, title + " (as generated)")
        with open(path[:-3] + ".orig.bp", "w") as f:
            f.write(orig)
    print("  reproducer: %s" % os.path.relpath(path, ROOT))
    if prog is not case.prog:
        print("  ---\n" + "\n".join("  " + line for line in render(prog)[0].rstrip().split("\n")) + "\n  ---")
    stats.findings.append(path)


def run_case(env, stats, seed, cc=False, jit_cc=False, minimise=True, budget=60.0):
    case = gen.generate(seed)
    stats.programs += 1
    stats.batchable += case.batchable
    stats.cc += cc
    outcome = check_program(env, case.prog, case.examples, case.batchable, cc, jit_cc, stats=stats)
    nofixed = outcome.run.forms.get("jit-double", {}).get("nofixed")
    if nofixed is None and outcome.run.done:
        stats.fixed += 1
    elif case.batchable and outcome.run.done:
        stats.fixed_missing += 1
        print("NOTE seed %d: kept batchable, but the JIT has no fixed-batch functions: %s" % (seed, nofixed))
    if outcome.mismatches:
        stats.failed += 1
        report_failure(env, stats, case, outcome, minimise, budget)
    else:
        stats.passed += 1
        if env.verbose:
            print("ok seed %d" % seed)
    return case


def run_mutations(env, stats, case, count, rng):
    done = 0
    for _ in range(count * 20):
        if done == count:
            break
        mut = mutate.mutate(case, rng)
        if mut is None:
            continue
        done += 1
        stats.mutations += 1
        problems, stderr, line, text = check_mutation(env, mut)
        if problems:
            stats.mutations_failed += 1
            print("FAIL ill-typed variant (%s) of seed %d, line %d:" % (mut.kind, case.seed, line))
            for p in problems:
                print("  " + p)
            head = "# difftest: ill-typed variant (%s) of seed %d must fail on line %d\n# %s\n# bpc said: %s\n" % (
                mut.kind, case.seed, line, "\n# ".join(problems), stderr.split("\n", 1)[0])
            path = save_finding(env, "ill-typed", head + text)
            stats.findings.append(path)
            print("  reproducer: %s" % os.path.relpath(path, ROOT))
        elif env.verbose:
            print("ok ill-typed %s seed %d" % (mut.kind, case.seed))


def run_replays(env, stats, paths):
    for path in paths:
        stats.regressions += 1
        bad = replay(env, path)
        if bad:
            stats.regressions_failed += 1
            print("FAIL replay %s:" % os.path.relpath(path, ROOT))
            for m in bad[:6]:
                print("  " + str(m))
        elif env.verbose:
            print("ok replay %s" % os.path.relpath(path, ROOT))


def reproducers(sub):
    d = os.path.join(HERE, sub)
    if not os.path.isdir(d):
        return []
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".bp"))


def summary(stats, seconds, label):
    print("difftest: %d programs (%d with fixed-batch functions, %d kept batchable; %d also built by cc), "
          "%d disagreeing; %d ill-typed variants, %d mishandled; %d reproducers and self-checks, %d failing; "
          "%d times PyTorch was off and mpmath sided with bpc; %.1f s" % (
              stats.programs, stats.fixed, stats.batchable, stats.cc, stats.failed, stats.mutations,
              stats.mutations_failed, stats.regressions, stats.regressions_failed, stats.torch_off, seconds))
    if stats.findings:
        print("findings:\n  " + "\n  ".join(os.path.relpath(p, ROOT) for p in stats.findings))
    if stats.known:
        print("not run, known open findings: " + "; ".join(stats.known))
    if stats.fixed_missing:
        print("note: %d programs kept batchable got no fixed-batch functions" % stats.fixed_missing)
    passed = stats.passed + (stats.mutations - stats.mutations_failed) + (stats.regressions -
                                                                           stats.regressions_failed)
    failed = stats.failed + stats.mutations_failed + stats.regressions_failed
    print("%s: %d passed, %d failed" % (label, passed, failed))
    return failed == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bpc", default=os.path.join(ROOT, "build", "bpc"))
    ap.add_argument("--driver", default=os.path.join(ROOT, "build", "difftest", "driver"))
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "difftest"))
    ap.add_argument("--fast", action="store_true", help="the fixed seed set of make test")
    ap.add_argument("--seconds", type=float, help="random programs for this long")
    ap.add_argument("--seed", type=int, help="first seed of --seconds (default: from the clock)")
    ap.add_argument("--replay", nargs="+", metavar="FILE", help="replay reproducers")
    ap.add_argument("--show", type=int, metavar="SEED", help="print a generated program")
    ap.add_argument("--check", type=int, metavar="SEED", help="check one seed, with its ill-typed variants")
    ap.add_argument("--cc-every", type=int, default=20, help="--seconds: every Nth program also built by cc")
    ap.add_argument("--no-minimise", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    if args.show is not None:
        case = gen.generate(args.show)
        print(render(case.prog)[0], end="")
        print(values_text(gen_params(case), case.examples), end="")
        print("# batchable: %s" % case.batchable)
        return 0
    env = Env(args)
    stats = Stats()
    t0 = time.time()
    try:
        if args.replay:
            run_replays(env, stats, args.replay)
            return 0 if summary(stats, time.time() - t0, "difftest") else 1
        if args.check is not None:
            case = run_case(env, stats, args.check, cc=True, minimise=not args.no_minimise)
            run_mutations(env, stats, case, 10, random.Random(args.check))
            return 0 if summary(stats, time.time() - t0, "difftest") else 1
        if args.fast:
            self_check(env, stats)
            run_replays(env, stats, reproducers("regressions"))
            for seed in FAST_SEEDS:
                if seed in KNOWN_OPEN:
                    case = gen.generate(seed)
                    stats.known.append("seed %d (tests/difftest/%s)" % (seed, KNOWN_OPEN[seed]))
                else:
                    case = run_case(env, stats, seed, cc=seed == FAST_SEEDS[0], minimise=not args.no_minimise,
                                    budget=20.0)
                run_mutations(env, stats, case, FAST_MUTATIONS, random.Random(seed))
            return 0 if summary(stats, time.time() - t0, "difftest") else 1
        seconds = args.seconds if args.seconds is not None else 60.0
        seed = args.seed if args.seed is not None else int(time.time()) % 1000000 * 1000
        print("difftest: random programs for %.0f s from seed %d" % (seconds, seed))
        self_check(env, stats)
        run_replays(env, stats, reproducers("regressions") + reproducers("findings"))
        k = 0
        while time.time() - t0 < seconds:
            cc = args.cc_every > 0 and k % args.cc_every == args.cc_every - 1
            case = run_case(env, stats, seed + k, cc=cc, jit_cc=cc and k % (2 * args.cc_every) ==
                            2 * args.cc_every - 1, minimise=not args.no_minimise)
            run_mutations(env, stats, case, 2, random.Random(seed + k))
            k += 1
            if k % 100 == 0:
                print("... %d programs, %.0f s" % (k, time.time() - t0), flush=True)
        return 0 if summary(stats, time.time() - t0, "difftest") else 1
    finally:
        shutil.rmtree(env.tmp, ignore_errors=True)


def gen_params(case):
    return param_values(case.prog)


if __name__ == "__main__":
    sys.exit(main())
