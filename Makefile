# bpc — the backprop compiler. `make` builds build/bpc; `make test` runs every test.
CC      ?= cc
PREFIX  ?= /usr/local
CFLAGS  ?= -O2 -g
SAN     ?=
WARN     = -Wall -Wextra
CSTD     = -std=c11 -D_GNU_SOURCE
B        = build
INCS     = -Isupport -Icompiler -Iruntime -Icli -I$(B)
LDLIBS   = -ltcc -lz -lm -ldl -lpthread -rdynamic
# Open MPI's plugin is built where mpicc is installed (scripts/install-deps.sh installs it)
MPICC      := $(shell command -v mpicc 2>/dev/null)
MPI_PLUGIN  = $(if $(MPICC),$(B)/libbpc-mpi.so)

# the layers (compiler/bpc.h's opening comment): support/ under everything;
# compiler/ and runtime/ each on support/ alone; cli/ on all of them
SUPPORT_SRC  = $(wildcard support/*.c)
COMPILER_SRC = compiler/diag.c compiler/ast.c compiler/shape.c compiler/ops.c compiler/ir.c \
               compiler/simplify.c compiler/window.c compiler/lower.c compiler/autodiff.c compiler/schedule.c compiler/plan.c compiler/team.c \
               compiler/batch.c compiler/eval.c compiler/explain.c compiler/emit_c.c compiler/emit_loader.c compiler/emit_dot.c compiler/driver.c
# mpi_plugin.c is built with mpicc into libbpc-mpi.so, never into bpc (runtime/dist.c)
RUNTIME_SRC  = $(filter-out runtime/mpi_plugin.c,$(wildcard runtime/*.c))
# the command line: every command but main (cli/main.c) goes into the library too, for the tests
CLI_SRC      = cli/options.c cli/outputs.c cli/build.c cli/commands.c cli/inspect.c cli/params.c
GRAMMAR_OBJ  = $(B)/parser.o $(B)/lexer.o
LIB_OBJ      = $(GRAMMAR_OBJ) $(SUPPORT_SRC:%.c=$(B)/%.o) $(COMPILER_SRC:%.c=$(B)/%.o) $(RUNTIME_SRC:%.c=$(B)/%.o) \
               $(CLI_SRC:%.c=$(B)/%.o)
# each layer is compiled seeing only the headers it may include, so an
# include across the layers fails to build
$(B)/support/%.o:  INCS = -Isupport
$(B)/compiler/%.o: INCS = -Isupport -Icompiler
$(B)/runtime/%.o:  INCS = -Isupport -Iruntime

.PHONY: all test run-tests unit e2e golden demo demo-cnn deps sanitize fuzz install clean format bench bench-ad bench-compile bench-train bench-kernels bench-blas bench-threads bench-cnn bench-dist docs-images mutate
FASHION = /usr/share/datasets/fashion-mnist
all: $(B)/bpc $(MPI_PLUGIN)

$(B)/parser.c $(B)/parser.h: grammar/parser.y | $(B)
	bison -Wall -Werror -d -o $(B)/parser.c $<
$(B)/lexer.c: grammar/lexer.l | $(B)
	flex -o $@ $<
$(B)/parser.o: $(B)/parser.c compiler/bpc.h support/support.h
	$(CC) $(CSTD) $(CFLAGS) $(SAN) $(WARN) $(INCS) -c -o $@ $<
# flex's skeleton has unused parameters and sign comparisons we do not own
$(B)/lexer.o: $(B)/lexer.c $(B)/parser.h compiler/bpc.h support/support.h
	$(CC) $(CSTD) $(CFLAGS) $(SAN) $(WARN) -Wno-unused-parameter -Wno-sign-compare -Wno-unused-function $(INCS) -c -o $@ $<
# kernels and optimiser loops: optimised hard, with reassociation so
# reductions vectorise and FMA contraction (which -std=c11 turns off);
# loops start on a 32-byte boundary, the front end's fetch block, or a
# short inner loop can straddle two (outer's did, and ran a third slower
# with the same instructions: bench/RESULTS.md, batch 1)
HOT_CFLAGS = -O3 -g -falign-loops=32 -ffp-contract=fast -fno-math-errno -fno-trapping-math -fassociative-math -fno-signed-zeros
$(B)/runtime/kernels.o $(B)/runtime/conv.o: $(B)/runtime/%.o: runtime/%.c runtime/kernels.h | $(B)
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(HOT_CFLAGS) $(SAN) $(WARN) $(INCS) -c -o $@ $<
$(B)/runtime/optim.o: runtime/optim.c runtime/runtime.h runtime/kernels.h support/support.h | $(B)
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(HOT_CFLAGS) $(SAN) $(WARN) $(INCS) -c -o $@ $<
$(B)/%.o: %.c support/support.h compiler/bpc.h compiler/ops.h cli/cli.h $(wildcard runtime/*.h) | $(B)
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(CFLAGS) $(SAN) $(WARN) $(INCS) -c -o $@ $<
# made afresh: ar only adds members, so an object of a file since moved or
# deleted would stay in the archive and could win at link time
$(B)/libbpc.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^
$(B)/bpc: $(B)/cli/main.o $(B)/libbpc.a
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDLIBS)
# the Open MPI plugin (runtime/dist.c loads it under mpirun)
$(B)/libbpc-mpi.so: runtime/mpi_plugin.c runtime/runtime.h support/support.h | $(B)
	$(MPICC) $(CSTD) $(CFLAGS) $(WARN) -Isupport -Iruntime -fPIC -shared -o $@ $<
$(B):
	mkdir -p $(B)

include tests/tests.mk
include tests/difftest/difftest.mk

deps:
	scripts/install-deps.sh

# Mutation testing (not part of make test; a few minutes per mutation, and a
# suite still running after 10 minutes is stopped and counts as caught):
# every mutation in tests/mutations.txt, applied to a copy of the tree, must
# make the suite fail. MUTATE_ONLY=TEXT runs the ones whose file or text
# contains TEXT.
mutate:
	scripts/install-deps.sh
	scripts/mutate.py $(if $(MUTATE_ONLY),--only '$(MUTATE_ONLY)')

# Everything built with AddressSanitizer and UndefinedBehaviorSanitizer
# (clang) into build-san/, the whole test suite run on it, and the emitted
# C of every sample run under valgrind.
SAN_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
sanitize:
	scripts/install-deps.sh --sanitize
	$(MAKE) B=build-san CC=clang CFLAGS="-O1 -g" SAN="$(SAN_FLAGS)" build-san/bpc $(MPI_PLUGIN:$(B)/%=build-san/%) unit
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  bash tests/run.sh build-san/bpc $(TEST_NAMES:%=build-san/tests/%)
	bash tests/valgrind_samples.sh build/bpc

# The first command of the README: train the Fashion-MNIST MLP from the shell.
demo:
	scripts/install-deps.sh --demo
	$(MAKE) $(B)/bpc
	$(B)/bpc train samples/fashion_mlp.bp \
	  --data image=$(FASHION)/train-images-idx3-ubyte.gz --data label=$(FASHION)/train-labels-idx1-ubyte.gz \
	  --test image=$(FASHION)/t10k-images-idx3-ubyte.gz --test label=$(FASHION)/t10k-labels-idx1-ubyte.gz \
	  --epochs 5 --batch 64 --optim sgd --lr 0.1

# The convolutional network of samples/fashion_cnn.bp: 5 epochs of Adam at
# lr 0.001, batch 64 (bench/RESULTS.md has its time and accuracy).
demo-cnn:
	scripts/install-deps.sh --demo
	$(MAKE) $(B)/bpc
	$(B)/bpc train samples/fashion_cnn.bp \
	  --data image=$(FASHION)/train-images-idx3-ubyte.gz --data label=$(FASHION)/train-labels-idx1-ubyte.gz \
	  --test image=$(FASHION)/t10k-images-idx3-ubyte.gz --test label=$(FASHION)/t10k-labels-idx1-ubyte.gz \
	  --epochs 5 --batch 64 --optim adam --lr 0.001 --schedule cosine

format:
	clang-format -i support/*.c support/*.h compiler/*.c compiler/*.h runtime/*.c runtime/*.h cli/*.c cli/*.h \
	  tests/*.c tests/*.h tests/fuzz/*.c tests/fuzz/*.h bench/*.c

install: $(B)/bpc $(MPI_PLUGIN)
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(B)/bpc $(DESTDIR)$(PREFIX)/bin/bpc
	$(if $(MPI_PLUGIN),install -d $(DESTDIR)$(PREFIX)/lib/bpc && install -m 755 $(MPI_PLUGIN) $(DESTDIR)$(PREFIX)/lib/bpc/)

clean:
	rm -rf $(B) build-san build-fuzz

# Benchmarks (not tests): see bench/RESULTS.md.
bench-train: $(B)/bpc $(B)/peak
	scripts/install-deps.sh --bench
	bench/train_bench.sh $(B)/bpc $(B)/peak
$(B)/kernel_bench: bench/kernel_bench.c $(B)/runtime/kernels.o $(B)/runtime/conv.o
	$(CC) $(CSTD) -O2 $(WARN) $(INCS) -o $@ $^
bench-kernels: $(B)/kernel_bench
	$(B)/kernel_bench
# bpc's matrix product against Debian's OpenBLAS and BLIS (bench/RESULTS.md's choice of kernel)
$(B)/blas_bench: bench/blas_bench.c $(B)/runtime/kernels.o $(B)/runtime/conv.o
	scripts/install-deps.sh --bench
	$(CC) $(CSTD) -O2 $(WARN) -Iruntime -I/usr/include/x86_64-linux-gnu/openblas-pthread -o $@ $< \
	  $(B)/runtime/kernels.o $(B)/runtime/conv.o /usr/lib/x86_64-linux-gnu/libopenblas.so.0 -lblis -lm -lpthread
bench-blas: $(B)/blas_bench
	OPENBLAS_NUM_THREADS=1 BLIS_NUM_THREADS=1 $(B)/blas_bench
# The parameters' phase of a step (sum and update) on one thread and two, without the model
$(B)/param_phase: bench/param_phase.c | $(B)
	$(CC) $(CSTD) -O3 $(WARN) -o $@ $< -lpthread
bench-threads: $(B)/param_phase
	$(B)/param_phase 1
	$(B)/param_phase 2

# The pictures in docs/learning.md, drawn by bpc graph (needs Graphviz).
docs-images: $(B)/bpc
	$(B)/bpc graph samples/xyz.bp --format png -o docs/images/xyz.png
	$(B)/bpc graph samples/apple_orange.bp --format png -o docs/images/apple_orange.png
	$(B)/bpc graph samples/toy_net.bp --format png -o docs/images/toy_net.png
	$(B)/bpc graph samples/hinge.bp --set phi=1,2,3 --set y=1 --format png -o docs/images/hinge.png
	$(B)/bpc graph samples/two_layer.bp --set x=0.6,0.9 --set t=0,0,1 --format png -o docs/images/two_layer.png

# Fuzzing (libFuzzer, clang): make fuzz FUZZ_SECONDS=N runs every target for
# N seconds from the seeds; findings land in build-fuzz/findings/ and, once
# fixed, belong in tests/fuzz/regressions/ (replayed by make test).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = compile csv idx params npy
fuzz:
	scripts/install-deps.sh --sanitize
	$(MAKE) B=build-fuzz CC=clang CFLAGS="-O1 -g" SAN="-fsanitize=fuzzer-no-link,address,undefined" build-fuzz/libbpc.a
	@for t in $(FUZZ_TARGETS); do \
	  clang $(CSTD) -O1 -g -fsanitize=fuzzer,address,undefined $(INCS) -Itests/fuzz -o build-fuzz/fuzz_$$t \
	    tests/fuzz/fuzz_$$t.c tests/fuzz/targets.c build-fuzz/libbpc.a $(LDLIBS) || exit 1; \
	done
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p build-fuzz/corpus/$$t build-fuzz/findings/$$t; \
	  cp tests/fuzz/seeds/$$t/* tests/fuzz/regressions/$$t/* build-fuzz/corpus/$$t/ 2>/dev/null; \
	  if [ $$t = compile ]; then cp tests/golden/*.bp build-fuzz/corpus/compile/; cp samples/*.bp build-fuzz/corpus/compile/; fi; \
	  echo "== fuzzing $$t for $(FUZZ_SECONDS) s"; \
	  build-fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 \
	    -artifact_prefix=build-fuzz/findings/$$t/ build-fuzz/corpus/$$t >build-fuzz/$$t.log 2>&1; \
	  status=$$?; grep -E '^Done|^==[0-9]+==ERROR|^SUMMARY' build-fuzz/$$t.log; \
	  if [ $$status -ne 0 ]; then echo "fuzz_$$t found a problem: build-fuzz/$$t.log"; exit 1; fi; \
	done
$(B)/ad_bench: bench/ad_bench.c $(B)/libbpc.a
	$(CC) $(CSTD) -O2 $(WARN) $(INCS) -o $@ $< $(B)/libbpc.a $(LDLIBS)
bench-ad: $(B)/bpc $(B)/ad_bench
	bench/ad_bench.sh
$(B)/peak: bench/peak.c | $(B)
	$(CC) $(CSTD) -O2 -ffp-contract=fast $(WARN) -o $@ $<
# the CNN of samples/fashion_cnn.bp (and a narrower one) against PyTorch, and as a fraction of the peak
bench-cnn: $(B)/bpc $(B)/peak
	scripts/install-deps.sh --bench
	bench/cnn_bench.sh $(B)/bpc $(B)/peak
# 1 rank against 2 under mpirun (docs/distributed.md)
bench-dist: $(B)/bpc $(MPI_PLUGIN) $(B)/peak
	scripts/install-deps.sh --bench
	bench/dist_bench.sh $(B)/bpc $(B)/peak
bench: bench-ad bench-compile bench-train bench-kernels bench-blas bench-threads bench-cnn bench-dist
$(B)/compile_bench: bench/compile_bench.c $(B)/libbpc.a
	$(CC) $(CSTD) -O2 $(WARN) $(INCS) -o $@ $< $(B)/libbpc.a $(LDLIBS)
bench-compile: $(B)/compile_bench
	@mkdir -p $(B)/bench/1k $(B)/bench/10k $(B)/bench/100k
	/usr/bin/python3 bench/gen_models.py $(B)/bench/1k 1000
	/usr/bin/python3 bench/gen_models.py $(B)/bench/10k 10000
	/usr/bin/python3 bench/gen_models.py $(B)/bench/100k 100000
	$(B)/compile_bench $(B)/bench/1k/chain.bp $(B)/bench/10k/chain.bp $(B)/bench/100k/chain.bp
