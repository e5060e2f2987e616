# The differential test (tests/difftest/README.md): random .bp programs
# compiled by bpc in every form and compared with PyTorch and mpmath.
#   make difftest DIFF_SECONDS=N   random programs for N seconds; findings in build/difftest/findings/
#   make test                      runs the fixed seed set (tests/run.sh)
DIFF_SECONDS ?= 60
DIFF_ARGS    ?=
.PHONY: difftest difftest-fast

$(B)/difftest/driver: tests/difftest/driver.c $(B)/libbpc.a compiler/bpc.h runtime/runtime.h cli/cli.h support/support.h
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(CFLAGS) $(SAN) $(WARN) $(INCS) -o $@ $< $(B)/libbpc.a $(LDLIBS)

# tests/run.sh runs the fixed seed set with the driver beside the bpc it tests
run-tests: $(B)/difftest/driver
unit: $(B)/difftest/driver

difftest: $(B)/bpc $(B)/difftest/driver
	/usr/bin/python3 tests/difftest/difftest.py --seconds $(DIFF_SECONDS) --bpc $(B)/bpc \
	  --driver $(B)/difftest/driver --out $(B)/difftest $(DIFF_ARGS)

difftest-fast: $(B)/bpc $(B)/difftest/driver
	/usr/bin/python3 tests/difftest/difftest.py --fast --bpc $(B)/bpc --driver $(B)/difftest/driver --out $(B)/difftest
