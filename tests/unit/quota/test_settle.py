"""A container counts its own settle at once: no local refusal for units an answer did not use."""

from __future__ import annotations

from tollway.quota.memory import CounterMemory
from tollway.quota.settle import Settlement, Settlements
from tollway.quota.store import Counters


async def test_a_queued_refund_lowers_what_this_container_remembers_before_dynamodb_answers() -> None:
    memory = CounterMemory()
    memory.put("D2026-12-02#0#alice", Counters(used=160, window="r1", requests=1, windows=("r1",)), 5.0)
    settlements = Settlements(store=None, memory=memory)  # type: ignore[arg-type] - queued, never sent
    settlements.add(Settlement("D2026-12-02#0#alice", -117, 0, "r1", "chat", "alice", "rid"))
    assert memory.get("D2026-12-02#0#alice").used == 43
    assert memory.seen_at("D2026-12-02#0#alice") == 5.0  # still as old as the DynamoDB answer it came from
    assert settlements.pending() == 1
