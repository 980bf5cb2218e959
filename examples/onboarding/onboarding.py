"""Customer onboarding as a saga: provisioning opens accounts, verification then rejects the application, and the
accounts are closed again, newest first, journaled, surviving a crash in the middle.

Two provisioning steps run in parallel, each opening an account in a system of record (here a JSON file standing
in for a CRM and a billing system). Each declares its compensation. The verification step then rejects the
applicant (their identity document has expired), the run fails, and podium undoes what was done.

    python -m examples.onboarding.onboarding --customer "Ada Lovelace" --document expired
    python -m examples.onboarding.onboarding --customer "Ada Lovelace" --document valid
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel

from podium import START, Graph, RetryPolicy, RunResult, Workflow, context, open_store, reducers


class Application(BaseModel):
    customer: str
    document: str = "valid"
    """The identity document's state: ``valid`` or ``expired``."""
    accounts: Annotated[list[str], reducers.append] = []
    verified: bool = False


class ApplicationRejected(Exception):
    """Verification turned the application down: a permanent failure, not retried."""


class Directory:
    """A system of record: accounts in a JSON file, written atomically (rename), so a crash never tears it, and
    under a lock, because the two provisioning steps run at the same time in threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def accounts(self) -> dict[str, str]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def open(self, account: str, owner: str) -> None:
        with self._lock:
            self._write({**self.accounts(), account: owner})

    def close(self, account: str) -> None:
        """Close an account; closing one that is already closed is fine (compensations may run twice)."""
        with self._lock:
            accounts = self.accounts()
            accounts.pop(account, None)
            self._write(accounts)

    def _write(self, accounts: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(accounts, indent=1, sort_keys=True))
        os.replace(temporary, self.path)


def onboarding(directory: Directory) -> Workflow[Application]:
    """The onboarding saga over ``directory``."""

    def account_id(system: str) -> str:
        return f"{system}-{context().new_id()[:8]}"  # the same id if the step is replayed

    def open_crm(state: Application) -> dict[str, Any]:
        account = account_id("crm")
        directory.open(account, state.customer)
        return {"accounts": [account]}

    def open_billing(state: Application) -> dict[str, Any]:
        account = account_id("billing")
        directory.open(account, state.customer)
        return {"accounts": [account]}

    def close_accounts(output: dict[str, Any]) -> None:
        for account in output["accounts"]:
            directory.close(account)

    def verify(state: Application) -> dict[str, Any]:
        if state.document != "valid":
            raise ApplicationRejected(f"{state.customer}'s identity document is {state.document}")
        return {"verified": True}

    return (
        Graph(Application, name="onboarding")
        .add(open_crm, compensate=close_accounts)
        .add(open_billing, compensate=close_accounts)
        .add(verify)
        .edge(START, "open_crm")
        .edge(START, "open_billing")
        .join(["open_crm", "open_billing"], "verify")
        .build(compensation_retry=RetryPolicy(max_attempts=5, initial_interval=0.05, retry_on=(Exception,)))
    )


async def main(argv: list[str] | None = None) -> RunResult[Application]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customer", default="Ada Lovelace")
    parser.add_argument("--document", default="expired", choices=["valid", "expired"])
    parser.add_argument("--directory", type=Path, default=Path(".podium/onboarding/accounts.json"))
    parser.add_argument("--store", default="sqlite:///.podium/podium.db")
    args = parser.parse_args(argv)
    directory = Directory(args.directory)
    store = open_store(args.store)
    result = await onboarding(directory).run({"customer": args.customer, "document": args.document}, store=store)
    print(f"run {result.run_id}: {result.status.value}")
    print(f"  {result.reason or 'every step finished'}")
    print(f"  accounts opened: {', '.join(result.state.accounts) or 'none'}")
    print(f"  accounts still open in {args.directory}: {len(directory.accounts())}")
    return result


if __name__ == "__main__":
    outcome = asyncio.run(main())
    sys.exit(0 if outcome.ok else 2)
