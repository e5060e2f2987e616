/* ad_programs.h — small models that together use every op in every
 * orientation, each with a reason to exist: the autodiff tests check them
 * against finite differences (test_compiler.c) and the batched training
 * functions against the per-example ones (test_runtime.c). */
#ifndef BPC_TEST_AD_PROGRAMS_H
#define BPC_TEST_AD_PROGRAMS_H

static const char *const ad_programs[] = {
    /* unary elementwise, on a positive domain */
    "param x[4] ~ uniform(0.5, 2)\nloss = sum(exp(x)) + sum(log(x)) + sum(sqrt(x))\n",
    "param x[4] ~ uniform(-2, 2)\nloss = sum(abs(x)) + sum(sin(x)) + sum(cos(x)) + sum(tanh(x))\n",
    "param x[4] ~ uniform(-2, 2)\nloss = sum(sigmoid(x)) + sum(relu(x)) + sum(softplus(x)) + sum(-x)\n",
    "param x[4] ~ uniform(0.5, 2)\nloss = sum(x^3) + sum(x^0.5) + sum(x^-1) + sum(x^2.5) + sum(x^2)\n",
    /* broadcasting binary ops */
    "param a[2, 3] ~ uniform(0.5, 2)\nparam b[3] ~ uniform(0.5, 2)\nparam s ~ uniform(0.5, 2)\n"
    "loss = sum((a + b) * s) + sum((a - b) / s) + sum(a * b - s) + sum(b / a + s)\n",
    "param a[2, 3] ~ uniform(-2, 2)\nparam b[3] ~ uniform(-2, 2)\nparam s ~ uniform(-2, 2)\n"
    "loss = sum(max(a, b)) + sum(min(a, s)) + sum(max(s, b)) + sum(min(b, a))\n",
    /* reductions */
    "param A[3, 4] ~ uniform(-1, 1)\nloss = sum(sum(A, 0) * sum(A, 1)[1]) + mean(A) + sum(mean(A, 1)^2)\n",
    "param A[3, 4] ~ uniform(-1, 1)\nparam v[5] ~ uniform(-1, 1)\nloss = max(A) * min(v) + max(v) - min(A)\n",
    "param A[3, 4] ~ uniform(-1, 1)\nparam v[5] ~ uniform(-1, 1)\n"
    "loss = sum(logsumexp(A) * logsumexp(A)) + logsumexp(v)^2\n",
    "param A[3, 4] ~ uniform(-1, 1)\ninput T[3, 4]\nloss = sum(softmax(A) * T) + sum(log_softmax(A)^2)\n",
    "param z[5] ~ uniform(-1, 1)\ninput t[5]\nloss = softmax_cross_entropy(z, t) + cross_entropy(softmax(z), "
    "t)\n",
    /* matrix products in every orientation */
    "param A[2, 3] ~ uniform(-1, 1)\nparam B[3, 4] ~ uniform(-1, 1)\nparam C[4, 3] ~ uniform(-1, 1)\n"
    "loss = sum((A @ B)^2) + sum((transpose(B) @ transpose(A))^2) + sum((A @ transpose(C))^2) + "
    "sum((transpose(A) @ A)^2)\n",
    "param A[2, 3] ~ uniform(-1, 1)\nparam v[3] ~ uniform(-1, 1)\nparam u[2] ~ uniform(-1, 1)\n"
    "loss = sum((A @ v)^2) + sum((u @ A)^2) + sum((transpose(A) @ u)^2) + sum((v @ transpose(A))^2) + "
    "dot(v, v) * dot(u, A @ v)\n",
    /* indexing and fan-out */
    "param A[3, 4] ~ uniform(-1, 1)\nparam v[4] ~ uniform(-1, 1)\n"
    "loss = A[1, 2] * v[0] + sum(A[2] * v) + (A @ v)[1]^2 + sum(exp(v) * v * v)\n",
    /* a gradient written straight into grad while its sum is taken (emit_c's fused sums), and
       sums of scaled vectors taken as scaled sums */
    "param x[6] ~ normal(0, 1)\nm = max(x)\nloss = sum(exp(x - m)) + m + log(sum(exp(x - m)))\n",
    "param x[5] ~ normal(0, 1)\nparam k ~ uniform(0.5, 2)\ninput c[5]\n"
    "loss = sum(x * k) + sum(c / k) * sum(x) + sum(k * exp(x)) + sum((x * c) * k)^2\n",
    /* elementwise vectors computed inside the matrix-vector products that read them */
    "param A[3, 4] ~ uniform(-1, 1)\nparam u[3] ~ uniform(-1, 1)\ninput c[4]\n"
    "loss = sum((transpose(A) @ (u * u + 1))^2) + sum(((u - 1) @ A) * c) + 0.5 * sum((c - u @ A)^2)\n",
    /* least squares: A @ x and the gradient transpose(A) @ (A @ x - s) walk A together, in blocks of
       rows (70 = 64 + 6), with another term of the same gradient before or after */
    "param x[3] ~ normal(0, 1)\ninput T[70, 3]\ninput s[70]\nr = s - T @ x\n"
    "loss = 0.5 * sum(r * r) + sum(x * x)\n",
    "param x[3] ~ normal(0, 1)\ninput T[70, 3]\ninput s[70]\nq = sum(exp(x))\nr = s - T @ x\n"
    "loss = 0.5 * sum(r * r) * q\n",
    /* a scalar parameter times itself, among other terms of its gradient: the two equal terms
       were both stored first (acc 0), so the gradient lost one of them (tests/golden/scalar_ops.bp) */
    "param a = 0.5\nparam b = -1.5\ninput x\nu = sigmoid(a * x) + tanh(b) - relu(a - b)\n"
    "v = max(u, b) * min(a, x) / softplus(b) + abs(x)^3\nloss = log(exp(u) + 1) * v + sqrt(a * a + 1)\n",
    /* products and dot products with a constant operand (sums of the other operand) */
    "param A[2, 3] ~ uniform(-1, 1)\nparam x[3] ~ uniform(-1, 1)\nparam u[2] ~ uniform(-1, 1)\n"
    "loss = sum(A @ (x * 0 + 2)) + dot(x * 0 + 3, x) + sum((u * 0 + 1) @ A) + dot(x, x * 0 - 1) + "
    "sum(transpose(A) @ (u * 0 + 4)) + sum((x * 0 + 5) @ transpose(A)) + sum(A @ (transpose(A) * 0 + 1))"
    " + sum((A * 0 + 2) @ transpose(A)) + sum(transpose(A) @ (A * 0 + 3)) * sum(u)\n",
    /* user names that are also locals or arrays of the emitted code: row (logsumexp's row pointer) and
       at (positions of maxima in functions cut into parts) */
    "param row[2, 3] ~ normal(0, 1)\nparam at[3] ~ normal(0, 1)\n"
    "loss = sum(logsumexp(row)) + logsumexp(at) + max(at) * min(row)\n",
    /* user names that are also loop locals of the emitted code (v was one, and broke fused sums) */
    "param v[4] ~ normal(0, 1)\nparam s[4] ~ normal(0, 1)\nu = v * s\n"
    "loss = sum(u) + log(sum(exp(v))) + sum(u * v) + max(v) * sum(s * s)\n",
    /* a tensor read through a row view in the loop that computes the next value: that value must
       not take the tensor's storage (d = h - h[0] overwrote row 0 and read it back) */
    "param W[2, 2] ~ uniform(-1, 1)\nh = W * 3\nd = h - h[0]\nloss = sum(d * d)\n",
    "param W[3, 2] ~ uniform(-1, 1)\nh = exp(W)\nd = h - h[0]\nloss = d[1, 0] + sum(d[2] * h[1])\n",
    "param W[3, 2] ~ uniform(-1, 1)\nparam v[2] ~ uniform(-1, 1)\nh = W * v\nd = sigmoid(h) * h[2] - h[1]\n"
    "loss = sum(d * d)\n",
    /* names that are keywords, macros or types of C, C++, <math.h>, <stdint.h> or the generated code */
    "param NAN ~ uniform(0.5, 1)\nparam M_PI[2] ~ uniform(-1, 1)\nparam class ~ uniform(-1, 1)\n"
    "param int ~ uniform(-1, 1)\nparam m_forward ~ uniform(-1, 1)\ninput NULL\ninput SIZE_MAX[2]\ninput NAN_\n"
    "INT32_MIN = NAN * M_PI\ntypeof = INT32_MIN * SIZE_MAX + class\nasm = sin(typeof * NULL)\n"
    "M_E = sum(asm) * int + NAN_ * m_forward\nBP_NOINLINE = M_E * M_E + max(M_PI)\n"
    "loss = BP_NOINLINE + sum(typeof * typeof)\noutput M_H = M_E\n",
    /* per-example vectors in every product the batched pass rewrites: A @ x (a product with A
       transposed), transpose(A) @ u, dot of two per-example vectors and of one with a parameter */
    "param A[3, 4] ~ uniform(-1, 1)\nparam w[4] ~ uniform(-1, 1)\ninput x[4]\ninput u[3]\nh = A @ x\n"
    "loss = dot(h, u) + dot(x * w, x) + sum((transpose(A) @ u) * x) + dot(w, x)^2 + sum(x @ transpose(A))\n"
    "output y = h\n",
    /* a value named like the JIT's prefix (m), which the batched pass copies: renaming the copy
       (m_, which begins like the generated names) looped for ever (found by make difftest) */
    "input y[3]\nparam v[3] ~ uniform(0.5, 2)\nm = y / v\nm_x = m * v\nloss = sum(m * m) + sum(m_x)\n",
    /* parameters declared after a value whose loop would take a sum that reads them: the sum may not
       be taken there (the C read t and s before declaring them; found by make difftest) */
    "param W[2, 3] ~ uniform(-1, 1)\no = mean(W, 1)\nparam t[2] ~ uniform(-1, 1)\nparam s ~ uniform(0.5, 1)\n"
    "loss = sum(o * t) + sum(o * s) + sum(exp(o) * t * s)\n",
    /* a deep sigmoid/tanh chain with shared values */
    "param x = 0.3\nparam w = 0.7\na = sigmoid(w * x)\nb = tanh(a * w + x)\nc = a * b + sigmoid(b)\n"
    "loss = c * c + a\n",
    /* tensors of rank 3 with numpy's broadcasting: [2,1,3] * [4,1] is [2,4,3], read in three loops
       (the operands are repeated along different axes); [2,3,4] + [4] in two (rows of the last axis);
       a column [3,1] along the rows of [3,4] and a row [1,4] down its columns */
    "param p[2, 1, 3] ~ uniform(-1, 1)\nparam q[4, 1] ~ uniform(-1, 1)\nparam T[2, 3, 4] ~ uniform(-1, 1)\n"
    "param b[4] ~ uniform(-1, 1)\nloss = sum(sigmoid(p * q + p)) + sum((p - q)^2) + sum((T + b) * T)\n",
    "param a[3, 1] ~ uniform(0.5, 2)\nparam r[1, 4] ~ uniform(0.5, 2)\nparam c[3, 4] ~ uniform(0.5, 2)\n"
    "loss = sum(a * r + c) + sum(a / c) + sum(max(r, c) * a) + sum(exp(a - r))\n",
    /* reductions of rank 3: over each axis, all of it, over the last axis (logsumexp, softmax) */
    "param T[2, 3, 4] ~ uniform(-1, 1)\n"
    "loss = sum(sum(T, 1)^2) + sum(mean(T, 0)^2) + sum(sum(T, 2)^3) + max(T) * min(T) + mean(T)\n",
    "param Z[2, 3, 4] ~ uniform(-1, 1)\ninput Y[2, 3, 4]\n"
    "loss = sum(logsumexp(Z)^2) + sum(softmax(Z) * Y) + sum(log_softmax(Z)[1]^2)\n",
    /* a stack of matrices: each layer's weights a view of one rank-3 parameter, flattened too */
    "param W[3, 2, 2] ~ uniform(-1, 1)\ninput x[2]\nh = tanh(x @ W[0])\nh2 = sigmoid(h @ W[1])\n"
    "loss = sum((h2 @ W[2])^2) + W[2, 1, 0] * sum(flatten(W)[3] * h)\n",
    /* the axes of a tensor reversed (a gather, and its adjoint a spread), and numpy's matmul: a
       batch of matrices times a matrix or a vector (the rows merged, one product), a vector times a
       batch, a batch times a batch (one product per matrix, joined) */
    "param T[2, 3, 4] ~ uniform(-1, 1)\ninput X[4, 3, 2]\nparam w[2] ~ uniform(-1, 1)\n"
    "param M[2, 4, 3] ~ uniform(-1, 1)\nparam v[4] ~ uniform(-1, 1)\nU = transpose(T)\n"
    "loss = sum(U * X) + sum(sigmoid(U @ w)^2) + sum(transpose(U)[1] * T[0]) + sum((T @ M)^2) + "
    "sum((v @ M) * 2) + sum(tanh(T @ v))\n",
    /* the largest and smallest element of each example's value: row by row in the batch */
    "param w[4] ~ uniform(-1, 1)\ninput x[4]\ninput M[2, 3]\nloss = max(x * w) - min(x) * sum(w) + max(M) * w[1]\n",
    /* dropout (issue 14): of a per-example vector, of dropout's own result, of a per-example scalar and
       of a parameter (the batch gives each example its own mask of it); the identity outside training */
    "param W[3, 4] ~ uniform(-1, 1)\nparam b[4] ~ uniform(-1, 1)\ninput x[3]\n"
    "h = dropout(tanh(x @ W + b), 0.5)\n"
    "loss = sum(dropout(h, 0.25) * h) + dropout(sum(x * x), 0.5) + sum(dropout(b, 0.5) * x[0])\n"
    "output y = h\n",
    /* a helper only the gradient with respect to an input calls: softplus's derivative is sigmoid (the
       C for m_backward_inputs called m_sigmoid undeclared; found by make difftest) */
    "param w = 0.5\ninput x[3]\nloss = sum(softplus(x)) + w\n",
    /* a product of two per-example values: no batched form, so bpc train runs it one example at a
       time (the one program of this list that it does) */
    "param w = 1.5\ninput A[2, 3]\ninput B[3, 2]\nloss = sum(tanh(A @ B)) * w\n",
    /* the elementwise functions of issue 12, on inputs too (the batched pass) */
    "param x[6] ~ uniform(-2, 2)\ninput u[6]\n"
    "loss = sum(square(x) * u) + sum(log1p(x * x)) + sum(expm1(x) * u) + sum(erf(x * u)) + sum(elu(x) * x) + "
    "sum(gelu(x * u)) + sum(leaky_relu(x, 0.2) * u) + sum(clip(x, -1, 1.5) * x)\n",
    /* the language of issue 12: functions (a one-expression and a block one), a loop carrying h
       through the layers of a stack of matrices, slices with steps, negative indices, constant
       integer expressions */
    "dim L = 3\n"
    "param W[L, 4, 4] ~ normal(0, 0.5)\n"
    "param b[L, 4] ~ normal(0, 0.1)\n"
    "input x[4]\n"
    "input t[4]\n"
    "def dense(v, M, c) = tanh(v @ M + c)\n"
    "def residual(v, M) {\n"
    "  h = relu(v @ M)\n"
    "  return v + h\n"
    "}\n"
    "h = x\n"
    "for i in 0..L {\n"
    "  h = dense(h, W[i], b[i])\n"
    "}\n"
    "r = residual(h, W[L - 1])\n"
    "loss = mean((r - t) ^ 2) + sum(W[1:, ::2, 1:3] ^ 2) + sum(b[-1, 1::2] * h[:2]) + W[(L + 1) / 2, L % 2, -1]\n",
    /* reductions, softmax, logsumexp, max and min along named axes; reshape with -1, concat,
       stack, transpose with an order (checked by hand against PyTorch too) */
    "param T[2, 3, 4] ~ uniform(-1, 1)\n"
    "input Y[2, 3, 4]\n"
    "loss = sum(softmax(T, axis=1) * Y) + sum(logsumexp(T, axis=0)^2) + sum(max(T, axis=1)) * sum(min(T, axis=[0, 2])) + sum(sum(T, axis=[0, 2])^2) + mean(T, axis=-1)[1, 2] + sum(reshape(T, [4, -1])[3] * 2) + sum(concat(T[0], T[1] * 2, axis=1)^2) + sum(stack(T[0, 0], T[1, 2], axis=1)^3) + sum(transpose(T, [1, 2, 0])[2] * Y[0, 1, 0]) + softmax_cross_entropy(T, Y, axis=1)\n",
    /* one-element vectors and 1s in shapes broadcast like scalars (a [1] vector's broadcast was
       emitted as a scalar's: found by make fuzz) */
    "param v[1] ~ uniform(0.5, 1)\nparam M[2, 3] ~ uniform(0.5, 1)\nparam c[2, 1] ~ uniform(0.5, 1)\n"
    "param r[1, 3] ~ uniform(0.5, 1)\n"
    "loss = sum(v * M) + sum(M / v) + sum(c * v) + sum(r - v) + sum(exp(M * c * r * v))\n",
    /* an Elman RNN unrolled over the rows of a [T, D] input */
    "dim T = 4\n"
    "dim D = 3\n"
    "dim Hd = 5\n"
    "param Wx[D, Hd] ~ normal(0, 0.5)\n"
    "param Wh[Hd, Hd] ~ normal(0, 0.5)\n"
    "param Wo[Hd] ~ normal(0, 0.5)\n"
    "input xs[T, D]\n"
    "input y\n"
    "h = xs[0] @ Wx\n"
    "for t in 1..T {\n"
    "  h = tanh(xs[t] @ Wx + h @ Wh)\n"
    "}\n"
    "loss = (dot(h, Wo) - y)^2\n",
    /* convolution: padding and a bias, stride and dilation on a rectangular image with a
       rectangular kernel, groups, a 1x1 kernel, a kernel as big as the padded image */
    "param K[3, 2, 3, 3] ~ uniform(-1, 1)\nparam b[3] ~ uniform(-1, 1)\n"
    "param G[4, 1, 2, 3] ~ uniform(-1, 1)\nparam P[2, 3, 1, 1] ~ uniform(-1, 1)\n"
    "param F[1, 2, 7, 6] ~ uniform(-1, 1)\ninput x[2, 5, 4]\n"
    "h = tanh(conv2d(x, K, b, padding=1))\n"
    "loss = sum(h ^ 2) + sum(conv2d(x, G, stride=[2, 1], dilation=[1, 2], padding=[0, 1], groups=2) ^ 2)"
    " + sum(sigmoid(conv2d(h, P))) + sum(conv2d(x, F, padding=1) ^ 2)\n",
    /* depthwise convolution (groups = channels), conv1d, pooling with overlapping windows, average
       and global pooling, a convolution of a convolution's output */
    "param D[4, 1, 3, 3] ~ uniform(-1, 1)\nparam E[2, 4, 2, 2] ~ uniform(-1, 1)\n"
    "param S[3, 2, 3] ~ uniform(-1, 1)\nparam c[3] ~ uniform(-1, 1)\ninput x[4, 6, 7]\ninput s[2, 9]\n"
    "d = relu(conv2d(x, D, padding=1, groups=4))\n"
    "e = conv2d(maxpool2d(d, 3, stride=1), E, stride=2)\n"
    "loss = sum(e ^ 2) + sum(avgpool2d(d, [2, 3]) ^ 2) + sum(global_avgpool(d) * global_avgpool(x))"
    " + sum(tanh(conv1d(s, S, c, stride=2, padding=2, dilation=2)))\n",
};

enum { NUM_AD_PROGRAMS = sizeof ad_programs / sizeof ad_programs[0] };

#endif
