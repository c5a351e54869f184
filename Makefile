# The two commands of the README's Quick start are `make demo` and `make test`;
# both run `make setup` first, which is idempotent and fast when all is ready.
VENV ?= .venv
PY := $(VENV)/bin/python
ENVFARM := $(VENV)/bin/envfarm
PYTEST_ARGS ?=

.PHONY: setup demo test bench lint clean bench-names bench-sandbox bench-orchestrator \
	bench-catalogue bench-synthesis bench-gvisor bench-podman bench-viewer bench-verify-cost
setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# `make bench` runs every benchmark that fits one machine (Docker, the vLLM CPU venv, the
# browser image); BENCH picks some: `make bench BENCH=sandbox,orchestrator`. Each writes its
# table to benchmarks/results/, which is where the README's figures come from. Opt-in (they
# need downloads, datasets or a quarter of an hour): synthesis (PyPI), terminal
# (Terminal-Bench data), scale (10K simulated episodes on local Ray nodes), real-model.
BENCH ?= sandbox,orchestrator,catalogue,policy,webdev,gvisor,podman,viewer,verify-cost
BENCHES := sandbox orchestrator catalogue policy webdev gvisor podman viewer verify-cost \
	synthesis terminal scale real-model
comma := ,
bench: bench-names setup
	@for b in $(subst $(comma), ,$(BENCH)); do \
	  echo "== bench-$$b"; $(MAKE) --no-print-directory bench-$$b || exit 1; \
	done

bench-names:
	@for b in $(subst $(comma), ,$(BENCH)); do \
	  case " $(BENCHES) " in *" $$b "*) ;; \
	    *) echo "error: no benchmark '$$b'; choose among: $(BENCHES)" >&2; exit 2;; esac; \
	done

bench-sandbox: setup
	$(PY) benchmarks/sandbox.py

bench-orchestrator: setup
	$(PY) benchmarks/orchestrator.py --out benchmarks/results/orchestrator.md

bench-catalogue: setup
	$(PY) benchmarks/catalogue.py

bench-synthesis: setup
	$(PY) benchmarks/synthesis.py

bench-gvisor: setup
	$(PY) benchmarks/gvisor.py

bench-podman: setup
	$(PY) benchmarks/podman.py

bench-viewer: setup
	$(PY) benchmarks/viewer.py

bench-verify-cost: setup
	$(PY) benchmarks/verify_cost.py

lint: setup
	$(VENV)/bin/ruff check .

clean:
	-$(ENVFARM) sandbox gc --all
	rm -rf $(VENV) .pytest_cache

# Other issues add their targets in mk/*.mk (vLLM, cluster, ...).
-include mk/*.mk
