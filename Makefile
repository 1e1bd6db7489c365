# Two commands do everything (see README.md):
#   make demo   set up, write the built-in pairs, train Inception-Unet+SRCNN535, report
#   make test   set up, run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
GPU ?= 0
EXPORT ?= 0
# make setup GPU=1: TensorFlow with CUDA (requirements-gpu.txt) instead of the CPU build.
# make setup EXPORT=1: also export.py's exporters and runtimes (requirements-export.txt).
REQS := requirements.txt requirements-gpu.txt $(if $(filter 1,$(EXPORT)),requirements-export.txt)
STAMP := $(VENV)/.installed-$(GPU)$(if $(filter 1,$(EXPORT)),-export)-$(shell cat $(REQS) | cksum | cut -d' ' -f1)

.PHONY: setup demo test lint dem-models climate-model

setup: $(STAMP)

$(STAMP): $(REQS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@if [ "$(GPU)" = 1 ]; then \
		grep -v '^tensorflow' requirements.txt > $(VENV)/requirements-base.txt \
		&& $(BIN)/python -m pip uninstall -q -y tensorflow-cpu 2>/dev/null; \
		$(BIN)/python -m pip install -q -r $(VENV)/requirements-base.txt -r requirements-gpu.txt; \
	else \
		$(BIN)/python -m pip install -q -r requirements.txt; \
	fi
	@if [ "$(EXPORT)" = 1 ]; then $(BIN)/python -m pip install -q -r requirements-export.txt; fi
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

# The shipped raster models (README "Rasters"; docs/experiments.md), about 40 min on 2 cores:
# dem_x4.keras is the average of three x4 runs, dem_x2.keras one x2 run.
DEM := --dataset dem --train-patches 2000 --filters 16
X4 := edsr_lite-sr4-2000-dem/model.keras
dem-models: setup
	$(BIN)/python download.py dem
	$(BIN)/python edsr_lite.py $(DEM) --backprops 171680 --out runs/dem_x4/a
	$(BIN)/python edsr_lite.py $(DEM) --backprops 340000 --out runs/dem_x4/b
	$(BIN)/python edsr_lite.py $(DEM) --blocks 8 --backprops 340000 --out runs/dem_x4/c
	$(BIN)/python edsr_lite.py --role average --output assets/models/dem_x4.keras \
		--model runs/dem_x4/a/$(X4),runs/dem_x4/b/$(X4),runs/dem_x4/c/$(X4)
	$(BIN)/python edsr_lite.py $(DEM) --task sr2 --backprops 324000 --out runs/dem_x2
	cp runs/dem_x2/edsr_lite-sr2-2000-dem/model.keras assets/models/.dem_x2.part.keras
	mv assets/models/.dem_x2.part.keras assets/models/dem_x2.keras

# assets/models/climate_x4.keras and climate_x2.keras: EDSR-lite on A1B air temperature, 1860-2051 (docs/results.md).
climate-model: setup
	$(BIN)/python download.py climate
	$(BIN)/python edsr_lite.py --dataset climate --task sr4 --train-patches 2000 --backprops 64400 --out runs/climate_x4
	cp runs/climate_x4/edsr_lite-sr4-2000-climate/model.keras assets/models/.climate_x4.part.keras
	mv assets/models/.climate_x4.part.keras assets/models/climate_x4.keras
	$(BIN)/python edsr_lite.py --dataset climate --task sr2 --train-patches 2000 --backprops 85000 --out runs/climate_x2
	cp runs/climate_x2/edsr_lite-sr2-2000-climate/model.keras assets/models/.climate_x2.part.keras
	mv assets/models/.climate_x2.part.keras assets/models/climate_x2.keras
