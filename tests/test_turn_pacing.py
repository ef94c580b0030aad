"""turn_pacing.py: at most `per_turn` starts in each turn of the event loop, in the
order of arrival."""

from __future__ import annotations

import asyncio

import pytest

from authapi.turn_pacing import TurnPacer
from tests.support.loop_turns import counting_turns


async def turns_until(done: asyncio.Event, bound: int = 100) -> int:
    """Turns of the loop taken until `done` (each `sleep(0)` is one)."""
    for turn in range(bound):
        if done.is_set():
            return turn
        await asyncio.sleep(0)
    raise AssertionError(f"not done within {bound} turns")


async def test_a_turns_room_goes_at_once_the_rest_in_later_turns_in_order() -> None:
    pacer = TurnPacer(per_turn=2)
    began: list[tuple[int, int]] = []  # (number, turn)

    with counting_turns() as counter:

        async def one(number: int) -> None:
            await pacer.turn()
            began.append((number, counter.turn))

        await asyncio.gather(*(asyncio.create_task(one(number)) for number in range(7)))

    assert [number for number, _ in began] == list(range(7))
    turns = [turn for _, turn in began]
    assert max(turns.count(turn) for turn in turns) == 2
    assert len(set(turns)) == 4  # 2 + 2 + 2 + 1


async def test_admit_calls_back_those_that_waited_and_skips_the_gone() -> None:
    pacer = TurnPacer(per_turn=1)
    called: list[str] = []
    done = asyncio.Event()

    def waiting(name: str, *, gone: bool = False) -> bool:
        called.append(name)
        if name == "last":
            done.set()
        return not gone

    assert pacer.admit(lambda: pytest.fail("room: not called back"))
    assert not pacer.admit(lambda: waiting("gone", gone=True))
    assert not pacer.admit(lambda: waiting("second"))
    assert not pacer.admit(lambda: waiting("last"))
    turns = await turns_until(done)

    assert called == ["gone", "second", "last"]
    assert turns <= 3  # the gone one took no turn's room


async def test_a_callback_that_raises_strands_nobody(caplog: pytest.LogCaptureFixture) -> None:
    pacer = TurnPacer(per_turn=1)
    done = asyncio.Event()

    def raises() -> bool:
        raise RuntimeError("a protocol's bug")

    def last() -> bool:
        done.set()
        return True

    assert pacer.admit(lambda: True)
    assert not pacer.admit(raises)
    assert not pacer.admit(last)
    await turns_until(done)  # the loop logs the exception; the next one still goes

    assert "a protocol's bug" in caplog.text


async def test_a_cancelled_wait_takes_no_room(caplog: pytest.LogCaptureFixture) -> None:
    pacer = TurnPacer(per_turn=1)
    began: list[str] = []

    async def one(name: str) -> None:
        await pacer.turn()
        began.append(name)

    names = ["holder", "cancelled", "first", "second"]
    tasks = {name: asyncio.create_task(one(name)) for name in names}
    await asyncio.sleep(0)  # the holder has this turn's room, the others wait
    tasks["cancelled"].cancel()
    await asyncio.gather(tasks["holder"], tasks["first"], tasks["second"])

    assert began == ["holder", "first", "second"]
    assert not caplog.records  # its future was skipped, not set (InvalidStateError)


async def test_one_no_longer_wanted_when_its_turn_comes_takes_no_room() -> None:
    pacer = TurnPacer(per_turn=1)
    wanted = {"holder": True, "unwanted": True, "next": True}
    outcome: list[tuple[str, bool, int]] = []  # (name, went, turn)

    with counting_turns() as counter:

        async def one(name: str) -> None:
            went = await pacer.turn(lambda: wanted[name])
            outcome.append((name, went, counter.turn))

        tasks = [asyncio.create_task(one(name)) for name in wanted]
        await asyncio.sleep(0)  # the holder has this turn's room, the others wait
        wanted["unwanted"] = False  # asked again when its turn comes
        await asyncio.gather(*tasks)

    assert [(name, went) for name, went, _ in outcome] == [
        ("holder", True),
        ("unwanted", False),
        ("next", True),
    ]
    _, _, unwanted_turn = outcome[1]
    _, _, next_turn = outcome[2]
    assert next_turn == unwanted_turn  # the unwanted one left the turn's room to it


async def test_one_not_wanted_at_once_never_waits() -> None:
    pacer = TurnPacer(per_turn=1)
    assert await pacer.turn()  # this turn's room is taken
    with counting_turns() as counter:
        before = counter.turn
        assert not await pacer.turn(lambda: False)
        assert counter.turn == before
