# Every target runs inside the project environment (scripts/in-env picks a plain
# .venv or the Debian 13 sandbox by itself and builds it on first use).
IN_ENV := scripts/in-env
PYTEST_ARGS ?=

.PHONY: setup test run lint lock clean-env

setup:  ## build the environment (idempotent)
	$(IN_ENV) --setup
	@$(IN_ENV) --which

test:  ## the whole test suite
	$(IN_ENV) python -m pytest $(PYTEST_ARGS)

run:  ## the full SITN TFX pipeline on the embedded synthetic default dataset
	$(IN_ENV) python pipelines/sitn_pipeline.py --default-data

lint:  ## ruff
	$(IN_ENV) ruff check sitn_tf pipelines sitn_tools tests
	$(IN_ENV) ruff format --check sitn_tf pipelines sitn_tools tests

lock:  ## re-resolve pyproject.toml into requirements.lock (then `make setup` rebuilds)
	$(IN_ENV) sh scripts/relock > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean-env:  ## remove the cached environment(s)
	rm -rf .venv "$${SITN_TF_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/sitn-tf}"
