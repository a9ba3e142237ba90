"""creditline's status-machine review loop, compiled (``streams/core/compiled.py`` is its
only caller; the Python core is the reference)."""

Condition = tuple[int, float | None, float | None]
RuleArgs = tuple[list[Condition], list[Condition]]
Line = tuple[int, int, bool]
StateArgs = tuple[
    int,
    int,
    float,
    float,
    float,
    list[tuple[int, int]],
    tuple[float | None, ...],
    list[tuple[int, int]],
    list[tuple[int, int]],
]

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
    def run(
        self,
        state: StateArgs,
        line: Line | None,
        moment: int,
        stop: int,
        until: int,
        horizon_us: int,
    ) -> tuple[list[Line], int, int] | None: ...

def timedelta_micros(value: float, unit_us: int) -> int | None: ...
