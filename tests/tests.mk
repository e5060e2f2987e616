# Tests: cmocka programs (one per stage or concern) and an end-to-end script.
TEST_CFLAGS = $(CSTD) $(CFLAGS) $(WARN) $(INCS) -Itests -DSAMPLES_DIR=\"$(CURDIR)/samples\" \
              -DTESTS_DIR=\"$(CURDIR)/tests\" -DBPC_BIN=\"$(CURDIR)/$(B)/bpc\"
TEST_LIBS   = -lcmocka $(LDLIBS)
TEST_NAMES  = $(basename $(notdir $(wildcard tests/test_*.c)))
TEST_BINS   = $(TEST_NAMES:%=$(B)/tests/%)

# every object that sees the compiler's structures is rebuilt when they change
$(B)/tests/harness.o: tests/harness.c tests/harness.h compiler/bpc.h compiler/ops.h support/support.h
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $(SAN) -c -o $@ $<
$(B)/tests/targets.o: tests/fuzz/targets.c tests/fuzz/targets.h runtime/runtime.h compiler/bpc.h compiler/ops.h \
                     cli/cli.h support/support.h
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $(SAN) -Itests/fuzz -c -o $@ $<
$(B)/tests/test_fuzz_regressions: tests/test_fuzz_regressions.c $(B)/tests/targets.o $(B)/tests/harness.o $(B)/libbpc.a
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $(SAN) -Itests/fuzz -o $@ $< $(B)/tests/targets.o $(B)/tests/harness.o $(B)/libbpc.a $(TEST_LIBS)
$(B)/tests/%: tests/%.c $(B)/tests/harness.o $(B)/libbpc.a $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $(SAN) -o $@ $< $(B)/tests/harness.o $(B)/libbpc.a $(TEST_LIBS)

# make test installs what a fresh Debian machine lacks (scripts/install-deps.sh
# does nothing when all is there), then builds and runs everything. Each
# program prints cmocka's summary; the last line totals every test.
test:
	@scripts/install-deps.sh
	@$(MAKE) --no-print-directory run-tests

run-tests: $(B)/bpc $(TEST_BINS)
	@bash tests/run.sh $(B)/bpc $(TEST_BINS)

unit: $(TEST_BINS)

# Regenerates the golden files; review the diff before committing.
golden: $(B)/bpc
	@for f in tests/golden/*.bp; do \
	  b=$${f%.bp}; (cd tests/golden && ../../$(B)/bpc $$(basename $$f) -o $$(basename $$b).c) || exit 1; \
	  (cd tests/golden && ../../$(B)/bpc $$(basename $$f) --emit loops -o $$(basename $$b).loops) || exit 1; \
	done; git --no-pager diff --stat -- tests/golden
