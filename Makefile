# mixpilot — set up a fresh Debian/Ubuntu machine and run the demo or the tests.
#
#   make demo      system packages + .venv + project, then the demo (see README)
#   make test      the same setup, then the whole test suite (tests/ only)
#
# Internal steps, each behind a stamp so that repeated calls are quick:
#   make sysdeps   apt packages (libportaudio2, libsndfile1, jackd2; python3-venv
#                  if python3 cannot make a venv) -- apt runs only if one is missing
#   make testdeps  apt packages only the tests use (chromium: the compare page is
#                  tested in a real headless browser)
#   make venv      .venv from python3 (>= 3.10 checked)
#   make setup     pip install -e '.[dev,plot,cluster]' into .venv (again when pyproject.toml changes)
#   make lint      ruff (lint + format check); part of make test
#   make check-install  what a user gets: a fresh venv, a non-editable `pip install .`, then from
#                  another directory `import mixpilot` and `mixpilot render` of a song with the AI
#   make typecheck mypy over dsp, inference and realtime (settings in pyproject.toml); part of make test
#
#   make clean     remove outputs and caches (out/, .numba_cache, .pytest_cache, ...)
#   make distclean clean, and remove .venv with its stamps
#
# Variables: PYTHON=python3.11 (interpreter for the venv), DEMO_SONG=path/to.ogg, DEMO_REFERENCE=ref.ogg|'', DEMO_SECONDS=30, DEMO_BLOCKSIZE=1024,
# PYTEST_ARGS='-k loudness'.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.ONESHELL:
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
PIP := $(VPY) -m pip --disable-pip-version-check
# Stamps live inside .venv: ignored by git, and gone with the venv.
STAMPS := $(VENV)/.stamps
SYS_PKGS := libportaudio2 libsndfile1 jackd2
TEST_PKGS := chromium

# Kernels compiled by Numba (cache=True) are kept here between runs.
RUN_ENV := NUMBA_CACHE_DIR=$(CURDIR)/.numba_cache

# the shipped real-music excerpts (demo_audio/README.md: CC BY-SA 3.0, attribution there): the song is mixed
# toward the reference; DEMO_REFERENCE= (empty) mixes toward the shipped default profile instead
DEMO_SONG ?= $(CURDIR)/demo_audio/westlund_romans_excerpt.ogg
DEMO_REFERENCE ?= $(CURDIR)/demo_audio/megaglest_menu_excerpt.ogg
DEMO_SYNTH := out/demo.wav
DEMO_OUT := out/demo_live.wav
DEMO_SECONDS ?= 30
# Frames per period. A file's playback keeps no latency budget (nothing is live), so the demo runs at
# jackd's own default period, 1024 frames (21-23 ms): on a shared VM the scheduler alone wakes a
# real-time thread up to 11 ms late (cyclictest, README "Real time"), which at 128 frames is an xrun
# whatever the callback does. `make demo DEMO_BLOCKSIZE=128` runs at mixpilot's low-latency default.
DEMO_BLOCKSIZE ?= 1024
PYTEST_ARGS ?=

.PHONY: help demo test lint typecheck check-install setup venv sysdeps testdeps clean distclean

help:
	@sed -n '2,20p' $(firstword $(MAKEFILE_LIST)) | sed 's/^# \{0,1\}//'

# ---------------------------------------------------------------- main jobs

demo: setup
	@mkdir -p out
	if [ -f "$(DEMO_SONG)" ]; then
	  song="$(DEMO_SONG)"
	else
	  echo "== $(DEMO_SONG) not found: synthesising a demo song"
	  $(MAKE) -s $(DEMO_SYNTH)
	  song="$(DEMO_SYNTH)"
	fi
	ref=()
	if [ -n "$(DEMO_REFERENCE)" ] && [ -f "$(DEMO_REFERENCE)" ] && [ "$$song" != "$(DEMO_SYNTH)" ]; then
	  ref=(--reference "$(DEMO_REFERENCE)")
	fi
	echo "== mixpilot play $$song $${ref[*]} (real time, $(DEMO_SECONDS) s; recording to $(DEMO_OUT))"
	$(RUN_ENV) $(VENV)/bin/mixpilot play "$$song" --seconds $(DEMO_SECONDS) --blocksize $(DEMO_BLOCKSIZE) \
	  --target-lufs -14 --ceiling-dbtp -1 --record $(DEMO_OUT) --stats-json out/demo_stats.json --overwrite \
	  "$${ref[@]}"

$(DEMO_SYNTH): demo.py $(STAMPS)/setup
	@mkdir -p $(@D)
	$(VPY) -m mixpilot.demo $@

test: setup testdeps lint typecheck
	@$(RUN_ENV) $(VPY) -m pytest -q $(PYTEST_ARGS)

lint: setup
	@$(VENV)/bin/ruff check --quiet .
	$(VENV)/bin/ruff format --check --quiet .

# A fresh venv in a temporary folder, the package installed from this tree as a user would (not
# editable), then used from another directory: one top-level name in site-packages, the API imports,
# the shipped model renders a synthesised song (the first run says it compiles the kernels).
check-install: sysdeps
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT
	echo "== fresh venv in $$tmp; pip install $(CURDIR) (non-editable)"
	$(PYTHON) -m venv "$$tmp/venv"
	"$$tmp/venv/bin/python" -m pip install -q --disable-pip-version-check "$(CURDIR)"
	site=$$("$$tmp/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
	"$$tmp/venv/bin/python" -m pip freeze --disable-pip-version-check | grep -i '^mixpilot' || true
	(cd "$$site" && "$$tmp/venv/bin/python" -c 'import glob; rec = glob.glob("mixpilot_engine-*.dist-info/RECORD")[0]; names = sorted({l.split("/")[0] for l in open(rec) if not l.startswith("..")}); print("== top-level names the package installed:", names); assert names == ["mixpilot", rec.split("/")[0]], names')
	mkdir -p "$$tmp/elsewhere" && cd "$$tmp/elsewhere"
	NUMBA_CACHE_DIR="$$tmp/numba" "$$tmp/venv/bin/python" -c 'import mixpilot; print("import mixpilot:", mixpilot.__file__, mixpilot.__version__)'
	"$$tmp/venv/bin/python" -c 'import numpy as np, soundfile as sf; t = np.arange(6 * 44100) / 44100; x = 0.1 * np.sin(2 * np.pi * 110 * t) * (1 + np.sin(2 * np.pi * 2 * t)); sf.write("song.wav", np.stack([x, 0.8 * x], 1), 44100)'
	NUMBA_CACHE_DIR="$$tmp/numba" "$$tmp/venv/bin/mixpilot" render song.wav out.flac --json -q > render.json
	"$$tmp/venv/bin/python" -c 'import json; r = json.load(open("render.json")); print("render: model", r["model"], "ai_updates", r["ai_updates"], "out", round(r["output_integrated_lufs"], 2), "LUFS", round(r["output_true_peak_dbtp"], 2), "dBTP"); assert r["model"] == "ensemble" and r["ai_updates"] > 0'
	echo "== check-install: ok"

# The repository root is the package `mixpilot` (package-dir in pyproject.toml): mypy finds it
# through a folder that holds one link, `mixpilot` -> this checkout.
MYPY_PATH := $(VENV)/mypy_path
typecheck: setup
	@mkdir -p $(MYPY_PATH) && ln -sfn "$(CURDIR)" $(MYPY_PATH)/mixpilot
	MYPYPATH=$(MYPY_PATH) $(VENV)/bin/mypy --no-error-summary -p mixpilot.dsp -p mixpilot.inference -p mixpilot.realtime

# ---------------------------------------------------------------- setup steps

sysdeps: $(STAMPS)/sysdeps
testdeps: $(STAMPS)/testdeps
venv: $(STAMPS)/venv
setup: $(STAMPS)/setup

# apt_ensure = shell code: install the Debian packages in $$pkgs that are missing (what for: $$what).
define apt_ensure
	if ! command -v dpkg >/dev/null 2>&1; then
	  echo "== not a Debian/Ubuntu system: make sure these are installed ($$what): $$pkgs"
	else
	  missing=""
	  for p in $$pkgs; do
	    status=$$(dpkg -s "$$p" 2>/dev/null || true)
	    case "$$status" in *"Status: install ok installed"*) ;; *) missing="$$missing $$p" ;; esac
	  done
	  if [ -n "$$missing" ]; then
	    if [ "$$(id -u)" = 0 ]; then sudo=""
	    elif command -v sudo >/dev/null 2>&1; then sudo="sudo"
	    else echo "error: need root or sudo to install:$$missing" >&2; exit 1
	    fi
	    echo "== installing system packages ($$what):$$missing"
	    # jackd2 asks whether to enable realtime priority; answer no, non-interactively.
	    echo 'jackd2 jackd/tweak_rt_limits boolean false' | $$sudo debconf-set-selections
	    $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	    $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends -o Dpkg::Use-Pty=0 $$missing
	  fi
	fi
endef

$(STAMPS)/sysdeps:
	@pkgs="$(SYS_PKGS)"
	what="PortAudio, libsndfile and JACK"
	if ! command -v $(PYTHON) >/dev/null 2>&1; then
	  pkgs="$$pkgs python3 python3-venv"
	elif ! $(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1; then
	  pkgs="$$pkgs python3-venv"     # Debian splits ensurepip out of python3
	fi
	$(apt_ensure)
	mkdir -p $(@D) && touch $@

# Only for the tests: the compare page is loaded in a real headless Chromium.
$(STAMPS)/testdeps: $(STAMPS)/sysdeps
	@pkgs="$(TEST_PKGS)"
	what="for the tests only: headless Chromium"
	$(apt_ensure)
	mkdir -p $(@D) && touch $@

$(STAMPS)/venv: $(STAMPS)/sysdeps
	@command -v $(PYTHON) >/dev/null 2>&1 || {
	  echo "error: $(PYTHON) not found; install Python >= 3.10 or pass PYTHON=/path/to/python3" >&2; exit 1; }
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || {
	  echo "error: mixpilot needs Python >= 3.10, but $(PYTHON) is $$($(PYTHON) -V 2>&1)." >&2
	  echo "       Install a newer Python and run e.g. 'make PYTHON=python3.11 $(MAKECMDGOALS)'." >&2
	  exit 1; }
	echo "== creating $(VENV) with $$($(PYTHON) -V 2>&1)"
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip    # editable installs need pip >= 21.3
	touch $@

$(STAMPS)/setup: $(STAMPS)/venv pyproject.toml
	@echo "== installing mixpilot and its dev tools into $(VENV)"
	$(PIP) uninstall -q -y mixpilot 2>/dev/null || true   # the distribution's name before 0.1 (same files)
	$(PIP) install -q -e '.[dev,plot,cluster]'   # plot: compare charts; cluster: Ray, for the --cluster test
	touch $@

# ---------------------------------------------------------------- cleaning

clean:
	rm -rf out .numba_cache .pytest_cache .mypy_cache .benchmarks build dist *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
