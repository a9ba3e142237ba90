"""Policies and scorecards on the compacted policy topic (``credit.policy``): publishing and
history. Both are versioned documents with an instant they take effect; one topic holds both,
so one ordered log says what decided at any instant (the watcher that follows it for the
workers is :mod:`streams.adapters.kafka.policy_watcher`).

A policy record's key is its version; a scorecard's is ``scorecard/<version>`` (``/`` is not
allowed in a policy version, so the two never share a key and compaction keeps both). A
candidate in shadow (:mod:`streams.core.shadow`) is kept under ``shadow/policy`` and
``shadow/scorecard``, and ``shadow/stop`` removes it: the latest of them, in offset order,
says what is in shadow.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from aiokafka import AIOKafkaProducer
from pydantic import AwareDatetime, BaseModel, ConfigDict

from streams.adapters.kafka.client import producer_options, start_client
from streams.adapters.kafka.read import read_to_end
from streams.core.policy import InvalidPolicy, Policy, parse_policy, policy_json
from streams.core.scorecard import (
    InvalidScorecard,
    ScorecardDocument,
    ScorecardTimeline,
    load_default_scorecard,
    parse_scorecard,
    scorecard_json,
)
from streams.core.shadow import Candidate
from streams.core.timeline import PolicyTimeline
from streams.settings import Settings
from streams.topics import Topics

Kind = Literal["policy", "scorecard"]
#: Key prefix of scorecard records on the policy topic.
SCORECARD_KEY_PREFIX = "scorecard/"
#: Key prefix of the shadow records: ``shadow/policy``, ``shadow/scorecard``, ``shadow/stop``.
SHADOW_KEY_PREFIX = "shadow/"
SHADOW_STOP_KEY = SHADOW_KEY_PREFIX + "stop"


class PolicyEnvelope(BaseModel):
    """One record of the policy topic: a policy or a scorecard, with its audit fields."""

    model_config = ConfigDict(extra="ignore")

    policy: dict[str, Any] | None = None
    scorecard: dict[str, Any] | None = None
    applied_at: AwareDatetime
    #: When the version takes effect (records written before this field: ``applied_at``).
    effective_from: AwareDatetime | None = None
    applied_by: str | None = None
    comment: str | None = None
    #: A ``shadow/stop`` record: nothing is in shadow from here on.
    stopped: bool = False


@dataclass(frozen=True)
class PolicyRecord:
    """A version found on the policy topic; its document (``policy`` or ``scorecard``, as
    ``kind`` says) is None when it was invalid."""

    offset: int
    version: str
    applied_at: datetime | None
    applied_by: str | None
    comment: str | None
    policy: Policy | None
    problems: tuple[str, ...] = ()
    effective_from: datetime | None = None
    kind: Kind = "policy"
    scorecard: ScorecardDocument | None = None
    #: A candidate installed in shadow (or, with ``stopped``, removed), not a live version.
    shadow: bool = False
    stopped: bool = False

    @property
    def valid(self) -> bool:
        """Whether the record carries a usable document (or is a shadow stop)."""
        return self.policy is not None or self.scorecard is not None or self.stopped


def _first_versions(records: Sequence[PolicyRecord], kind: Kind) -> list[tuple[datetime, Any]]:
    """The valid versions of one kind with the instants they take effect; a version applied
    twice counts once, from its first record: versions are immutable."""
    seen: set[str] = set()
    versions: list[tuple[datetime, Any]] = []
    for r in records:
        document = r.policy if kind == "policy" else r.scorecard
        if r.shadow or r.kind != kind or document is None or r.effective_from is None:
            continue
        if r.version in seen:
            continue
        seen.add(r.version)
        versions.append((r.effective_from, document))
    return versions


def policy_timeline(
    records: Sequence[PolicyRecord],
    base: Policy,
    base_card: ScorecardDocument | None = None,
) -> PolicyTimeline:
    """Every valid policy and scorecard version of a history with the instants they take
    effect (``base`` and ``base_card``, the shipped ones, before the first)."""
    cards = ScorecardTimeline.of(
        base_card or load_default_scorecard(), _first_versions(records, "scorecard")
    )
    return PolicyTimeline.of(base, _first_versions(records, "policy"), cards)


def shadow_candidate(records: Sequence[PolicyRecord]) -> Candidate | None:
    """What is in shadow after ``records`` (in offset order): the latest policy and scorecard
    installed since the last stop, or None."""
    policy: Policy | None = None
    card: ScorecardDocument | None = None
    latest: PolicyRecord | None = None
    for r in sorted(records, key=lambda r: r.offset):
        if not r.shadow or not r.valid:
            continue
        if r.stopped:
            policy, card, latest = None, None, None
            continue
        policy = r.policy or policy
        card = r.scorecard or card
        latest = r
    if latest is None or latest.applied_at is None:
        return None
    return Candidate(policy, card, latest.applied_at, latest.applied_by, latest.comment)


def decode_policy_record(offset: int, key: bytes | None, value: bytes | None) -> PolicyRecord:
    """Parse a policy-topic record; invalid documents are reported, never raised."""
    record = _decode(offset, key, value)
    name = key.decode(errors="replace") if key else ""
    if not name.startswith(SHADOW_KEY_PREFIX):
        return record
    return replace(record, shadow=True, stopped=name == SHADOW_STOP_KEY and record.stopped)


def _decode(offset: int, key: bytes | None, value: bytes | None) -> PolicyRecord:
    version = key.decode(errors="replace") if key else "?"
    kind: Kind = "scorecard" if version.startswith(SCORECARD_KEY_PREFIX) else "policy"
    if version == SHADOW_KEY_PREFIX + "scorecard":
        kind = "scorecard"
    try:
        envelope = PolicyEnvelope.model_validate_json(value or b"")
    except ValueError as exc:
        return PolicyRecord(
            offset, version, None, None, None, None, (f"envelope: {exc}",), kind=kind
        )
    audit = (envelope.applied_at, envelope.applied_by, envelope.comment)
    effective = envelope.effective_from or envelope.applied_at
    if envelope.stopped:
        return PolicyRecord(offset, version, *audit, None, stopped=True)
    if envelope.scorecard is not None:
        try:
            card = parse_scorecard(json.dumps(envelope.scorecard))
        except InvalidScorecard as exc:
            return PolicyRecord(
                offset, version, *audit, None, tuple(exc.problems), kind="scorecard"
            )
        return PolicyRecord(
            offset, card.version, *audit, None, (), effective, "scorecard", scorecard=card
        )
    if envelope.policy is None:
        return PolicyRecord(offset, version, *audit, None, ("neither a policy nor a scorecard",))
    try:
        policy = parse_policy(json.dumps(envelope.policy))
    except InvalidPolicy as exc:
        return PolicyRecord(offset, version, *audit, None, tuple(exc.problems))
    return PolicyRecord(offset, policy.version, *audit, policy, effective_from=effective)


async def read_policy_history(settings: Settings) -> list[PolicyRecord]:
    """Every policy and scorecard record, oldest first."""
    topic = Topics.from_settings(settings).policy
    records: list[PolicyRecord] = []
    async for batch in read_to_end(settings, [topic]):
        records.extend(decode_policy_record(r.offset, r.key, r.value) for r in batch)
    return sorted(records, key=lambda r: r.offset)


async def read_policy_timeline(
    settings: Settings, base: Policy, base_card: ScorecardDocument | None = None
) -> PolicyTimeline:
    """The policy and scorecard versions on the topic with their effective instants."""
    return policy_timeline(await read_policy_history(settings), base, base_card)


@dataclass(frozen=True)
class Published:
    """The outcome of :func:`publish_policy` / :func:`publish_scorecard`."""

    offset: int
    effective_from: datetime
    #: False when this version was already on the topic (nothing was written).
    new: bool = True


async def publish_policy(
    settings: Settings,
    policy: Policy,
    applied_by: str | None = None,
    comment: str | None = None,
    effective_from: datetime | None = None,
) -> Published:
    """Publish a validated policy, in effect from ``effective_from`` (default: the configured
    activation delay from now, so every worker has it by then). Versions are immutable: the
    same version again publishes nothing; with other content it is refused."""
    return await _publish(
        settings,
        "policy",
        policy.version,
        policy_json(policy),
        policy.model_dump(mode="json"),
        (applied_by, comment, effective_from),
    )


async def publish_scorecard(
    settings: Settings,
    card: ScorecardDocument,
    applied_by: str | None = None,
    comment: str | None = None,
    effective_from: datetime | None = None,
) -> Published:
    """Publish a validated scorecard, like :func:`publish_policy`: it scores from
    ``effective_from`` on; a version is immutable."""
    return await _publish(
        settings,
        "scorecard",
        card.version,
        scorecard_json(card),
        card.model_dump(mode="json", exclude_none=True),
        (applied_by, comment, effective_from),
    )


def _problem(kind: Kind, text: str) -> ValueError:
    return InvalidPolicy([text]) if kind == "policy" else InvalidScorecard([text])


def _document_json(record: PolicyRecord) -> str | None:
    if record.policy is not None:
        return policy_json(record.policy)
    if record.scorecard is not None:
        return scorecard_json(record.scorecard)
    return None


async def _publish(
    settings: Settings,
    kind: Kind,
    version: str,
    canonical: str,
    document: dict[str, Any],
    audit: tuple[str | None, str | None, datetime | None],
) -> Published:
    applied_by, comment, effective_from = audit
    earlier = _same_version(await read_policy_history(settings), kind, version, canonical)
    if earlier is not None:
        assert earlier.effective_from is not None
        return Published(earlier.offset, earlier.effective_from, new=False)
    applied_at = datetime.now(UTC)
    activation = timedelta(seconds=settings.policy_activation_seconds)
    effective = effective_from or applied_at + activation
    if effective < applied_at:
        raise _problem(kind, f"effective_from is in the past: a {kind} cannot rewrite history")
    envelope = {
        kind: document,
        "applied_at": applied_at.isoformat(),
        "effective_from": effective.isoformat(),
        "applied_by": applied_by,
        "comment": comment,
    }
    key = version if kind == "policy" else SCORECARD_KEY_PREFIX + version
    return Published(await _send(settings, key, envelope), effective)


def _same_version(
    records: Sequence[PolicyRecord], kind: Kind, version: str, canonical: str
) -> PolicyRecord | None:
    """The live record of this version, if any; versions are immutable, so other content
    under it is refused."""
    for record in records:
        if record.shadow or record.kind != kind or record.version != version or not record.valid:
            continue
        if _document_json(record) != canonical:
            raise _problem(
                kind,
                f"version {version} was already applied with different content; "
                f"give the changed {kind} a new version",
            )
        return record
    return None


async def _send(settings: Settings, key: str, envelope: dict[str, Any]) -> int:
    producer = AIOKafkaProducer(**producer_options(settings))
    await start_client(producer, settings)
    try:
        metadata = await producer.send_and_wait(
            Topics.from_settings(settings).policy,
            json.dumps(envelope, ensure_ascii=False).encode(),
            key=key.encode(),
        )
        return int(metadata.offset)
    finally:
        await producer.stop()


async def publish_shadow(
    settings: Settings,
    policy: Policy | None = None,
    card: ScorecardDocument | None = None,
    applied_by: str | None = None,
    comment: str | None = None,
) -> int:
    """Install a candidate policy and/or scorecard in shadow (beside whatever is in shadow
    already); returns the last record's offset. A version already applied live with other
    content is refused (promoting it could not publish it)."""
    installs: list[tuple[Kind, str, str, dict[str, Any]]] = []
    if policy is not None:
        installs.append(
            ("policy", policy.version, policy_json(policy), policy.model_dump(mode="json"))
        )
    if card is not None:
        dumped = card.model_dump(mode="json", exclude_none=True)
        installs.append(("scorecard", card.version, scorecard_json(card), dumped))
    history = await read_policy_history(settings)
    offset = -1
    for kind, version, canonical, document in installs:
        _same_version(history, kind, version, canonical)
        envelope = {
            kind: document,
            "applied_at": datetime.now(UTC).isoformat(),
            "applied_by": applied_by,
            "comment": comment,
        }
        offset = await _send(settings, SHADOW_KEY_PREFIX + kind, envelope)
    return offset


async def stop_shadow(
    settings: Settings, applied_by: str | None = None, comment: str | None = None
) -> int:
    """Remove whatever is in shadow; returns the stop record's offset."""
    envelope = {
        "applied_at": datetime.now(UTC).isoformat(),
        "applied_by": applied_by,
        "comment": comment,
        "stopped": True,
    }
    return await _send(settings, SHADOW_STOP_KEY, envelope)
