"""The customer-onboarding saga example: a rejected application leaves no account open."""

from __future__ import annotations

from pathlib import Path

from examples.onboarding.onboarding import Directory, main
from podium import RunStatus, SQLiteStore
from podium.journal import Compensated, CompensationStarted


async def test_a_rejected_application_has_its_accounts_closed(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.json"
    store = f"sqlite:///{tmp_path / 'podium.db'}"
    result = await main(["--customer", "Ada", "--document", "expired", "--directory", str(accounts), "--store", store])
    assert result.status is RunStatus.FAILED
    assert len(result.state.accounts) == 2  # both were opened...
    assert Directory(accounts).accounts() == {}  # ...and both closed again
    assert set(result.compensated) == {"open_crm", "open_billing"}
    assert "identity document is expired" in (result.reason or "")
    journal = SQLiteStore(tmp_path / "podium.db")
    await journal.open()
    events = [entry.event for entry in await journal.read(result.run_id)]
    await journal.close()
    assert any(isinstance(e, CompensationStarted) for e in events)
    assert sorted(e.name for e in events if isinstance(e, Compensated)) == ["open_billing", "open_crm"]


async def test_an_accepted_application_keeps_its_accounts(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.json"
    store = f"sqlite:///{tmp_path / 'podium.db'}"
    result = await main(["--customer", "Ada", "--document", "valid", "--directory", str(accounts), "--store", store])
    assert result.ok
    assert sorted(Directory(accounts).accounts()) == sorted(result.state.accounts)
