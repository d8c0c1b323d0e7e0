"""acytoo_raw._loop: a binding tells its own loop from any other, and reads anyio's clock."""

from __future__ import annotations

import anyio
import pytest

from acytoo_raw._loop import LoopBinding, bind_to_running_loop

pytestmark = pytest.mark.anyio


async def test_a_binding_knows_its_loop_and_reads_anyios_clock() -> None:
    binding = bind_to_running_loop()
    assert binding.is_current()
    before = anyio.current_time()
    now = binding.clock()
    after = anyio.current_time()
    assert before <= now <= after
    assert binding.cancelled is anyio.get_cancelled_exc_class()
    assert binding.token == anyio.lowlevel.current_token()


async def test_a_binding_is_current_in_every_task_of_its_loop() -> None:
    binding = bind_to_running_loop()
    seen: list[bool] = []

    async def child() -> None:
        seen.append(binding.is_current())

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(child)
    assert seen == [True]


@pytest.mark.parametrize("first", ["asyncio", "trio"])
@pytest.mark.parametrize("second", ["asyncio", "trio"])
def test_a_binding_is_not_current_in_another_run(first: str, second: str) -> None:
    async def bind() -> LoopBinding:
        return bind_to_running_loop()

    async def check(binding: LoopBinding) -> tuple[bool, bool]:
        return binding.is_current(), bind_to_running_loop().is_current()

    binding = anyio.run(bind, backend=first)
    assert anyio.run(check, binding, backend=second) == (False, True)
    assert binding.is_current() is False  # No loop runs at all.


def test_an_asyncio_binding_is_not_current_in_a_trio_guest_run_on_that_loop() -> None:
    # trio's guest mode runs trio on top of a running asyncio loop: the loop
    # is the same, the tasks are trio's. A Client bound to asyncio must not
    # take trio's tasks for its own.
    import asyncio

    import trio

    async def trio_side(binding: LoopBinding) -> tuple[bool, bool]:
        return binding.is_current(), bind_to_running_loop().is_current()

    async def host() -> tuple[bool, tuple[bool, bool]]:
        binding = bind_to_running_loop()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[object] = loop.create_future()
        trio.lowlevel.start_guest_run(
            trio_side,
            binding,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            done_callback=done.set_result,
        )
        outcome = await asyncio.wait_for(done, 10)
        return binding.is_current(), outcome.unwrap()  # type: ignore[attr-defined]

    assert asyncio.run(host()) == (True, (False, True))
