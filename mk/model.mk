# The real model (SmolLM2-135M-Instruct, installed by scripts/setup.d/model.sh): the
# reference training loop, its tests and its benchmark.
.PHONY: train-demo test-realmodel bench-real-model
TRAIN_DEMO_ARGS ?=

# K iterations: rollouts of the model in the farm -> verl rows -> a GRPO update on CPU
# (verl's core_algos in .venv-trainers) -> vLLM serves the new weights -> held-out pass
# rate. Ends with `held-out pass rate: BEFORE -> AFTER`; the plot is build/train_demo/curve.png.
train-demo: setup
	nice -n 10 $(PY) -m examples.train_demo.run $(TRAIN_DEMO_ARGS)

test-realmodel: setup
	$(PY) -m pytest tests/realmodel -m realmodel -q

bench-real-model: setup
	nice -n 10 $(PY) benchmarks/real_model.py --out benchmarks/results/real_model.md
