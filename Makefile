# The two commands of the README: `make run` (serve on the embedded default) and `make test`.
# Both create .venv and install what they need on a fresh machine. The Dockerfile runs `make install`
# too, so the image and a laptop install the project the same way.

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
# train: PyTorch for the Celery worker that `make run` starts (and for the tests)
EXTRAS ?= cpu,train
BIN := $(VENV)/bin
# pip.conf on our machines lists local mirrors that are often empty; their warnings are noise.
PIP := $(BIN)/pip install --quiet --disable-pip-version-check
QUIET := 2>&1 | { grep -v "^WARNING: Location '" || true; }

.PHONY: run test install dev lint clean fuzz bench bench-serving bench-training bench-classification bench-detection \
	bench-fraud bench-recommendation bench-translation bench-captioning bench-memory bench-overhead bench-dashboard \
	bench-request-path bench-int8

# `make run PORT=8100 HOST=0.0.0.0`; DLSERVE_PORT / DLSERVE_HOST work too. Only values given on the
# command line count: many shells export HOST (the machine's name) and some platforms PORT.
RUN_FLAGS := $(if $(filter command line,$(origin HOST)),--host $(HOST)) \
	$(if $(filter command line,$(origin PORT)),--port $(PORT))

run: install
	$(BIN)/dlserve serve $(strip $(RUN_FLAGS))

test: dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

install: $(VENV)/.installed-$(EXTRAS)

dev: $(VENV)/.installed-$(EXTRAS)-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-$(EXTRAS): pyproject.toml | $(BIN)/python
	$(PIP) -e ".[$(EXTRAS)]" $(QUIET)
	touch $@

$(VENV)/.installed-$(EXTRAS)-dev: $(VENV)/.installed-$(EXTRAS) pyproject.toml
	$(PIP) -e ".[$(EXTRAS),dev]" $(QUIET)
	touch $@

# Benchmarks (not part of `make test`): results are written up in BENCHMARKS.md.
# BentoML, a baseline of the serving benchmark, gets a virtualenv of its own: it pins its own web stack.
BENTO_VENV ?= .venv-bento
# So does Ray Serve, a peer of the overhead benchmark.
RAY_VENV ?= .venv-ray

bench: bench-serving bench-overhead bench-training bench-classification bench-detection bench-fraud bench-recommendation \
	bench-translation bench-captioning bench-memory bench-dashboard bench-int8 bench-request-path bench-distributed

bench-training: dev
	$(BIN)/python benchmarks/training.py --repeat 3

# samples/s of one process and of two (config devices=2, torchrun, gloo) on the CPU (BENCHMARKS.md)
.PHONY: bench-distributed
bench-distributed: dev
	$(BIN)/python benchmarks/distributed.py --n 6000 --epochs 1

# Image classification quality through the job API (BENCHMARKS.md): MNIST, then the bounded CPU run of CIFAR-10.
bench-classification: dev
	mkdir -p var
	$(BIN)/python benchmarks/classification.py --dataset mnist --json var/bench-classification-mnist.json
	$(BIN)/python benchmarks/classification.py --dataset cifar10 --json var/bench-classification-cifar10.json

# Object detection quality through the job API (BENCHMARKS.md): the seeded MNIST detection set, then coco-mini.
bench-detection: dev
	mkdir -p var
	$(BIN)/python benchmarks/detection.py --train 20000 --val 500 --config '{"epochs": 5}' --coco-mini --threads 1 \
		--json var/bench-detection.json

bench-serving: dev $(BENTO_VENV)/.installed
	mkdir -p var
	$(BIN)/python benchmarks/serving.py --bento-venv $(BENTO_VENV) --json var/bench-serving.json

# What each server costs per request with a model that costs nothing (BENCHMARKS.md): dlserve (V2 and the task
# API), a naive FastAPI endpoint, BentoML and Ray Serve at concurrency 1, 8, 32 and 128. OVERHEAD_ARGS="--duration 3"
# for a quick look.
bench-overhead: dev $(BENTO_VENV)/.installed $(RAY_VENV)/.installed
	mkdir -p var
	$(BIN)/python benchmarks/overhead.py --bento-venv $(BENTO_VENV) --ray-venv $(RAY_VENV) \
		--json var/bench-overhead.json --markdown var/bench-overhead.md $(OVERHEAD_ARGS)

# Where dlserve's own time goes per request on the hot paths (V2 infer, the task API), with the same trivial model:
# Python calls per request on the event loop by phase, and the CPU split (event loop, other threads, load generator).
bench-request-path: dev
	mkdir -p var
	$(BIN)/python benchmarks/request_path.py --json var/bench-request-path.json

$(RAY_VENV)/.installed:
	$(PYTHON) -m venv $(RAY_VENV)
	$(RAY_VENV)/bin/pip install --quiet --disable-pip-version-check "ray[serve]" onnxruntime numpy $(QUIET)
	touch $@

$(BENTO_VENV)/.installed:
	$(PYTHON) -m venv $(BENTO_VENV)
	$(BENTO_VENV)/bin/pip install --quiet --disable-pip-version-check bentoml onnxruntime pillow numpy $(QUIET)
	touch $@

# Schema-driven fuzzing of the whole OpenAPI (schemathesis) against a fresh server: positive and negative
# cases, 2 x FUZZ_EXAMPLES per operation (about 21,700 requests by default), then FUZZ_CHAINS chains of calls along
# the OpenAPI links (stateful). Prints the seed; FUZZ_SEED replays the stateless part.
# FUZZ_DATABASE_URL: an empty PostgreSQL database to run on (it is migrated and filled); default a fresh SQLite file.
FUZZ_EXAMPLES ?= 350
FUZZ_CHAINS ?= 500
fuzz: dev
	$(BIN)/python -m tests.fuzzing --examples $(FUZZ_EXAMPLES) --chains $(FUZZ_CHAINS) $(if $(FUZZ_SEED),--seed $(FUZZ_SEED)) \
		$(if $(FUZZ_DATABASE_URL),--database-url $(FUZZ_DATABASE_URL))

lint: dev
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(BENTO_VENV) $(RAY_VENV) var .pytest_cache

# Fraud scoring and recommendation quality through the job API (BENCHMARKS.md; a few minutes each on 2 CPUs).
bench-fraud: dev
	$(BIN)/python benchmarks/fraud.py

bench-recommendation: dev
	$(BIN)/python benchmarks/recommendation.py --threads 1

# Translation quality through the job API (BENCHMARKS.md): multi30k de->en with the default config for 60
# minutes of training, then fra-eng en->fr for 30; BLEU, and decoding latency at beam 1 and 4.
bench-translation: dev
	mkdir -p var
	$(BIN)/python benchmarks/translation.py --dataset multi30k --minutes 60 --json var/bench-translation-multi30k.json
	$(BIN)/python benchmarks/translation.py --dataset fra-eng --minutes 30 --json var/bench-translation-fra-eng.json

# Captioning quality through the job API (BENCHMARKS.md): the generated MNIST canvases, then flickr8k with an
# encoder first trained on CIFAR-10 through the platform, against the two baselines of the same run.
bench-captioning: dev
	mkdir -p var
	$(BIN)/python benchmarks/captioning.py --task canvases --canvases 8000 --config epochs=30 --threads 1 \
		--json var/bench-captioning-canvases.json
	$(BIN)/python benchmarks/captioning.py --task flickr8k --classifier-epochs 3 --threads 1 \
		--json var/bench-captioning-flickr8k.json

# int8 versions against their fp32 parents (issue 20, BENCHMARKS.md "int8 versions"): each trained through the
# job API on its real data, then quantised by the quantisation job; MNIST is also served (accuracy, requests/s at
# c=32 against the fp32 in-process ceiling), and CIFAR-10 (arch=airbench) likewise; fra-eng served at 1, 8 and 32 sentences a request.
bench-int8: dev
	mkdir -p var
	$(BIN)/python benchmarks/int8.py --task mnist --json var/bench-int8-mnist.json
	$(BIN)/python benchmarks/int8.py --task cifar10 --json var/bench-int8-cifar10.json
	$(BIN)/python benchmarks/int8.py --task creditcard --json var/bench-int8-creditcard.json
	$(BIN)/python benchmarks/int8.py --task movielens-100k --json var/bench-int8-movielens.json
	$(BIN)/python benchmarks/int8.py --task fra-eng --json var/bench-int8-fra-eng.json
	$(BIN)/python benchmarks/int8.py --task mnist-detection --json var/bench-int8-mnist-detection.json

# Resident memory of the API process with one production model of each family loaded (issue 3).
bench-memory: dev
	mkdir -p var
	$(BIN)/python benchmarks/memory.py --json var/bench-memory.json

# The dashboard with 10,000 runs and ten runs of 10,000 steps (issue 19): first paint of the runs page and the
# compare page's drawing and redrawing times, in chromium (Playwright; /usr/bin/chromium or DLSERVE_CHROMIUM).
bench-dashboard: dev
	mkdir -p var
	$(BIN)/python benchmarks/dashboard.py --json var/bench-dashboard.json
