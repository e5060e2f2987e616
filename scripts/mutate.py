#!/usr/bin/env python3
"""make mutate: applies each mutation of tests/mutations.txt, one at a time,
to a copy of the tree (the user's checkout is never touched), runs `make
test` there, and reports the mutations the suite did not catch.

Usage: scripts/mutate.py [--only SUBSTRING] [--jobs N]
       scripts/mutate.py --check   only checks that each mutation's text occurs
                                   exactly once in its file (make test runs it,
                                   so a change that moves a text shows at once)
Exit status: 0 when every mutation was caught, 1 when one survived."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_mutations(path):
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            file, sep, rest = line.partition(" :: ")
            old, sep2, new = rest.partition(" => ")
            if not sep or not sep2:
                sys.exit(f"{path}:{n}: expected FILE :: TEXT => REPLACEMENT")
            out.append((n, file.strip(), old, new))
    return out


def stale(mutations):
    """The mutations whose text is not in their file exactly once."""
    out = []
    for n, path, old, _ in mutations:
        with open(os.path.join(ROOT, path)) as f:
            count = f.read().count(old)
        if count != 1:
            out.append(f"tests/mutations.txt:{n}: the text occurs {count} times in {path} (must be once)")
    return out


# A mutation can make a loop endless (a step that no longer reaches its end):
# the suite is then stopped, and the mutation counts as caught.
SUITE_TIMEOUT = 600


def run_suite(tree, env, jobs):
    """Runs make test in the mutated tree: (caught, what to print)."""
    proc = subprocess.Popen(["make", "-s", "-j" + jobs, "test"], cwd=tree, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        code = proc.wait(timeout=SUITE_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # make and every test it started
        proc.wait()
        return True, "caught (timed out)"
    return code != 0, "caught  " if code != 0 else "SURVIVED"


def main():
    only = None
    jobs = "2"
    args = sys.argv[1:]
    while args:
        a = args.pop(0)
        if a == "--check":
            problems = stale(read_mutations(os.path.join(ROOT, "tests", "mutations.txt")))
            print("\n".join(problems) if problems else "mutations: every text found once")
            sys.exit(1 if problems else 0)
        if a == "--only" and args:
            only = args.pop(0)
        elif a == "--jobs" and args:
            jobs = args.pop(0)
        else:
            sys.exit("usage: scripts/mutate.py [--only SUBSTRING] [--jobs N] | --check")
    mutations = read_mutations(os.path.join(ROOT, "tests", "mutations.txt"))
    if only:
        mutations = [m for m in mutations if only in m[1] or only in m[2]]
    work = tempfile.mkdtemp(prefix="bpc-mutate-")
    tree = os.path.join(work, "tree")
    # the committed tree and the working changes, without build outputs
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns("build", "build-*", ".git"))
    env = dict(os.environ, MAKEFLAGS="")
    base = subprocess.run(["make", "-s", "-j" + jobs, "test"], cwd=tree, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if base.returncode != 0:
        print(base.stdout[-3000:])
        sys.exit("mutate: the unmutated tree does not pass make test")
    survivors = []
    for n, path, old, new in mutations:
        target = os.path.join(tree, path)
        with open(target) as f:
            text = f.read()
        count = text.count(old)
        if count != 1:
            sys.exit(f"tests/mutations.txt:{n}: the text occurs {count} times in {path} (must be once)")
        with open(target, "w") as f:
            f.write(text.replace(old, new))
        caught, how = run_suite(tree, env, jobs)
        with open(target, "w") as f:
            f.write(text)
        print(f"{how} {path}:{n}: {new.strip()[:90]}", flush=True)
        if not caught:
            survivors.append((n, path, new))
    shutil.rmtree(work, ignore_errors=True)
    print(f"mutate: {len(mutations) - len(survivors)} of {len(mutations)} mutations caught")
    if survivors:
        print("survivors (write a test, or explain them in tests/MUTATIONS.md):")
        for n, path, new in survivors:
            print(f"  tests/mutations.txt:{n} {path}: {new.strip()}")
        sys.exit(1)


if __name__ == "__main__":
    main()
