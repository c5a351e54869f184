"""Scripts run inside the trainers' own venvs by test_exports_read_by_trainers.py. Each
prints one JSON line; a failure is an exception (non-zero exit, traceback shown)."""

VERL = r'''
import json, sys
import numpy as np, pyarrow.parquet as pq, torch
from omegaconf import OmegaConf
from transformers import AutoTokenizer
from verl.trainer.ppo import core_algos
from verl.utils.dataset.rl_dataset import RLHFDataset

rows_path, prompts_path, model_dir = sys.argv[1:4]
out = {}

# 1. the prompts export is a verl dataset: RLHFDataset reads it as it is
tok = AutoTokenizer.from_pretrained(model_dir)
ds = RLHFDataset(data_files=[prompts_path], tokenizer=tok,
                 config=OmegaConf.create({"prompt_key": "prompt", "max_prompt_length": 2048,
                                          "return_raw_chat": True, "filter_overlong_prompts": False}))
items = [ds[i] for i in range(len(ds))]
out["dataset"] = [{"agent_name": it.get("agent_name"), "task_id": it["extra_info"]["task_id"],
                   "env": it["extra_info"]["env"], "raw_prompt": list(it["raw_prompt"])} for it in items]

# 2. the verl rows through verl's own GRPO advantage and PPO policy loss
t = pq.read_table(rows_path).to_pylist()
L = max(len(r["response_ids"]) for r in t)
def pad(key, dtype, fill=0):
    return torch.tensor([list(r[key]) + [fill] * (L - len(r[key])) for r in t], dtype=dtype)
mask = pad("response_mask", torch.float32)
old_logp = pad("response_logprobs", torch.float32, 0.0)
rewards = torch.zeros(len(t), L)
for i, r in enumerate(t):
    last = max(j for j, m in enumerate(r["response_mask"]) if m) if any(r["response_mask"]) else 0
    rewards[i, last] = r["reward"]
index = np.array([r["uid"] for r in t], dtype=object)
adv, ret = core_algos.compute_grpo_outcome_advantage(rewards, mask, index)
config = OmegaConf.create({"clip_ratio": 0.2, "clip_ratio_low": 0.2, "clip_ratio_high": 0.2,
                           "clip_ratio_c": 3.0, "global_batch_info": {}})
loss_same, m_same = core_algos.compute_policy_loss_vanilla(old_logp, old_logp, adv, mask,
                                                          "token-mean", config)
shifted = old_logp + 0.5 * mask  # ratio e^0.5 > 1 + eps: clipped where the advantage is > 0
loss_up, m_up = core_algos.compute_policy_loss_vanilla(old_logp, shifted, adv, mask,
                                                      "token-mean", config)
out["verl"] = {"rows": [{"uid": r["uid"], "reward": r["reward"], "n": len(r["response_ids"]),
                         "task_id": r["task_id"], "sample_index": r["sample_index"],
                         "mask_sum": int(sum(r["response_mask"]))} for r in t],
               "adv": adv.tolist(), "mask": mask.tolist(),
               "loss_same": float(loss_same), "loss_up": float(loss_up),
               "clipfrac_same": float(m_same.get("actor/pg_clipfrac", 0.0)),
               "clipfrac_up": float(m_up.get("actor/pg_clipfrac", 0.0))}
print(json.dumps(out))
'''

SKYRL = r'''
import json, sys
import typing, typing_extensions
# skyrl 0.3.0 says Python >= 3.11 but its tinker types need pydantic-compatible TypedDicts,
# which typing only has from 3.12: give it typing_extensions' (its own fix upstream).
typing.TypedDict = typing_extensions.TypedDict
import pyarrow.parquet as pq
from skyrl.train.generators.base import GeneratorOutput, TrajectoryID
from skyrl.train.utils.trainer_utils import validate_generator_output

rows = pq.read_table(sys.argv[1]).to_pylist()
ids = []
for r in rows:
    task, sample = r["task_id"], int(r["trajectory_ids"].rsplit(":", 1)[1])
    ids.append(TrajectoryID(instance_id=task, repetition_id=sample))
out = GeneratorOutput(
    prompt_token_ids=[r["prompt_token_ids"] for r in rows],
    response_ids=[r["response_ids"] for r in rows], rewards=[r["rewards"] for r in rows],
    loss_masks=[r["loss_masks"] for r in rows], stop_reasons=None, rollout_metrics=None,
    rollout_logprobs=[r["rollout_logprobs"] for r in rows], trajectory_ids=ids,
    trajectory_generation_times=None, rollout_expert_indices=None,
    is_last_step=[r["is_last_step"] for r in rows], env_metrics=None, pixel_values=None,
    image_grid_thw=None)
prompts = len({t.to_string() for t in ids})
validate_generator_output(prompts, out, step_wise=True)
print(json.dumps({"rows": len(rows), "trajectories": prompts,
                  "last_steps": sum(r["is_last_step"] for r in rows)}))
'''

HARBOR = r'''
import json, sys
from pathlib import Path
from harbor.models.trajectories.trajectory import Trajectory
from harbor.models.task.task import Task

atif_path, *task_dirs = sys.argv[1:]
trajectories = []
for line in Path(atif_path).read_text().splitlines():
    if line.strip():
        data = json.loads(line)
        if "schema_version" in data:
            t = Trajectory.model_validate(data)
            trajectories.append({"session_id": t.session_id, "steps": len(t.steps)})
tasks = []
for d in task_dirs:
    task = Task(d)
    tasks.append({"dir": d, "instruction": task.instruction,
                  "agent_timeout_sec": task.config.agent.timeout_sec,
                  "verifier_timeout_sec": task.config.verifier.timeout_sec})
print(json.dumps({"trajectories": trajectories, "tasks": tasks}))
'''
