"""General-agent env (`envfarm/general-v0`): multi-hop search and stateful app tools."""

from envs.general.answers import (
    JudgeConfig,
    LLMJudge,
    match_answer,
    normalize,
    parse_number,
    parse_verdict,
)
from envs.general.env import GeneralEnv

__all__ = ["GeneralEnv", "JudgeConfig", "LLMJudge", "match_answer", "normalize", "parse_number",
           "parse_verdict"]
