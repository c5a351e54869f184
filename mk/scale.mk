# Scale, measured (issue 17): the real runner + Ray (one `ray start` per node, on this
# machine) + the store, on the simulated engine, at 10K queued / 1K running; then the image
# schedule simulation. Tables appended to benchmarks/results/scale.md; the last line printed
# is `driver overhead per episode: X ms at 1000 running`. About 15 min on 2 cores.
# bench-scale-profile re-measures the real Docker latencies the simulator draws from.
.PHONY: bench-scale bench-scale-profile bench-scale-images bench-scale-writes test-scale
bench-scale: setup
	$(PY) benchmarks/scale_images.py
	$(PY) benchmarks/scale.py

bench-scale-images: setup
	$(PY) benchmarks/scale_images.py

# One store writer, one by one vs batched, SQLite and PostgreSQL (no cluster; ~1 min).
bench-scale-writes: setup
	$(PY) benchmarks/scale.py --writes-only 4

bench-scale-profile: setup
	$(PY) benchmarks/scale_profile.py

test-scale: setup
	$(PY) -m pytest -q tests/orchestrator/test_scale_sim.py tests/orchestrator/test_store_batch.py
