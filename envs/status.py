"""Episode statuses: the one list, defined here, saying who must act on an episode.

    status              who caused it          reward        retried   exported
    ok                  the agent finished     as verified   no        yes
    agent_timeout       the agent ran out      as verified   no        yes
    max_turns           the agent ran out      as verified   no        yes
    context_exceeded    the agent ran out      as verified   no        yes
    tampered            the agent changed what the verifier trusts
                                               0, evidence   no        yes
    agent_fault         the agent broke its own sandbox or the verifier's inputs
                                               0, the cause  no        yes
    task_error          the task or its image is broken
                                               none          no        no
    infra_error         a fault outside the agent's reach (engine, host, model server)
                                               none          yes       no

`tampered` and `agent_fault` are kept for training on purpose: a policy that learns
"crash the sandbox" or "rewrite the tests" must see reward 0 for it, not have the
episode dropped (a dropped episode is a free pass).
"""

from __future__ import annotations

OK = "ok"
AGENT_TIMEOUT = "agent_timeout"
MAX_TURNS = "max_turns"
CONTEXT_EXCEEDED = "context_exceeded"
TAMPERED = "tampered"
AGENT_FAULT = "agent_fault"
TASK_ERROR = "task_error"
INFRA_ERROR = "infra_error"
RUNNING = "running"
"""Not a final status: what `info["status"]` says before the episode ends."""

STATUSES = (OK, AGENT_TIMEOUT, MAX_TURNS, CONTEXT_EXCEEDED, TAMPERED, AGENT_FAULT,
            TASK_ERROR, INFRA_ERROR)
"""Every final status."""

TRAINABLE = (OK, AGENT_TIMEOUT, MAX_TURNS, CONTEXT_EXCEEDED, TAMPERED, AGENT_FAULT)
"""Statuses whose reward is the agent's own: stored, exported, counted in pass rates."""

RETRYABLE = (INFRA_ERROR,)
"""Statuses the runner retries (with backoff); never exported."""

NOT_SCORED = (TASK_ERROR, INFRA_ERROR)
"""Statuses without a reward: the agent is not to blame."""


def is_trainable(status: str) -> bool:
    return status in TRAINABLE
