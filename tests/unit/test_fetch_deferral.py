"""intyg.fetch.deferrable / non_blocking: inside the block a fetch raises WouldBlock (and
fetches nothing); outside, and after the block, it fetches."""

from __future__ import annotations

import asyncio

import pytest

from intyg.fetch import Fetch, FetchResponse, WouldBlock, deferrable, non_blocking


def _counting() -> tuple[list[str], Fetch]:
    calls: list[str] = []

    def fetch(url: str, accept: str) -> FetchResponse:
        calls.append(url)
        return FetchResponse(b"{}")

    return calls, deferrable(fetch)


def test_outside_the_block_it_fetches() -> None:
    calls, fetch = _counting()
    assert fetch("https://a.example/x", "application/json").body == b"{}"
    assert calls == ["https://a.example/x"]


def test_inside_the_block_it_refuses_without_fetching() -> None:
    calls, fetch = _counting()
    with non_blocking(), pytest.raises(WouldBlock):
        fetch("https://a.example/x", "application/json")
    assert calls == []
    fetch("https://a.example/y", "application/json")  # the block is over
    assert calls == ["https://a.example/y"]


def test_the_flag_is_reset_when_the_block_raises() -> None:
    calls, fetch = _counting()
    with pytest.raises(WouldBlock), non_blocking():
        fetch("https://a.example/x", "application/json")
    fetch("https://a.example/x", "application/json")
    assert calls == ["https://a.example/x"]


def test_a_thread_started_after_the_block_may_fetch() -> None:
    calls, fetch = _counting()

    async def main() -> None:
        try:
            with non_blocking():
                fetch("https://a.example/x", "application/json")
        except WouldBlock:
            await asyncio.to_thread(fetch, "https://a.example/x", "application/json")

    asyncio.run(main())
    assert calls == ["https://a.example/x"]
