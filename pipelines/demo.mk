# The main job: everything from a fresh machine to a trained model and its report.
#   make demo                      installs what is missing, fetches MNIST, trains, reports
#   make demo DEMO_EPOCHS=20       longer
# Outputs in results/demo/.

DEMO_EPOCHS ?= 10
DEMO        := results/demo

.PHONY: demo demo-run
demo:
	@bash pipelines/deps.sh --if-missing
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory demo-run

demo-run: $(DEMO)/summary.md
	@cat $(DEMO)/summary.md

# Training writes a checkpoint after every epoch to the .ckpt file and resumes it (-R) when
# make is run again after an interruption; the model gets its final name only when done.
$(DEMO)/vae.st: data/mnist-train.npy data/mnist-test.npy
	@mkdir -p $(DEMO)
	$(FZ)/fz-train -a vae-mlp -r 1e-3 -m $(DEMO_EPOCHS) -s 0 -R -v data/mnist-test.npy \
	  -l $(DEMO)/train-log.tsv -o $@.ckpt data/mnist-train.npy
	mv $@.ckpt $@

$(DEMO)/summary.md: $(DEMO)/vae.st
	@{ echo "# fz demo: a 2-D VAE (vae-mlp) on MNIST"; echo; \
	   echo "Trained $(DEMO_EPOCHS) epochs on the 60,000 training digits; test losses per epoch:"; echo; \
	   echo '| epoch | train loss | test loss | test recon (BCE per image) | test KL | seconds |'; \
	   echo '|---|---|---|---|---|---|'; \
	   awk -F'\t' 'NR > 1 { printf "| %s | %.5f | %.5f | %.2f | %.3f | %.1f |\n", $$1, $$2, $$5, $$6, $$7, $$9 }' $(DEMO)/train-log.tsv; \
	   echo; echo "Model: $(DEMO)/vae.st; latent codes of the test set: $(DEMO)/test-latent.npy"; } > $@.tmp
	$(FZ)/fz-encode -i $(DEMO)/vae.st -o $(DEMO)/test-latent.npy data/mnist-test.npy
	mv $@.tmp $@
