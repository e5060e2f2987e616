"""Writes the generated benchmark models: a deep scalar chain of N
statements (models/chain.bp) and a stack of many small layers
(models/smallnet.bp). Their hand-written counterparts, hand/chain.c and
hand/smallnet.c, compute the same functions with loops.
Usage: python3 bench/gen_models.py OUTDIR STATEMENTS"""
import sys

K = 100  # scalar weights, reused round-robin
LAYERS, WIDTH = 100, 4


def chain(n):
    lines = ["# A deep scalar chain: %d statements mixing sigmoid, tanh, mul, add." % n,
             "param w[%d] ~ normal(0, 0.5)" % K, "param x0 = 0.5", "v0 = x0 * 1", "v1 = tanh(x0)", "v2 = sigmoid(x0)"]
    for i in range(3, n + 3):
        k, op = i % K, i % 4
        if op == 0:
            lines.append("v%d = sigmoid(v%d * w[%d] + 0.1)" % (i, i - 1, k))
        elif op == 1:
            lines.append("v%d = tanh(v%d + v%d * w[%d])" % (i, i - 1, i - 2, k))
        elif op == 2:
            lines.append("v%d = v%d * v%d + w[%d]" % (i, i - 1, i - 2, k))
        else:
            lines.append("v%d = v%d + 0.5 * v%d" % (i, i - 1, i - 3))
    lines.append("loss = v%d" % (n + 2))
    return "\n".join(lines) + "\n"


def smallnet():
    lines = ["# %d layers of %dx%d: small tensors, many of them." % (LAYERS, WIDTH, WIDTH), "input x[%d]" % WIDTH]
    for k in range(LAYERS):
        lines.append("param W%d[%d, %d] ~ normal(0, 0.6)" % (k, WIDTH, WIDTH))
        lines.append("param b%d[%d] ~ normal(0, 0.1)" % (k, WIDTH))
    prev = "x"
    for k in range(LAYERS):
        lines.append("h%d = tanh(%s @ W%d + b%d)" % (k, prev, k, k))
        prev = "h%d" % k
    lines.append("loss = sum(%s * %s)" % (prev, prev))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    out, n = sys.argv[1], int(sys.argv[2])
    open(out + "/chain.bp", "w").write(chain(n))
    open(out + "/smallnet.bp", "w").write(smallnet())
