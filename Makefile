# The two commands of the README: `make demo` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: test demo bench lint clean catalog

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest

demo: $(STAMP)
	$(BIN)/winpod demo

# Message catalogs (README "Translating"): extract every _()/ngettext()/N_() string, merge the
# new ones into each locale's .po (empty msgstr: translate them there), compile the .mo files
# that ship in the package. Run it again after translating; tests/test_catalog.py checks both.
LOCALES_DIR := handlers/locale
POT := $(VENV)/winpod.pot
catalog: $(STAMP)
	$(BIN)/pybabel --quiet extract -F babel.cfg --no-location --sort-output --no-wrap \
		--project winpod -o $(POT) .
	test -f $(LOCALES_DIR)/zh_CN/LC_MESSAGES/winpod.po || \
		$(BIN)/pybabel --quiet init -D winpod -i $(POT) -d $(LOCALES_DIR) -l zh_CN --no-wrap
	$(BIN)/pybabel --quiet update -D winpod -i $(POT) -d $(LOCALES_DIR) --no-fuzzy-matching \
		--ignore-obsolete --no-wrap
	$(BIN)/pybabel compile --statistics -D winpod -d $(LOCALES_DIR)

# Speed and memory against the simulator; prints one JSON object per benchmark (not part of test).
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
