"""Topic names and how each topic is created: the only module that knows them."""

from __future__ import annotations

from dataclasses import dataclass

from streams.core.decoding import RecordKind
from streams.settings import Settings


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """How one topic is created."""

    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]


@dataclass(frozen=True, slots=True)
class Topics:
    """The topic names in use, from settings."""

    repayments: str
    spending: str
    assets: str
    loan_requests: str
    loan_decisions: str
    loan_decisions_shadow: str
    dead_letter: str
    line_status: str
    policy: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        """The configured names."""
        return cls(
            repayments=settings.topic_repayments,
            spending=settings.topic_spending,
            assets=settings.topic_assets,
            loan_requests=settings.topic_loan_requests,
            loan_decisions=settings.topic_loan_decisions,
            loan_decisions_shadow=settings.topic_loan_decisions_shadow,
            dead_letter=settings.topic_dead_letter,
            line_status=settings.topic_line_status,
            policy=settings.topic_policy,
        )

    @property
    def events(self) -> tuple[str, str, str]:
        """The input topics folded into user state."""
        return (self.repayments, self.spending, self.assets)

    @property
    def inputs(self) -> tuple[str, str, str, str]:
        """Every topic creditline consumes."""
        return (*self.events, self.loan_requests)

    def kind_of(self, topic: str) -> RecordKind:
        """What a consumed topic carries (``KeyError`` for a topic creditline does not consume)."""
        # Called once per record: comparisons, not a dict built per call.
        if topic == self.repayments:
            return RecordKind.REPAYMENT
        if topic == self.spending:
            return RecordKind.SPENDING
        if topic == self.assets:
            return RecordKind.ASSET
        if topic == self.loan_requests:
            return RecordKind.LOAN_REQUEST
        raise KeyError(topic)

    def topic_for(self, kind: RecordKind) -> str:
        """The topic a record of ``kind`` is published to."""
        return {
            RecordKind.REPAYMENT: self.repayments,
            RecordKind.SPENDING: self.spending,
            RecordKind.ASSET: self.assets,
            RecordKind.LOAN_REQUEST: self.loan_requests,
        }[kind]

    def specs(self, settings: Settings) -> list[TopicSpec]:
        """Every topic with its partition count and configuration.

        All inputs share one partition count so that Faust co-partitions them. Inputs keep
        their records (``input_retention_ms``, default for ever) so state can be replayed.
        """
        base = {
            "max.message.bytes": str(settings.max_message_bytes),
            # With acks=all, a write succeeds only once this many replicas have it.
            "min.insync.replicas": str(settings.topic_min_insync_replicas),
            "unclean.leader.election.enable": "false",
        }
        keep_inputs = {**base, "retention.ms": str(settings.input_retention_ms)}
        outputs = {**base, "retention.ms": str(settings.output_retention_ms)}

        def spec(name: str, config: dict[str, str]) -> TopicSpec:
            return TopicSpec(
                name, settings.topic_partitions, settings.topic_replication_factor, config
            )

        # Every version ever applied stays readable (key = version), for `policy history`.
        policy = TopicSpec(
            self.policy,
            1,
            settings.topic_replication_factor,
            {**base, "cleanup.policy": "compact", "retention.ms": "-1"},
        )
        # Loan requests are stamped by the broker when appended: the trusted arrival time a
        # request is judged against (a producer's own timestamp could be backdated).
        requests = {**keep_inputs, "message.timestamp.type": "LogAppendTime"}
        return [
            *(spec(name, keep_inputs) for name in self.events),
            spec(self.loan_requests, requests),
            spec(self.loan_decisions, outputs),
            spec(self.loan_decisions_shadow, outputs),
            spec(self.dead_letter, outputs),
            spec(self.line_status, outputs),
            policy,
        ]
