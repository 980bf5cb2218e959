"""A saga for the kill -9 test: six accounts opened one by one, then a rejection; run as its own process.

::

    python -m tests.durability.saga_proc DB_PATH DIRECTORY LOG_PATH RUN_ID (start|resume)

Each step opens one account in the directory (one file per account, so opening and closing are single atomic
filesystem operations). The last step fails, so the run compensates: each compensation logs
``"<pid> undoing <account>"``, sleeps a few milliseconds (so that kills land in the middle of one), removes its
account's file if it is still there, and then logs ``"<pid> undone <account>"`` (lines appended to LOG_PATH). The
program prints one JSON line at the end: the run's status, what it reports as compensated, and the accounts still
open.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel

from podium import START, Graph, RetryPolicy, SQLiteStore, Workflow, reducers

ACCOUNTS = [f"acct{i}" for i in range(6)]


class Signup(BaseModel):
    customer: str
    accounts: Annotated[list[str], reducers.append] = []


def saga(directory: Path, log: Path) -> Workflow[Signup]:
    def opener(account: str) -> Any:
        def open_account(state: Signup) -> dict[str, Any]:
            (directory / account).write_text(state.customer)
            return {"accounts": [account]}

        open_account.__name__ = f"open_{account}"
        return open_account

    def close(output: dict[str, Any]) -> None:
        (account,) = output["accounts"]
        with open(log, "a") as f:
            f.write(f"{os.getpid()} undoing {account}\n")
        time.sleep(0.004 + 0.002 * ACCOUNTS.index(account))
        (directory / account).unlink(missing_ok=True)
        with open(log, "a") as f:
            f.write(f"{os.getpid()} undone {account}\n")

    def reject(state: Signup) -> dict[str, Any]:
        raise PermissionError("verification rejected the application")

    graph = Graph(Signup, name="signup")
    previous = START
    for account in ACCOUNTS:
        graph.add(opener(account), compensate=close, thread=False)
        graph.edge(previous, f"open_{account}")
        previous = f"open_{account}"
    graph.add(reject, thread=False).edge(previous, "reject")
    return graph.build(compensation_retry=RetryPolicy(max_attempts=3, initial_interval=0.0, retry_on=(Exception,)))


async def main(db: str, folder: Path, log: str, run_id: str, mode: str) -> None:
    flow = saga(folder, Path(log))
    store = SQLiteStore(db)
    if mode == "start":
        result = await flow.run({"customer": "ada"}, store=store, run_id=run_id)
    else:
        result = await flow.resume(run_id, store=store)
    still_open = sorted(p.name for p in await asyncio.to_thread(lambda: list(folder.iterdir())))
    print(json.dumps({"status": result.status.value, "compensated": result.compensated, "open": still_open}))


if __name__ == "__main__":
    db, directory, log, run_id, mode = sys.argv[1:6]
    Path(directory).mkdir(parents=True, exist_ok=True)
    asyncio.run(main(db, Path(directory), log, run_id, mode))
