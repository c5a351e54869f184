"""A separate process that opens N sessions at once, steps each once, prints their ids,
then vanishes without deleting them (what a crashed trainer does)."""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor

from orchestrator.serve import EnvClient


def main(url: str, token: str, n: int) -> None:
    client = EnvClient(url, token=token)

    def one(i: int) -> str:
        opened = client.create("echo", task_id=f"echo-load{i}")
        client.step(opened["session_id"], {"content": "", "tool_calls": [
            {"name": "bash", "arguments": {"command": f"echo load{i} > /tmp/answer.txt"}}]})
        return opened["session_id"]

    with ThreadPoolExecutor(n) as pool:
        ids = list(pool.map(one, range(n)))
    print(json.dumps(ids))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
