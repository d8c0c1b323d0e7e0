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
