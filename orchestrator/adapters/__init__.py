"""Adapters that put envfarm envs inside the trainers people already run.

- `skyrl`: every envfarm env as a SkyRL-Gym `BaseTextEnv` (text in, text out), in
  process or through `envfarm serve`.
- `verl_loop`: a verl agent loop that runs one envfarm env per sample over HTTP, with
  tokens from verl's own inference server (import it inside verl's environment).

Each imports its trainer's package lazily: envfarm itself never needs them.
"""
