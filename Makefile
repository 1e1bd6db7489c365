# Two commands do everything (see README.md):
#   make demo   set up, write the built-in pairs, train Inception-Unet+SRCNN535, report
#   make test   set up, run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < requirements.txt | cut -d' ' -f1)

.PHONY: setup demo test lint

setup: $(STAMP)

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	@# Graphviz draws the model diagrams (keras.utils.plot_model); the scripts go on without it.
	@command -v dot >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null; } \
		|| echo "note: install Graphviz (apt-get install graphviz) for model diagrams"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: setup
	$(BIN)/python download.py
	$(BIN)/python inception2.py

test: setup
	$(BIN)/python -m pytest -q tests

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
