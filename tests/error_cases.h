/* error_cases.h — one model per kind of user error and the exact message
 * bpc must print for it (file name model.bp). Used by test_errors.c and,
 * through the binary, by e2e.sh's no-output-file check. */
typedef struct ErrorCase {
  const char *name;
  const char *source;
  size_t source_len;
  const char *message;
} ErrorCase;

#define CASE(name, src, msg)                                                                                 \
  { name, src, sizeof(src) - 1, msg }
static const ErrorCase error_cases[] = {
    CASE("syntax", "param x\nloss = (x + ) * 2\n",
         "model.bp:2:13: error: unexpected ')'; expected an expression\n"
         "    2 | loss = (x + ) * 2\n"
         "      |             ^\n"),
    CASE("bad_token", "param x\nloss = x $ 2\n",
         "model.bp:2:10: error: unexpected character '$'\n"
         "    2 | loss = x $ 2\n"
         "      |          ^\n"),
    CASE("undefined_name", "param weight\nloss = wieght * 2\n",
         "model.bp:2:8: error: undefined name 'wieght'; did you mean 'weight'?\n"
         "    2 | loss = wieght * 2\n"
         "      |        ^\n"),
    CASE("redefinition", "param x\nx = 3\nloss = x\n",
         "model.bp:2:1: error: 'x' is already defined at line 1 (as a parameter)\n"
         "    2 | x = 3\n"
         "      | ^\n"),
    CASE("unknown_function", "param x\nloss = sigmod(x)\n",
         "model.bp:2:8: error: unknown function 'sigmod'; did you mean 'sigmoid'?\n"
         "    2 | loss = sigmod(x)\n"
         "      |        ^\n"),
    CASE("argument_count", "param x\nloss = exp(x, 2)\n",
         "model.bp:2:8: error: exp() takes 1 argument, but 2 were given\n"
         "    2 | loss = exp(x, 2)\n"
         "      |        ^\n"),
    CASE("argument_count_range", "param x[3]\nloss = sum(x, 0, 1)\n",
         "model.bp:2:8: error: sum() takes 1 or 2 arguments, but 3 were given\n"
         "    2 | loss = sum(x, 0, 1)\n"
         "      |        ^\n"),
    CASE("elementwise_shapes", "param a[3]\nparam b[4]\nloss = sum(a + b)\n",
         "model.bp:3:14: error: cannot compute [3] + [4]: the shapes do not match (shapes are aligned at the "
         "right, and each pair of dimensions must be equal or one of them 1)\n"
         "    3 | loss = sum(a + b)\n"
         "      |              ^\n"),
    CASE("matmul_shapes", "param W[3, 4]\nparam v[5]\nloss = sum(W @ v)\n",
         "model.bp:3:14: error: cannot compute [3,4] @ [5]: inner dimensions 4 and 5 differ\n"
         "    3 | loss = sum(W @ v)\n"
         "      |              ^\n"),
    CASE("non_scalar_loss", "param x[3]\nloss = x * 2\n",
         "model.bp:2:10: error: the loss must be a scalar, but this expression has shape [3]; reduce it with "
         "sum() or mean()\n"
         "    2 | loss = x * 2\n"
         "      |          ^\n"),
    CASE("missing_loss", "param x\ny = x * 2\n",
         "model.bp:2:1: error: the model has no loss; add a line such as 'loss = sum(x)'\n"
         "    2 | y = x * 2\n"
         "      | ^\n"),
    CASE("duplicate_loss", "param x\nloss = x\nloss = 2 * x\n",
         "model.bp:3:1: error: the loss is already defined at line 2; a model has exactly one loss\n"
         "    3 | loss = 2 * x\n"
         "      | ^\n"),
    CASE("zero_dim", "param x[0]\nloss = sum(x)\n",
         "model.bp:1:9: error: a dimension must be positive, got 0\n"
         "    1 | param x[0]\n"
         "      |         ^\n"),
    CASE("negative_dim", "dim N = -3\nparam x[N]\nloss = sum(x)\n",
         "model.bp:1:9: error: a dimension must be positive, got -3\n"
         "    1 | dim N = -3\n"
         "      |         ^\n"),
    CASE("huge_dim", "param x[1000000000]\nloss = sum(x)\n",
         "model.bp:1:9: error: dimension 1000000000 is too large (the limit is 100000000)\n"
         "    1 | param x[1000000000]\n"
         "      |         ^\n"),
    CASE("huge_tensor", "param x[100000, 100000]\nloss = sum(x)\n",
         "model.bp:1:7: error: 'x' would have 10000000000 elements; the limit is 100000000\n"
         "    1 | param x[100000, 100000]\n"
         "      |       ^\n"),
    CASE("initialiser_size", "param w[3] = [1, 2]\nloss = sum(w)\n",
         "model.bp:1:14: error: initialiser for 'w' has 2 values, but 'w' has shape [3] (3 values)\n"
         "    1 | param w[3] = [1, 2]\n"
         "      |              ^\n"),
    CASE("initialiser_rows", "param W[2, 2] = [[1, 2], [3]]\nloss = sum(W)\n",
         "model.bp:1:26: error: row 1 of the initialiser for 'W' must have 2 values\n"
         "    1 | param W[2, 2] = [[1, 2], [3]]\n"
         "      |                          ^\n"),
    CASE("non_constant_exponent", "param x\nparam y\nloss = x ^ y\n",
         "model.bp:3:12: error: the exponent of '^' must be a constant number\n"
         "    3 | loss = x ^ y\n"
         "      |            ^\n"),
    CASE("index_out_of_range", "param x[3]\nloss = x[3]\n",
         "model.bp:2:10: error: index 3 is out of range for axis 0 of shape [3] (valid: -3 to 2)\n"
         "    2 | loss = x[3]\n"
         "      |          ^\n"),
    CASE("non_constant_index", "param x[3]\nparam k\nloss = x[k]\n",
         "model.bp:3:10: error: an index must be a constant integer (numbers, dims and loop variables), but 'k' "
         "is a parameter\n"
         "    3 | loss = x[k]\n"
         "      |          ^\n"),
    CASE("unexpected_eof", "param x\nloss = (x + 1\n",
         "model.bp:2:14: error: unexpected end of file\n"
         "    2 | loss = (x + 1\n"
         "      |              ^\n"),
    /* A line that ends before its statement does: the caret just after its
       last token, the message what is missing there (issue 10, 0d); the
       same with and without a final newline. */
    CASE("missing_operand_at_end_of_line", "param w\nloss = w +\n",
         "model.bp:2:11: error: expected an expression after '+'\n"
         "    2 | loss = w +\n"
         "      |           ^\n"),
    CASE("missing_operand_at_end_of_file", "param w\nloss = w +",
         "model.bp:2:11: error: expected an expression after '+'\n"
         "    2 | loss = w +\n"
         "      |           ^\n"),
    CASE("missing_operand_before_comment", "param w\nloss = w *\t # half done\n\n",
         "model.bp:2:11: error: expected an expression after '*'\n"
         "    2 | loss = w *  # half done\n"
         "      |           ^\n"),
    CASE("missing_operand_of_minus", "param w\nloss = -\nx = 1\n",
         "model.bp:2:9: error: expected an expression after '-'\n"
         "    2 | loss = -\n"
         "      |         ^\n"),
    CASE("missing_initialiser_at_end_of_line", "param w ~\nloss = w\n",
         "model.bp:1:10: error: expected an initialiser (normal(mean, std), uniform(lo, hi), glorot, he or zeros) "
         "after '~'\n"
         "    1 | param w ~\n"
         "      |          ^\n"),
    CASE("missing_initialiser_at_end_of_file", "param w ~",
         "model.bp:1:10: error: expected an initialiser (normal(mean, std), uniform(lo, hi), glorot, he or zeros) "
         "after '~'\n"
         "    1 | param w ~\n"
         "      |          ^\n"),
    CASE("initialiser_not_a_name", "param w ~ 3\nloss = w\n",
         "model.bp:1:11: error: unexpected number; expected an initialiser (normal(mean, std), uniform(lo, hi), "
         "glorot, he or zeros)\n"
         "    1 | param w ~ 3\n"
         "      |           ^\n"),
    CASE("bare_output_at_end_of_line", "param w\noutput\nloss = w\n",
         "model.bp:2:7: error: expected a name after 'output'\n"
         "    2 | output\n"
         "      |       ^\n"),
    CASE("bare_output_at_end_of_file", "param w\nloss = w\noutput",
         "model.bp:3:7: error: expected a name after 'output'\n"
         "    3 | output\n"
         "      |       ^\n"),
    CASE("output_without_value", "param w\noutput y\nloss = w\n",
         "model.bp:2:9: error: expected '=' after 'y'\n"
         "    2 | output y\n"
         "      |         ^\n"),
    CASE("bare_param", "param  \nloss = 1\n",
         "model.bp:1:6: error: expected a name after 'param'\n"
         "    1 | param  \n"
         "      |      ^\n"),
    CASE("missing_dim_value", "dim N =\nparam w[N]\nloss = sum(w)\n",
         "model.bp:1:8: error: expected a number or a name after '='\n"
         "    1 | dim N =\n"
         "      |        ^\n"),
    CASE("missing_param_value", "param w =\nloss = w\n",
         "model.bp:1:10: error: expected a number or a [list] after '='\n"
         "    1 | param w =\n"
         "      |          ^\n"),
    CASE("missing_operand_before_semicolon", "param w\nloss = w + ; x = 1\n",
         "model.bp:2:12: error: unexpected ';'; expected an expression\n"
         "    2 | loss = w + ; x = 1\n"
         "      |            ^\n"),
    CASE("unclosed_call_at_end_of_file", "param w\nloss = sum(w,\n\n",
         "model.bp:2:14: error: unexpected end of file; expected an expression after ','\n"
         "    2 | loss = sum(w,\n"
         "      |              ^\n"),
    CASE("nul_byte", "param x\nloss = x\0\n",
         "model.bp:2:9: error: unexpected NUL byte (is this a text file?)\n"
         "    2 | loss = x?\n"
         "      |         ^\n"),
    CASE("long_name",
         "param "
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aa\nloss = 1\n",
         "model.bp:1:7: error: name is 200 characters long; the limit is 128\n"
         "    1 | param "
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaa\n"
         "      |       ^\n"),
    CASE("leading_underscore", "param _int\nloss = _int\n",
         "model.bp:1:7: error: '_int' cannot be used as a name (names must not start with '_')\n"
         "    1 | param _int\n"
         "      |       ^\n"),
    CASE("unknown_dim", "param x[N]\nloss = sum(x)\n",
         "model.bp:1:9: error: unknown dimension 'N' (declare it first: dim N = ...)\n"
         "    1 | param x[N]\n"
         "      |         ^\n"),
    CASE("unknown_initialiser", "param x ~ gauss(0, 1)\nloss = x\n",
         "model.bp:1:11: error: unknown initialiser 'gauss(...)' (use normal(mean, std) or uniform(lo, hi))\n"
         "    1 | param x ~ gauss(0, 1)\n"
         "      |           ^\n"),
    CASE("function_as_value", "param x\nloss = exp\n",
         "model.bp:2:8: error: 'exp' is a function; call it as exp(...)\n"
         "    2 | loss = exp\n"
         "      |        ^\n"),
    CASE("value_as_function", "param x\nloss = x(2)\n",
         "model.bp:2:8: error: 'x' is a parameter, not a function\n"
         "    2 | loss = x(2)\n"
         "      |        ^\n"),
    CASE("axis_out_of_range", "param x[3, 2]\nloss = sum(sum(x, 2))\n",
         "model.bp:2:19: error: axis 2 is out of range for shape [3,2] (valid: 0 to 1, or -2 to -1 from the end)\n"
         "    2 | loss = sum(sum(x, 2))\n"
         "      |                   ^\n"),
    CASE("nine_dimensions", "param x[1, 2, 1, 2, 1, 2, 1, 2, 3]\nloss = sum(x)\n",
         "model.bp:1:33: error: tensors have at most 8 dimensions\n"
         "    1 | param x[1, 2, 1, 2, 1, 2, 1, 2, 3]\n"
         "      |                                 ^\n"),
    CASE("leaky_relu_slope", "param x[3]\nparam a\nloss = sum(leaky_relu(x, a))\n",
         "model.bp:3:26: error: the slope of leaky_relu must be a constant number\n"
         "    3 | loss = sum(leaky_relu(x, a))\n"
         "      |                          ^\n"),
    CASE("dropout_rate_not_constant", "param x[3]\nparam p\nloss = sum(dropout(x, p))\n",
         "model.bp:3:23: error: the rate of dropout must be a constant number\n"
         "    3 | loss = sum(dropout(x, p))\n"
         "      |                       ^\n"),
    CASE("dropout_rate_range", "param x[3]\nloss = sum(dropout(x, 1))\n",
         "model.bp:2:23: error: dropout(x, p) needs 0 <= p < 1 (the share of elements dropped), got 1\n"
         "    2 | loss = sum(dropout(x, 1))\n"
         "      |                       ^\n"),
    CASE("clip_bounds", "param x[3]\nloss = sum(clip(x, 2, 1))\n",
         "model.bp:2:23: error: clip(x, lo, hi) needs lo <= hi, got 2 and 1\n"
         "    2 | loss = sum(clip(x, 2, 1))\n"
         "      |                       ^\n"),
    CASE("slice_empty", "param x[5]\nloss = sum(x[3:1])\n",
         "model.bp:2:15: error: the slice selects nothing from axis 0 of shape [5] (from 3 up to 1)\n"
         "    2 | loss = sum(x[3:1])\n"
         "      |               ^\n"),
    CASE("slice_step", "param x[5]\nloss = sum(x[::0])\n",
         "model.bp:2:16: error: a slice's step must be positive, got 0\n"
         "    2 | loss = sum(x[::0])\n"
         "      |                ^\n"),
    CASE("loop_bound", "param w\nloss = w\nfor i in 0..w {\n  h = i\n}\n",
         "model.bp:3:13: error: the loop's end must be a constant integer (numbers, dims and loop variables), but 'w' is a parameter\n"
         "    3 | for i in 0..w {\n"
         "      |             ^\n"),
    CASE("loop_backwards", "param w\nfor i in 3..1 {\n  h = w\n}\nloss = w\n",
         "model.bp:2:13: error: the range 3..1 runs backwards (a loop's start must not be after its end)\n"
         "    2 | for i in 3..1 {\n"
         "      |             ^\n"),
    CASE("unknown_kw", "param x[3]\nloss = sum(x, axes=0)\n",
         "model.bp:2:15: error: sum() has no option 'axes' (it takes axis=)\n"
         "    2 | loss = sum(x, axes=0)\n"
         "      |               ^\n"),
    CASE("duplicate_kw", "param x[3, 2]\nloss = sum(logsumexp(x, axis=0, axis=1))\n",
         "model.bp:2:33: error: axis= is given twice\n"
         "    2 | loss = sum(logsumexp(x, axis=0, axis=1))\n"
         "      |                                 ^\n"),
    CASE("fn_redefine", "def f(v) {\n  h = v * 2\n  h = h + 1\n  return h\n}\nparam x\nloss = f(x)\n",
         "model.bp:3:3: error: 'h' is already defined at line 2 (as a value) (in f(), called at model.bp:7:8)\n"
         "    3 |   h = h + 1\n"
         "      |   ^\n"),
    CASE("fn_recursion", "def f(v) = f(v) * 2\nparam x\nloss = f(x)\n",
         "model.bp:1:12: error: f() calls itself: recursion is not allowed (a loop can repeat a layer) (in f(), called at model.bp:3:8)\n"
         "    1 | def f(v) = f(v) * 2\n"
         "      |            ^\n"),
    CASE("fn_arity", "def f(v, w) = v * w\nparam x\nloss = f(x)\n",
         "model.bp:3:8: error: f() takes 2 arguments, but 1 was given\n"
         "    3 | loss = f(x)\n"
         "      |        ^\n"),
    /* a loop of trivial steps is bounded too, not only by the graph's nodes */
    CASE("loop_unrolls_too_far", "param x = 1\nh = x\nfor i in 0..1000000000 {\n  h = h * 1\n}\nloss = h\n",
         "model.bp:4:3: error: the loops and calls unroll to more than 200000 statements (the limit) (in the loop at "
         "line 3, i = 99998)\n"
         "    4 |   h = h * 1\n"
         "      |   ^\n"),
    CASE("loop_empty_too_long", "param x = 1\nfor i in 0..1000000000 {\n}\nloss = x\n",
         "model.bp:2:1: error: the loops and calls unroll to more than 200000 statements (the limit) (in the loop at "
         "line 2, i = 199998)\n"
         "    2 | for i in 0..1000000000 {\n"
         "      | ^\n"),
    CASE("loop_param", "for i in 0..2 {\n  param p\n}\nparam x\nloss = x\n",
         "model.bp:2:3: error: 'param' cannot be inside a loop (declare it before, at the top level of the file)\n"
         "    2 |   param p\n"
         "      |   ^\n"),
    CASE("fn_no_return", "def f(v) {\n  h = v * 2\n}\nparam x\nloss = f(x)\n",
         "model.bp:1:5: error: f() returns nothing: its body must end with 'return' and a value\n"
         "    1 | def f(v) {\n"
         "      |     ^\n"),
    CASE("fn_sees_param", "param W[2, 2]\ndef f(v) = v @ W\ninput x[2]\nloss = sum(f(x))\n",
         "model.bp:2:16: error: 'W' is a parameter of the model; a function sees only its arguments, its own values and dims (pass W as an argument) (in f(), called at model.bp:4:12)\n"
         "    2 | def f(v) = v @ W\n"
         "      |                ^\n"),
    CASE("fn_shape_error", "def f(v, M) = v @ M\nparam W[3, 2]\ninput x[2]\nloss = sum(f(x, W))\n",
         "model.bp:1:17: error: cannot compute [2] @ [3,2]: inner dimensions 2 and 3 differ (in f(), called at model.bp:4:12)\n"
         "    1 | def f(v, M) = v @ M\n"
         "      |                 ^\n"),
    CASE("reshape_size", "param x[6]\nloss = sum(reshape(x, [4, 2]))\n",
         "model.bp:2:23: error: cannot reshape [6] (6 elements) to [4,2] (8 elements)\n"
         "    2 | loss = sum(reshape(x, [4, 2]))\n"
         "      |                       ^\n"),
    CASE("concat_shapes", "param a[2, 3]\nparam b[2, 4]\nloss = sum(concat(a, b, axis=0))\n",
         "model.bp:3:22: error: concat(): argument 2 has shape [2,4], but the first has [2,3] (only the joined axis may differ)\n"
         "    3 | loss = sum(concat(a, b, axis=0))\n"
         "      |                      ^\n"),
    CASE("loop_loss", "param w\nfor i in 0..2 {\n  loss = w\n}\n",
         "model.bp:3:3: error: the loss cannot be inside a loop (define it at the top level of the file, from the values made here)\n"
         "    3 |   loss = w\n"
         "      |   ^\n"),
    CASE("loop_shape_error", "param W[2, 2, 3]\ninput x[2]\nh = x\nfor i in 0..2 {\n  h = h @ W[i]\n}\nloss = sum(h)\n",
         "model.bp:5:9: error: cannot compute [3] @ [2,3]: inner dimensions 3 and 2 differ (in the loop at line 4, i = 1)\n"
         "    5 |   h = h @ W[i]\n"
         "      |         ^\n"),
    CASE("fn_param_inside", "def f(v) {\n  param p\n  return v\n}\nparam x\nloss = f(x)\n",
         "model.bp:2:3: error: 'param' cannot be inside a function (declare it at the top level and pass it as an argument)\n"
         "    2 |   param p\n"
         "      |   ^\n"),
    CASE("dot_lengths", "param a[3]\nparam b[2]\nloss = dot(a, b)\n",
         "model.bp:3:8: error: cannot compute dot([3], [2]): lengths 3 and 2 differ\n"
         "    3 | loss = dot(a, b)\n"
         "      |        ^\n"),
    CASE("softmax_of_scalar", "param x\nloss = sum(softmax(x))\n",
         "model.bp:2:12: error: softmax() needs a vector or a matrix, but its argument is a scalar\n"
         "    2 | loss = sum(softmax(x))\n"
         "      |            ^\n"),
    CASE("cross_entropy_shapes", "param z[3]\ninput t[4]\nloss = softmax_cross_entropy(z, t)\n",
         "model.bp:3:8: error: softmax_cross_entropy() needs two arguments of the same shape, got [3] and "
         "[4]\n"
         "    3 | loss = softmax_cross_entropy(z, t)\n"
         "      |        ^\n"),
    CASE("transpose_vector", "param x[3]\nloss = sum(transpose(x))\n",
         "model.bp:2:12: error: transpose() needs a matrix or a tensor, but its argument has shape [3]\n"
         "    2 | loss = sum(transpose(x))\n"
         "      |            ^\n"),
    CASE("scale_with_at", "param x[3]\nloss = sum(2 @ x)\n",
         "model.bp:2:14: error: cannot compute scalar @ [3]: matrix products need vectors or matrices; use * "
         "to scale\n"
         "    2 | loss = sum(2 @ x)\n"
         "      |              ^\n"),
    CASE("glorot_vector", "param x[3] ~ glorot\nloss = sum(x)\n",
         "model.bp:1:14: error: glorot initialisation needs a matrix or a kernel, but 'x' has shape [3]\n"
         "    1 | param x[3] ~ glorot\n"
         "      |              ^\n"),
    CASE("fractional_dim", "param x[2.5]\nloss = sum(x)\n",
         "model.bp:1:9: error: a dimension must be a whole number, got 2.5\n"
         "    1 | param x[2.5]\n"
         "      |         ^\n"),
    CASE("conv_channels", "param K[4, 3, 3, 3]\ninput x[1, 8, 8]\nloss = sum(conv2d(x, K))\n",
         "model.bp:3:12: error: conv2d: input has 1 channel but the kernel expects 3 (its shape is [4,3,3,3])\n"
         "    3 | loss = sum(conv2d(x, K))\n"
         "      |            ^\n"),
    CASE("conv_not_image", "param K[4, 1, 3, 3]\ninput x[64]\nloss = sum(conv2d(x, K))\n",
         "model.bp:3:12: error: conv2d: the input must be an image [C, H, W], but it has shape [64]\n"
         "    3 | loss = sum(conv2d(x, K))\n"
         "      |            ^\n"),
    CASE("conv_kernel_rank", "param K[4, 3, 3]\ninput x[1, 8, 8]\nloss = sum(conv2d(x, K))\n",
         "model.bp:3:22: error: conv2d: the kernel must be [O, C, kh, kw], but it has shape [4,3,3]\n"
         "    3 | loss = sum(conv2d(x, K))\n"
         "      |                      ^\n"),
    CASE("conv_too_big", "param K[2, 1, 5, 5]\ninput x[1, 3, 3]\nloss = sum(conv2d(x, K))\n",
         "model.bp:3:12: error: conv2d: the 5x5 kernel does not fit in a 3x3 image\n"
         "    3 | loss = sum(conv2d(x, K))\n"
         "      |            ^\n"),
    CASE("conv_too_big_padded", "param K[2, 1, 5, 5]\ninput x[1, 3, 3]\nloss = sum(conv2d(x, K, padding=1, dilation=2))\n",
         "model.bp:3:12: error: conv2d: the 5x5 kernel (dilated to 9x9) does not fit in the 3x3 image padded by 1\n"
         "    3 | loss = sum(conv2d(x, K, padding=1, dilation=2))\n"
         "      |            ^\n"),
    CASE("conv_groups_divide", "param K[6, 2, 1, 1]\ninput x[4, 5, 5]\nloss = sum(conv2d(x, K, groups=3))\n",
         "model.bp:3:32: error: conv2d: groups=3 does not divide the input's 4 channels\n"
         "    3 | loss = sum(conv2d(x, K, groups=3))\n"
         "      |                                ^\n"),
    CASE("conv_groups_out", "param K[3, 2, 1, 1]\ninput x[4, 5, 5]\nloss = sum(conv2d(x, K, groups=2))\n",
         "model.bp:3:32: error: conv2d: groups=2 does not divide the kernel's 3 output channels\n"
         "    3 | loss = sum(conv2d(x, K, groups=2))\n"
         "      |                                ^\n"),
    CASE("conv_groups_channels", "param K[4, 1, 1, 1]\ninput x[4, 5, 5]\nloss = sum(conv2d(x, K, groups=2))\n",
         "model.bp:3:12: error: conv2d: input has 4 channels but the kernel expects 1 per group x 2 groups = 2\n"
         "    3 | loss = sum(conv2d(x, K, groups=2))\n"
         "      |            ^\n"),
    CASE("conv_bias", "param K[4, 1, 3, 3]\nparam b[3]\ninput x[1, 5, 5]\nloss = sum(conv2d(x, K, b))\n",
         "model.bp:4:25: error: conv2d: the bias must have one value per output channel, [4], but it has shape [3]\n"
         "    4 | loss = sum(conv2d(x, K, b))\n"
         "      |                         ^\n"),
    CASE("conv_stride_zero", "param K[4, 1, 3, 3]\ninput x[1, 5, 5]\nloss = sum(conv2d(x, K, stride=0))\n",
         "model.bp:3:32: error: conv2d: stride= must be at least 1, got 0\n"
         "    3 | loss = sum(conv2d(x, K, stride=0))\n"
         "      |                                ^\n"),
    CASE("conv_padding_negative", "param K[4, 1, 3, 3]\ninput x[1, 5, 5]\nloss = sum(conv2d(x, K, padding=-1))\n",
         "model.bp:3:33: error: conv2d: padding= must be at least 0, got -1\n"
         "    3 | loss = sum(conv2d(x, K, padding=-1))\n"
         "      |                                 ^\n"),
    CASE("conv_option", "param K[4, 1, 3, 3]\ninput x[1, 5, 5]\nloss = sum(conv2d(x, K, strides=2))\n",
         "model.bp:3:25: error: conv2d() has no option 'strides' (it takes stride=, padding=, dilation=, groups=)\n"
         "    3 | loss = sum(conv2d(x, K, strides=2))\n"
         "      |                         ^\n"),
    CASE("conv_option_twice", "param K[4, 1, 3, 3]\ninput x[1, 5, 5]\nloss = sum(conv2d(x, K, stride=2, stride=1))\n",
         "model.bp:3:35: error: stride= is given twice\n"
         "    3 | loss = sum(conv2d(x, K, stride=2, stride=1))\n"
         "      |                                   ^\n"),
    CASE("conv_option_pair", "param K[4, 1, 3, 3]\ninput x[1, 5, 5]\nloss = sum(conv2d(x, K, stride=[1, 2, 3]))\n",
         "model.bp:3:32: error: conv2d: stride= takes a number or two, [height, width]\n"
         "    3 | loss = sum(conv2d(x, K, stride=[1, 2, 3]))\n"
         "      |                                ^\n"),
    CASE("conv_option_nonconst", "param K[4, 1, 3, 3]\nparam s\ninput x[1, 5, 5]\nloss = sum(conv2d(x, K, stride=s))\n",
         "model.bp:4:32: error: conv2d's stride must be a constant integer (numbers, dims and loop variables), but 's' is a parameter\n"
         "    4 | loss = sum(conv2d(x, K, stride=s))\n"
         "      |                                ^\n"),
    CASE("conv1d_pair", "param K[4, 1, 3]\ninput x[1, 9]\nloss = sum(conv1d(x, K, stride=[1, 2]))\n",
         "model.bp:3:32: error: conv1d: stride= takes a number\n"
         "    3 | loss = sum(conv1d(x, K, stride=[1, 2]))\n"
         "      |                                ^\n"),
    CASE("conv1d_signal", "param K[4, 1, 3]\ninput x[9]\nloss = sum(conv1d(x, K))\n",
         "model.bp:3:12: error: conv1d: the input must be a signal [C, L], but it has shape [9]\n"
         "    3 | loss = sum(conv1d(x, K))\n"
         "      |            ^\n"),
    CASE("conv1d_kernel", "param K[4, 1, 3, 3]\ninput x[1, 9]\nloss = sum(conv1d(x, K))\n",
         "model.bp:3:22: error: conv1d: the kernel must be [O, C, k], but it has shape [4,1,3,3]\n"
         "    3 | loss = sum(conv1d(x, K))\n"
         "      |                      ^\n"),
    CASE("pool_too_big", "input x[1, 1, 1]\nparam w\nloss = w * sum(maxpool2d(x, 2))\n",
         "model.bp:3:16: error: maxpool2d: window 2 does not fit in a 1x1 image\n"
         "    3 | loss = w * sum(maxpool2d(x, 2))\n"
         "      |                ^\n"),
    CASE("pool_rect_too_big", "input x[1, 3, 2]\nparam w\nloss = w * sum(avgpool2d(x, [2, 3]))\n",
         "model.bp:3:16: error: avgpool2d: the 2x3 window does not fit in a 3x2 image\n"
         "    3 | loss = w * sum(avgpool2d(x, [2, 3]))\n"
         "      |                ^\n"),
    CASE("pool_not_image", "param v[8]\nloss = sum(maxpool2d(v, 2))\n",
         "model.bp:2:12: error: maxpool2d: the input must be an image [C, H, W], but it has shape [8]\n"
         "    2 | loss = sum(maxpool2d(v, 2))\n"
         "      |            ^\n"),
    CASE("pool_window_zero", "param v[1, 4, 4]\nloss = sum(maxpool2d(v, 0))\n",
         "model.bp:2:25: error: maxpool2d: the window must be at least 1, got 0\n"
         "    2 | loss = sum(maxpool2d(v, 0))\n"
         "      |                         ^\n"),
    CASE("pool_option", "param v[1, 4, 4]\nloss = sum(maxpool2d(v, 2, padding=1))\n",
         "model.bp:2:28: error: maxpool2d() has no option 'padding' (it takes stride=)\n"
         "    2 | loss = sum(maxpool2d(v, 2, padding=1))\n"
         "      |                            ^\n"),
    CASE("global_pool_not_image", "param v[4, 4]\nloss = sum(global_avgpool(v))\n",
         "model.bp:2:12: error: global_avgpool: the input must be an image [C, H, W], but it has shape [4,4]\n"
         "    2 | loss = sum(global_avgpool(v))\n"
         "      |            ^\n"),
    CASE("he_vector", "param v[4] ~ he\nloss = sum(v)\n",
         "model.bp:1:14: error: he initialisation needs a matrix or a kernel, but 'v' has shape [4]\n"
         "    1 | param v[4] ~ he\n"
         "      |              ^\n"),
    CASE("loop_input", "for i in 0..2 {\n  input x\n}\nparam w\nloss = w\n",
         "model.bp:2:3: error: 'input' cannot be inside a loop (declare it before, at the top level of the file)\n"
         "    2 |   input x\n"
         "      |   ^\n"),
    CASE("loop_dim", "for i in 0..2 {\n  dim D = 3\n}\nparam w\nloss = w\n",
         "model.bp:2:3: error: 'dim' cannot be inside a loop (declare it before, at the top level of the file)\n"
         "    2 |   dim D = 3\n"
         "      |   ^\n"),
    CASE("loop_output", "param w\nfor i in 0..2 {\n  output o = w\n}\nloss = w\n",
         "model.bp:3:3: error: 'output' cannot be inside a loop (declare it before, at the top level of the file)\n"
         "    3 |   output o = w\n"
         "      |   ^\n"),
    CASE("function_input", "param w\ndef f(a) {\n  input x\n  return a\n}\nloss = f(w)\n",
         "model.bp:3:3: error: 'input' cannot be inside a function (declare it at the top level and pass it as an argument)\n"
         "    3 |   input x\n"
         "      |   ^\n"),
};
