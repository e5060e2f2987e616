# bpc — the backprop compiler. `make` builds build/bpc; `make test` runs every test.
CC      ?= cc
PREFIX  ?= /usr/local
CFLAGS  ?= -O2 -g
WARN     = -Wall -Wextra
CSTD     = -std=c11 -D_GNU_SOURCE
B        = build
INCS     = -Icompiler -Iruntime -I$(B)
LDLIBS   = -ltcc -lz -lm -ldl -lpthread

COMPILER_SRC = compiler/arena.c compiler/diag.c compiler/ast.c compiler/shape.c compiler/ir.c \
               compiler/simplify.c compiler/lower.c compiler/autodiff.c compiler/schedule.c \
               compiler/batch.c compiler/eval.c compiler/explain.c compiler/emit_c.c compiler/emit_dot.c compiler/driver.c compiler/atomic_write.c
RUNTIME_SRC  = $(wildcard runtime/*.c)
GRAMMAR_OBJ  = $(B)/parser.o $(B)/lexer.o
LIB_OBJ      = $(GRAMMAR_OBJ) $(COMPILER_SRC:%.c=$(B)/%.o) $(RUNTIME_SRC:%.c=$(B)/%.o)

.PHONY: all test unit e2e golden demo deps install clean format bench bench-train bench-kernels docs-images
FASHION = /usr/share/datasets/fashion-mnist
all: $(B)/bpc

$(B)/parser.c $(B)/parser.h: grammar/parser.y | $(B)
	bison -Wall -Werror -d -o $(B)/parser.c $<
$(B)/lexer.c: grammar/lexer.l | $(B)
	flex -o $@ $<
$(B)/parser.o: $(B)/parser.c compiler/bpc.h
	$(CC) $(CSTD) $(CFLAGS) $(WARN) $(INCS) -c -o $@ $<
# flex's skeleton has unused parameters and sign comparisons we do not own
$(B)/lexer.o: $(B)/lexer.c $(B)/parser.h compiler/bpc.h
	$(CC) $(CSTD) $(CFLAGS) $(WARN) -Wno-unused-parameter -Wno-sign-compare -Wno-unused-function $(INCS) -c -o $@ $<
# kernels and optimiser loops: optimised hard, with reassociation so
# reductions vectorise and FMA contraction (which -std=c11 turns off)
HOT_CFLAGS = -O3 -g -ffp-contract=fast -fno-math-errno -fno-trapping-math -fassociative-math -fno-signed-zeros
$(B)/runtime/kernels.o: runtime/kernels.c runtime/kernels.h | $(B)
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(HOT_CFLAGS) $(WARN) $(INCS) -c -o $@ $<
$(B)/runtime/optim.o: runtime/optim.c runtime/runtime.h compiler/bpc.h | $(B)
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(HOT_CFLAGS) $(WARN) $(INCS) -c -o $@ $<
$(B)/%.o: %.c compiler/bpc.h compiler/cli.h $(wildcard runtime/*.h) | $(B)
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(CFLAGS) $(WARN) $(INCS) -c -o $@ $<
$(B)/libbpc.a: $(LIB_OBJ)
	ar rcs $@ $^
$(B)/bpc: $(B)/compiler/main.o $(B)/libbpc.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
$(B):
	mkdir -p $(B)

include tests/tests.mk

deps:
	scripts/install-deps.sh

# The first command of the README: train the Fashion-MNIST MLP from the shell.
demo:
	scripts/install-deps.sh --demo
	$(MAKE) $(B)/bpc
	$(B)/bpc train samples/fashion_mlp.bp \
	  --data image=$(FASHION)/train-images-idx3-ubyte.gz --data label=$(FASHION)/train-labels-idx1-ubyte.gz \
	  --test image=$(FASHION)/t10k-images-idx3-ubyte.gz --test label=$(FASHION)/t10k-labels-idx1-ubyte.gz \
	  --epochs 5 --batch 64 --optim sgd --lr 0.1

format:
	clang-format -i compiler/*.c compiler/*.h runtime/*.c runtime/*.h tests/*.c tests/*.h

install: $(B)/bpc
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(B)/bpc $(DESTDIR)$(PREFIX)/bin/bpc

clean:
	rm -rf $(B)

# Benchmarks (not tests): see bench/RESULTS.md.
bench-train: $(B)/bpc
	scripts/install-deps.sh --bench
	bench/train_bench.sh $(B)/bpc
$(B)/kernel_bench: bench/kernel_bench.c $(B)/runtime/kernels.o
	$(CC) $(CSTD) -O2 $(WARN) $(INCS) -o $@ $^
bench-kernels: $(B)/kernel_bench
	$(B)/kernel_bench

# The pictures in docs/learning.md, drawn by bpc graph (needs Graphviz).
docs-images: $(B)/bpc
	$(B)/bpc graph samples/xyz.bp --format png -o docs/images/xyz.png
	$(B)/bpc graph samples/apple_orange.bp --format png -o docs/images/apple_orange.png
	$(B)/bpc graph samples/toy_net.bp --format png -o docs/images/toy_net.png
	$(B)/bpc graph samples/hinge.bp --set phi=1,2,3 --set y=1 --format png -o docs/images/hinge.png
	$(B)/bpc graph samples/two_layer.bp --set x=0.6,0.9 --set t=0,0,1 --format png -o docs/images/two_layer.png
