"""Prices per million tokens, to turn usage into money. Extend or override: ``podium.models.PRICES["x"] = ...``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PRICES", "Price", "cost"]


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million input and output tokens."""

    input_per_million: float
    output_per_million: float


PRICES: dict[str, Price] = {
    # local and test models cost nothing
    "local": Price(0.0, 0.0),
    "test": Price(0.0, 0.0),
    # list prices these models were published with (per million tokens); check your provider's current page
    # and override here, e.g. PRICES["openai:gpt-4.1-mini"] = Price(0.40, 1.60)
    "openai:gpt-4.1": Price(2.00, 8.00),
    "openai:gpt-4.1-mini": Price(0.40, 1.60),
    "openai:gpt-4.1-nano": Price(0.10, 0.40),
    "openai:gpt-4o": Price(2.50, 10.00),
    "openai:gpt-4o-mini": Price(0.15, 0.60),
    "anthropic:claude-3-5-haiku-latest": Price(0.80, 4.00),
    "anthropic:claude-sonnet-4-5": Price(3.00, 15.00),
    "anthropic:claude-opus-4-1": Price(15.00, 75.00),
}


def cost(model: str, input_tokens: int, output_tokens: int) -> float:
    """What a call cost in US dollars; 0.0 for a model with no price in :data:`PRICES`."""
    price = PRICES.get(model)
    if price is None:
        return 0.0
    return (input_tokens * price.input_per_million + output_tokens * price.output_per_million) / 1_000_000
