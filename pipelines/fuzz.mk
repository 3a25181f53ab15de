# Fuzzing the readers (tests/fuzz/README.md):
#
#   make fuzz [FUZZ_SECONDS=60] [FUZZ=stream,json]   libFuzzer campaigns, clang + ASan/UBSan
#
# Each harness tests/fuzz/fuzz_<name>.c runs on tests/fuzz/corpus/<name>/; new inputs go
# to build-fuzz/new/<name>/ and only those adding coverage are merged back into the corpus.
# The replay binaries $(O)/fuzz/replay-<name> (gcc, no libFuzzer) are part of `make tests`
# and run the committed corpus in `make check` (tests/sh/test-fuzz-replay.sh).

FUZZ_NAMES   = stream model idx csv image json archive
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_O        = build-fuzz
FUZZ_SAN      = address,undefined
FUZZ_CFLAGS   = -std=c11 -Wall -Wextra -O1 -g -fno-omit-frame-pointer -D_DEFAULT_SOURCE -Ilib \
                $(shell pkg-config --cflags $(PKGS)) -fno-sanitize-recover=undefined
FUZZ_LIB_OBJ  = $(patsubst lib/%.c,$(FUZZ_O)/lib/%.o,$(LIB_SRC))
FUZZ_RUN      = $(if $(FUZZ),$(subst $(comma), ,$(FUZZ)),$(FUZZ_NAMES))
# Largest input tried per harness: the seeds are cut to it too.
FUZZ_MAXLEN_stream  = 16384
FUZZ_MAXLEN_model   = 32768
FUZZ_MAXLEN_idx     = 8192
FUZZ_MAXLEN_csv     = 8192
FUZZ_MAXLEN_image   = 16384
FUZZ_MAXLEN_json    = 8192
FUZZ_MAXLEN_archive = 32768
# The committed corpus stays small: the merge keeps only inputs reaching new edges (not
# new hit counts), cut to this length.
FUZZ_KEEP_LEN = 1024

.PHONY: fuzz fuzz-build
# Kept between runs (pattern-rule objects would otherwise be removed as intermediate).
.SECONDARY: $(FUZZ_LIB_OBJ)
tests: $(addprefix $(O)/fuzz/replay-,$(FUZZ_NAMES))

$(O)/fuzz:
	mkdir -p $@

$(O)/fuzz/replay-%: tests/fuzz/replay.c tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(O)/libfz.a \
                    $(wildcard lib/*.h) | $(O)/fuzz
	$(CC) $(CFLAGS) -Itests/fuzz $(LDFLAGS) -o $@ tests/fuzz/replay.c tests/fuzz/fuzz_$*.c \
	  $(O)/libfz.a $(LDLIBS)

$(FUZZ_O)/lib/%.o: lib/%.c $(wildcard lib/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,$(FUZZ_SAN) -c -o $@ $<

$(FUZZ_O)/fuzz-%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_LIB_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Itests/fuzz -fsanitize=fuzzer,$(FUZZ_SAN) -o $@ $< \
	  $(FUZZ_LIB_OBJ) $(LDLIBS)

fuzz-build: $(addprefix $(FUZZ_O)/fuzz-,$(FUZZ_NAMES))

fuzz: fuzz-build
	@for h in $(FUZZ_RUN); do \
	  case $$h in stream) m=$(FUZZ_MAXLEN_stream);; model) m=$(FUZZ_MAXLEN_model);; \
	    idx) m=$(FUZZ_MAXLEN_idx);; csv) m=$(FUZZ_MAXLEN_csv);; image) m=$(FUZZ_MAXLEN_image);; \
	    json) m=$(FUZZ_MAXLEN_json);; archive) m=$(FUZZ_MAXLEN_archive);; \
	    *) echo "fuzz: no harness '$$h'" >&2; exit 2;; esac; \
	  mkdir -p $(FUZZ_O)/new/$$h $(FUZZ_O)/log tests/fuzz/corpus/$$h; \
	  echo "fuzz: $$h for $(FUZZ_SECONDS) s (log $(FUZZ_O)/log/$$h.log)"; \
	  OPENBLAS_NUM_THREADS=1 $(FUZZ_O)/fuzz-$$h -max_total_time=$(FUZZ_SECONDS) \
	    -rss_limit_mb=2048 -max_len=$$m -timeout=10 -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_O)/$$h- \
	    $(FUZZ_O)/new/$$h tests/fuzz/corpus/$$h >$(FUZZ_O)/log/$$h.log 2>&1 \
	    || { tail -n 40 $(FUZZ_O)/log/$$h.log; echo "fuzz: $$h failed: see $(FUZZ_O)/$$h-*" >&2; exit 1; }; \
	  grep -E '^#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units' $(FUZZ_O)/log/$$h.log | tail -n 2; \
	  OPENBLAS_NUM_THREADS=1 $(FUZZ_O)/fuzz-$$h -merge=1 -use_counters=0 -max_len=$(FUZZ_KEEP_LEN) \
	    -rss_limit_mb=2048 \
	    tests/fuzz/corpus/$$h $(FUZZ_O)/new/$$h >>$(FUZZ_O)/log/$$h.log 2>&1; \
	done; \
	echo "fuzz: committed corpus $$(du -sb tests/fuzz/corpus | cut -f1) bytes (keep < 200000)"

.PHONY: fuzz-clean
clean: fuzz-clean
fuzz-clean:
	rm -rf $(FUZZ_O)
