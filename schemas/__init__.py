"""The wire contract of creditline: pydantic models and the JSON Schema files generated from them.

Every Kafka value is a UTF-8 JSON object of one of these models; every topic is keyed by
``user_id``. The files in ``schemas/json/`` are generated from these models
(``creditline schemas export``) and a test fails when they drift.
"""

from schemas.models import (
    AssetEvent,
    AssetType,
    DisplayedStatus,
    EffectiveStatus,
    InputEvent,
    LineStatusChanged,
    LoanDecision,
    LoanRequest,
    Outcome,
    Reason,
    RepaymentEvent,
    SpendingEvent,
)

__all__ = [
    "AssetEvent",
    "AssetType",
    "DisplayedStatus",
    "EffectiveStatus",
    "InputEvent",
    "LineStatusChanged",
    "LoanDecision",
    "LoanRequest",
    "Outcome",
    "Reason",
    "RepaymentEvent",
    "SpendingEvent",
]
