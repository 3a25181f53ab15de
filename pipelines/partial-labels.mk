# Test accuracy of the fuzzy CVAE against the fraction of unlabeled training data, with both
# meanings of "unlabeled" that fz-mask offers:
#   fixed    a fixed random subset of the rows keeps its labels, the others never have any
#            (fz-mask --labeled 1-F): the usual semi-supervised setting;
#   redrawn  every row keeps its labels but each epoch uses them with probability 1-F, drawn
#            anew (fz-mask --redraw 1-F): the partial-labeling experiment of the article this
#            follows; over the epochs the model sees every label, so it is a weaker test.
# A third series, "fixed, labeled mean", trains on the fixed subsets with the fuzzy loss
# averaged over the labeled rows of each batch (fz-train --fuzzy-norm labeled) instead of
# the whole batch, so that it keeps its weight when labels are few;
# and a run with exactly 1,000 labeled rows (100 per digit, fz-mask --labeled-count 1000
# --stratify), again fixed and redrawn (1,000 of 54,000 per epoch).
#
#   make partial-labels                      fractions 0 0.5 0.8 0.9 0.95, seed 0, 10 epochs
#   make partial-labels QUICK=1              fractions 0 0.5 0.9, 5 epochs (results/partial-labels-quick)
#   make partial-labels PL_FRACTIONS="0 0.5 0.99" SEEDS="0 1 2" EPOCHS=30
#
# Settings: those of the mnist-fuzzy pipeline (pipelines/mnist-fuzzy.mk) but 10 epochs, with
# the same training, validation and test streams. The fuzzy loss is averaged over the batch (fz-train
# --fuzzy-norm batch), so with fewer labels it weighs less against the VAE's loss.
# Outputs in results/partial-labels/: per run the model, log and test metrics; accuracy.tsv
# (the table), accuracy.png (the plot) and summary.md.

PL_DIR       := results/partial-labels$(if $(filter 1,$(QUICK)),-quick)
PL_FRACTIONS ?= $(if $(filter 1,$(QUICK)),0 0.5 0.9,0 0.5 0.8 0.9 0.95)
PL_SEEDS     := $(or $(SEEDS),0)
PL_EPOCHS    := $(or $(EPOCHS),$(if $(filter 1,$(QUICK)),5,10))
PL_TRAIN      = -a fcvae-mlp -z $(MF_LATENT) --gamma $(MF_GAMMA) --beta $(MF_BETA) \
                --schedule cos:$(PL_EPOCHS):0 -m $(PL_EPOCHS)
# With no label masked the two modes are the same run: it is trained once, as fixed-0.
PL_RUNS       = $(foreach s,$(PL_SEEDS),$(foreach f,$(PL_FRACTIONS) n1000,fixed-$(f)-s$(s)) \
                  $(foreach f,$(filter-out 0,$(PL_FRACTIONS)) n1000,redrawn-$(f)-s$(s) fixedl-$(f)-s$(s)))

.PHONY: partial-labels
partial-labels: all $(PL_DIR)/summary.md
	@cat $(PL_DIR)/summary.md

# fixed-0.9-s0 -> mode fixed, fraction 0.9, seed 0
pl_mode = $(word 1,$(subst -, ,$(1)))
pl_frac = $(word 2,$(subst -, ,$(1)))
pl_seed = $(patsubst s%,%,$(word 3,$(subst -, ,$(1))))
# the stream of a run: fixedl trains on the fixed subsets
pl_data = $(patsubst fixedl,fixed,$(call pl_mode,$(1)))-$(call pl_frac,$(1))

# The masked training stream of a mode and fraction (n1000: exactly 1,000 labeled rows).
$(PL_DIR)/tr-%.npy: $(MF_DIR)/tr.npy | $(FZ)/fz-mask
	@mkdir -p $(PL_DIR)
	@mode=$(word 1,$(subst -, ,$*)); f=$(word 2,$(subst -, ,$*)); \
	 if [ $$f = n1000 ]; then \
	   if [ $$mode = fixed ]; then opt="--labeled-count 1000 --stratify"; \
	   else opt="--redraw $$(awk 'BEGIN { printf "%.9g", 1000 / 54000 }')"; fi; \
	 else \
	   keep=$$(awk -v f=$$f 'BEGIN { printf "%.9g", 1 - f }'); \
	   if [ $$mode = fixed ]; then opt="--labeled $$keep"; \
	   elif [ $$f = 0 ]; then opt=""; else opt="--redraw $$keep"; fi; \
	 fi; \
	 echo "$(FZ)/fz-mask $$opt -s 1 -o $@ $<"; $(FZ)/fz-mask $$opt -s 1 -o $@ $<

$(PL_DIR)/config.txt: FORCE
	@mkdir -p $(PL_DIR)
	@echo "fz-train $(PL_TRAIN)" > $@.tmp
	@if cmp -s $@.tmp $@; then rm $@.tmp; else mv $@.tmp $@; fi

# The training stream of a run is named from the run's name: a second expansion.
.SECONDEXPANSION:
$(PL_DIR)/%.st: $(PL_DIR)/config.txt | $(MF_DIR)/va-10.npy \
                $$(PL_DIR)/tr-$$(call pl_data,$$*).npy $(FZ)/fz-train
	@if [ -f $@.ckpt ] && [ $@.ckpt -ot $(PL_DIR)/config.txt ]; then rm -f $@.ckpt; fi
	$(FZ)/fz-train $(PL_TRAIN) $(if $(filter fixedl,$(call pl_mode,$*)),--fuzzy-norm labeled) \
	  -s $(call pl_seed,$*) -R -q \
	  -v $(MF_DIR)/va-10.npy -l $(PL_DIR)/$*.log.tsv -o $@.ckpt \
	  $(PL_DIR)/tr-$(call pl_data,$*).npy
	mv $@.ckpt $@

$(PL_DIR)/%.test.tsv: $(PL_DIR)/%.st | $(MF_DIR)/te-10.npy $(FZ)/fz-fuzzy $(FZ)/fz-eval
	$(FZ)/fz-fuzzy -i $< $(MF_DIR)/te-10.npy | $(FZ)/fz-eval --classes --tsv > $@.tmp
	mv $@.tmp $@

# Keep the models and masked streams (made by pattern rules, they would be removed as
# intermediate files).
.SECONDARY: $(foreach r,$(PL_RUNS),$(PL_DIR)/$(r).st) \
            $(foreach m,fixed redrawn,$(foreach f,$(PL_FRACTIONS) n1000,$(PL_DIR)/tr-$(m)-$(f).npy))

# unlabeled fraction, then the mean test accuracy over the seeds of each mode
$(PL_DIR)/accuracy.tsv: $(foreach r,$(PL_RUNS),$(PL_DIR)/$(r).test.tsv)
	@{ printf 'unlabeled\tfixed\tredrawn\tfixed_labeled_mean\n'; \
	  for f in $(PL_FRACTIONS) n1000; do \
	    u=$$f; [ $$f = n1000 ] && u=$$(awk 'BEGIN { printf "%.6f", 1 - 1000 / 54000 }'); \
	    printf '%s' "$$u"; \
	    for mode in fixed redrawn fixedl; do \
	      r=$$mode; [ $$f = 0 ] && r=fixed; \
	      for s in $(PL_SEEDS); do awk -F'\t' '$$1 == "accuracy" { print $$2 }' $(PL_DIR)/$$r-$$f-s$$s.test.tsv; done | \
	        awk '{ s += $$1 } END { printf "\t%.4f", s / NR }'; \
	    done; printf '\n'; \
	  done; } > $@.tmp
	@mv $@.tmp $@

$(PL_DIR)/accuracy.png: $(PL_DIR)/accuracy.tsv | $(FZ)/fz-plot
	$(FZ)/fz-plot lines -x unlabeled -y fixed,redrawn,fixed_labeled_mean \
	  -L "fixed labeled subset,labels redrawn every epoch,fixed subset - fuzzy loss over labeled rows" \
	  --xlabel "fraction of the training labels masked" --ylabel "MNIST test accuracy" \
	  -t "Fuzzy CVAE: test accuracy against masked training labels (seeds $(PL_SEEDS), mean)" $< $@

$(PL_DIR)/summary.md: $(PL_DIR)/accuracy.tsv $(PL_DIR)/accuracy.png pipelines/partial-labels.mk
	@{ echo "# partial-labels: accuracy against the fraction of unlabeled training data"; echo; \
	   echo "Fuzzy CVAE as in mnist-fuzzy, $(PL_EPOCHS) epochs (\`$(PL_TRAIN)\`), seeds $(PL_SEEDS);"; \
	   echo "MNIST test accuracy (%). *fixed*: a fixed random subset keeps its labels"; \
	   echo "(\`fz-mask --labeled 1-F\`); *redrawn*: each epoch uses each row's labels with"; \
	   echo "probability 1-F (\`fz-mask --redraw 1-F\`). The last row has exactly 1,000 labels"; \
	   echo "(100 per digit when fixed)."; echo; \
	   echo "*fixed, labeled mean*: the fixed subsets with the fuzzy loss averaged over the"; \
	   echo "labeled rows of a batch (\`--fuzzy-norm labeled\`) rather than all its rows."; echo; \
	   echo "| labels masked | fixed subset | redrawn every epoch | fixed, labeled mean |"; echo "|---:|---:|---:|---:|"; \
	   awk -F'\t' 'NR > 1 { printf "| %s | %.2f | %.2f | %.2f |\n", ($$1 ~ /^0\.98/ ? "1,000 labels" : $$1), 100 * $$2, 100 * $$3, 100 * $$4 }' $<; \
	   echo; echo "Each cell is the mean over the seeds. With few labels a single run can end with a"; \
	   echo "digit that no term wins (its recall 0, its codes inside other terms' domains: see the"; \
	   echo "per-class rows of the runs' .test.tsv), which shows as a dip; run more seeds"; \
	   echo "(\`SEEDS=\"0 1 2\"\`) before reading a difference at 0.9 or above."; \
	   echo; echo "![accuracy against unlabeled fraction](accuracy.png)"; echo; \
	   echo "Reproduce: \`make partial-labels\` (\`QUICK=1\`, \`SEEDS=\`, \`EPOCHS=\`, \`PL_FRACTIONS=\`)."; \
	 } > $@.tmp
	@mv $@.tmp $@
