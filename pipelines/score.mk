# Scoring a directory or archive of images with a fuzzy model (pipelines/fz-score):
#
#   make score DIR=photos/ MODEL=fc.st [OUT=scores.tsv] [N=500] [JOBS=4] [HOSTS=hostsfile]
#
# OUT defaults to results/score/<name of DIR>.tsv. An interrupted run goes on where it
# stopped (the joblog in OUT.work, --resume); RESUME= starts afresh instead.

SCORE_OUT    = $(or $(OUT),results/score/$(basename $(notdir $(patsubst %/,%,$(DIR)))).tsv)
SCORE_N     ?= $(or $(N),500)
RESUME      ?= --resume

.PHONY: score
score: $(O)/bin/fz-prep $(O)/bin/fz-fuzzy
	@if [ -z "$(DIR)" ] || [ -z "$(MODEL)" ]; then \
	  echo "usage: make score DIR=images MODEL=model.st [OUT=file.tsv] [N=500] [JOBS=n] [HOSTS=file]" >&2; \
	  exit 2; fi
	@mkdir -p "$(dir $(SCORE_OUT))"
	PATH="$(CURDIR)/$(O)/bin:$$PATH" pipelines/fz-score -i "$(MODEL)" -N $(SCORE_N) $(RESUME) \
	  $(if $(JOBS),-j $(JOBS)) $(if $(HOSTS),--sshloginfile "$(HOSTS)") \
	  -o "$(SCORE_OUT)" "$(DIR)"
	@echo "fz: $$(($$(wc -l <"$(SCORE_OUT)") - 1)) images scored into $(SCORE_OUT)" >&2
