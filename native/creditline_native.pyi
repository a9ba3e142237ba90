"""creditline's status machine and plain-record decoder, compiled
(``streams/core/compiled.py`` and ``streams/core/plain_records.py`` are its only callers;
the Python core is the reference)."""

from typing import Any

Condition = tuple[int, float | None, float | None]
RuleArgs = tuple[list[Condition], list[Condition]]
Line = tuple[int, int, bool]
#: (occurred, kind, event id, loan id or asset type, cents, exponent, counts as, days past
#: due, verified)
EventArgs = tuple[int, int, str, str, int, int, int, int, bool]
Snapshot = tuple[str, int, str, int, bool]
FoldArgs = tuple[
    int,
    int,
    tuple[int, int, int],
    tuple[float, float, float],
    list[tuple[int, int]],
    list[tuple[int, int]],
    list[tuple[int, int, int]],
    list[Snapshot],
    list[Snapshot],
]
StartArgs = tuple[Line | None, int | None, bytes | None, tuple[int, int] | None]

class Rules:
    def __init__(
        self,
        base_points: int,
        characteristics: list[
            tuple[int, list[float] | None, list[tuple[float, int]] | None, list[int], int]
        ],
        segments: list[tuple[RuleArgs, int, int]],
        standard: tuple[int, int],
        exceptions: list[tuple[list[int], RuleArgs, int, int]],
        min_dwell_us: int,
        freeze: tuple[int, int],
        decay_edges: tuple[list[float], list[float], list[float]],
        history_edges: list[float],
    ) -> None: ...

#: (each characteristic's points, the segment's index, the exception's index or None)
Stated = tuple[list[int], int, int | None]

def advance(
    stages: list[tuple[int, Rules]],
    events: list[EventArgs],
    index: int,
    start: StartArgs,
    until: int,
    horizon_us: int,
) -> (
    tuple[
        list[Line],
        int | None,
        int | None,
        bytes | None,
        tuple[int, list[float | None], Stated] | None,
    ]
    | None
): ...
def timedelta_micros(value: float, unit_us: int) -> int | None: ...
def decay_weight(elapsed_us: int) -> float: ...
def good_months(
    rules: Rules, state: FoldArgs, ends: list[int]
) -> list[list[int | None]] | None: ...
def pack_ledger(blob: bytes) -> tuple[list[EventArgs], list[int], list[int]] | None: ...
def stored_loan_ids(data: bytes) -> list[str] | None: ...
def resume_point(
    records: bytes, first: int, moment: int, horizon_us: int
) -> tuple[int, int] | None: ...
def decode_plain(
    kind: int, value: bytes
) -> tuple[str, str, int, list[Any], bytes, bytes] | None: ...
