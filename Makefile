# The README's two commands:
#   make run   — set up everything on a fresh machine, fetch + verify the model, ingest the library, serve the chat
#   make test  — set up everything on a fresh machine and run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
export HF_HUB_OFFLINE = 1
export TRANSFORMERS_OFFLINE = 1
export ANONYMIZED_TELEMETRY = False
export GRADIO_ANALYTICS_ENABLED = False

.PHONY: run test install model ingest serve browser check bench

run: install model ingest serve

test: install model browser
	$(BIN)/pytest -q

# torch first, from its CPU build: a plain `torch` would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[dev]'
	touch $@

install: $(VENV)/.installed

model: install
	$(BIN)/policy-assistant models fetch

ingest: install
	$(BIN)/policy-assistant ingest

serve: install
	$(BIN)/policy-assistant serve

# Debian's Chromium (and a CJK font for readable screenshots) for the browser tests;
# never a test tool's own browser download.
browser:
	@if [ -x /usr/bin/chromium ] && dpkg -s fonts-wqy-microhei >/dev/null 2>&1; then echo "chromium: $$(/usr/bin/chromium --version)"; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei; \
	else echo "浏览器测试需要 Debian 的 chromium 和 fonts-wqy-microhei：请运行 sudo apt-get install chromium fonts-wqy-microhei" >&2; exit 1; fi

check: install
	$(BIN)/ruff check assistant ingest ui tests bench policy_cli.py cli_commands.py
	$(BIN)/ruff format --check assistant ingest ui tests bench policy_cli.py cli_commands.py
	$(BIN)/mypy assistant ingest ui policy_cli.py cli_commands.py

bench: install model
	$(BIN)/python bench/bench_ingest.py
	$(BIN)/python bench/bench_retrieval.py
	$(BIN)/python bench/bench_api.py
	$(BIN)/python bench/bench_load.py
