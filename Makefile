# Accord: `make demo` runs the network on one machine, `make test` checks everything.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PACKAGES := accord node coordinator crypto scoring

.PHONY: help setup demo test lint format typecheck typecheck-layout pytest proto proto-check wheel lock clean numerics fuzz

help:
	@echo "make demo   - set up, then run a local network (coordinator + 4 nodes) on synthetic data"
	@echo "make test   - set up, then lint, type-check and run the test suite"
	@echo "make fuzz   - fuzz every parser of outside bytes (FUZZ_INPUTS per target, FUZZ_SECONDS cap)"
	@echo "make proto  - regenerate the committed gRPC stubs from proto/accord/v1/*.proto"

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@# The peer of `accord bench psi`; it pins an older protobuf than gRPC needs, and works with ours.
	$(BIN)/python -m pip install --quiet --no-deps openmined-psi==2.0.6
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/accord demo --workdir .demo

test: setup chromium lint typecheck proto-check pytest

# The HTML audit report is checked in headless Chromium (Debian's package); install it if missing.
chromium:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

lint: setup typecheck-layout
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cd build/typecheck && ../../$(BIN)/lint-imports --config ../../pyproject.toml

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# mypy cannot follow setuptools' package-dir mapping, so it checks a symlink view of the
# installed layout (accord.node -> node/, ...) built under build/typecheck; so does
# import-linter (`make lint`).
typecheck-layout:
	@rm -rf build/typecheck && mkdir -p build/typecheck/accord
	@for f in accord/*; do ln -s ../../../$$f build/typecheck/accord/; done
	@for p in proto crypto node coordinator scoring; do ln -s ../../../$$p build/typecheck/accord/$$p; done

typecheck: setup typecheck-layout
	$(BIN)/mypy -p accord

proto-check: setup
	$(BIN)/python scripts/gen_proto.py --check

# The multi-host test (as root: network namespaces, one Unix user per party) runs beside the
# rest, at a lower CPU priority: it mostly waits on its hosts (Flower heartbeats, process starts)
# and finishes well before the rest, which is the longer path. Its output follows the rest's;
# either failing fails the target. The rest is named folder by folder: pytest's --ignore does not
# drop a folder that testpaths names, so the multi-host test would otherwise run twice.
REST_TESTS := tests/unit tests/conformance tests/integration tests/adversarial

pytest: setup
	@rm -f build/multihost.log && mkdir -p build
	@nice -n 10 $(BIN)/python -m pytest -q --durations=10 --basetemp=build/multihost-tmp tests/multihost \
	  > build/multihost.log 2>&1 & hosts=$$!; \
	  $(BIN)/python -m pytest -q --durations=20 $(REST_TESTS); rest=$$?; \
	  wait $$hosts; multihost=$$?; \
	  echo "--- tests/multihost (run beside the rest) ---"; cat build/multihost.log; \
	  test $$rest -eq 0 && test $$multihost -eq 0

# The tests that train or fit, under floating-point kernels other than this CPU's: generic SSE
# code (OpenBLAS Prescott, NumPy without AVX2/AVX-512, ATen's default kernels, one thread), then
# AVX2. A test that passes only on one CPU's kernels fails here (issue 14, item 2).
NUMERIC_TESTS := tests/unit/ltv tests/unit/scoring tests/unit/crypto/test_masking.py

numerics: setup
	OPENBLAS_CORETYPE=Prescott NPY_DISABLE_CPU_FEATURES="X86_V3 X86_V4 AVX512_ICL" \
	  ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q $(NUMERIC_TESTS)
	OPENBLAS_CORETYPE=Haswell NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL" \
	  ATEN_CPU_CAPABILITY=avx2 $(BIN)/python -m pytest -q $(NUMERIC_TESTS)

# Every parser of another party's or a file's bytes under the coverage-guided fuzzer
# (accord/fuzz/): FUZZ_INPUTS per target, each capped at FUZZ_SECONDS, FUZZ_JOBS at a time.
FUZZ_INPUTS  ?= 100000
FUZZ_SECONDS ?= 600
FUZZ_JOBS    ?= 2
fuzz: setup
	$(BIN)/python -m accord.fuzz --inputs $(FUZZ_INPUTS) --seconds $(FUZZ_SECONDS) --jobs $(FUZZ_JOBS) $(FUZZ_TARGETS)

proto: setup
	$(BIN)/python scripts/gen_proto.py

wheel: setup
	$(BIN)/python -m build --wheel --outdir dist .

# Re-resolve the pinned versions in constraints.txt from pyproject.toml.
lock:
	rm -rf build/lockenv && $(PYTHON) -m venv build/lockenv
	build/lockenv/bin/python -m pip install --quiet --upgrade pip
	build/lockenv/bin/python -m pip install --quiet '.[dev]'
	build/lockenv/bin/python -m pip freeze --exclude accord > constraints.txt

clean:
	rm -rf $(VENV) build dist .demo .pytest_cache .mypy_cache .ruff_cache
