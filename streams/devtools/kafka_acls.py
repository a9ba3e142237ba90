"""The Kafka ACLs creditline needs, in one place: the worker's principal and an operator's.

:func:`acl_rules` is the only list: ``creditline kafka-acls`` prints it as ``kafka-acls``
commands, docs/operations.md's table is generated from it, and the e2e tests grant exactly it on a
broker that runs Kafka's authorizer. Every resource is a literal name (no prefixes), so a
principal can reach nothing but creditline's own topics and groups. Kafka lets ``Read`` and
``Write`` imply ``Describe``, so ``Describe`` is listed only where nothing else is granted.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from streams.settings import Settings
from streams.topics import Topics

#: The operators' principal when none is given.
DEFAULT_OPERATOR = "creditline-ops"
#: The worker's principal when the settings name no SASL user.
DEFAULT_WORKER = "creditline"

ResourceType = Literal["topic", "group"]
Operation = Literal["Read", "Write", "Create", "Describe"]


@dataclass(frozen=True, slots=True)
class AclRule:
    """Allow ``principal`` the ``operations`` on the literal resources ``names``."""

    principal: str
    resource_type: ResourceType
    names: tuple[str, ...]
    operations: tuple[Operation, ...]
    why: str

    def bindings(self) -> list[tuple[str, ResourceType, str, Operation]]:
        """One (principal, resource type, name, operation) per ACL entry."""
        return [
            (self.principal, self.resource_type, name, op)
            for name in self.names
            for op in self.operations
        ]


def worker_groups(settings: Settings) -> tuple[str, ...]:
    """The consumer groups of every worker role (events and decisions)."""
    roles = ("all", "events", "decisions")
    groups = (settings.model_copy(update={"worker_role": r}).consumer_groups for r in roles)
    return tuple(dict.fromkeys(g for role_groups in groups for g in role_groups))


def worker_principal(settings: Settings) -> str:
    """``User:<the configured SASL user>`` (``User:creditline`` without one)."""
    return f"User:{settings.kafka_sasl_username or DEFAULT_WORKER}"


def worker_rules(settings: Settings, principal: str | None = None) -> list[AclRule]:
    """What every worker role needs, and nothing more (proved by the e2e tests)."""
    user = principal or worker_principal(settings)
    topics = Topics.from_settings(settings)
    groups = worker_groups(settings)
    return [
        AclRule(
            user,
            "topic",
            (*topics.inputs, topics.policy),
            ("Read",),
            "the worker's consumers and the policy watcher read them; the lag metric reads "
            "their end offsets",
        ),
        AclRule(
            user,
            "topic",
            (
                topics.loan_decisions,
                topics.loan_decisions_shadow,
                topics.line_status,
                topics.dead_letter,
            ),
            ("Write",),
            "decisions (a candidate's in shadow too), status changes and dead letters are "
            "published (with idempotence: `Write` on a topic is enough, nothing on the cluster)",
        ),
        AclRule(
            user,
            "topic",
            (topics.loan_requests,),
            ("Write",),
            "the HTTP decision API publishes the loan requests it is posted (never the event "
            "topics: a worker cannot forge an event; a request only gets a decision, which it "
            "publishes anyway)",
        ),
        AclRule(
            user,
            "topic",
            (topics.loan_decisions,),
            ("Read",),
            "the HTTP decision API reads the decisions of the requests it waits for",
        ),
        AclRule(
            user,
            "group",
            groups,
            ("Read",),
            "join the group and commit offsets; the lag metric reads the committed offsets",
        ),
    ]


def operator_rules(
    settings: Settings, principal: str = f"User:{DEFAULT_OPERATOR}"
) -> list[AclRule]:
    """What the operator commands need (``topics``, ``policy``, ``dlq``, ``request``,
    ``simulate``, ``replay``)."""
    topics = Topics.from_settings(settings)
    everything = tuple(spec.name for spec in topics.specs(settings))
    return [
        AclRule(
            principal,
            "topic",
            everything,
            ("Create", "Describe"),
            "`creditline topics` creates them with the configured replication",
        ),
        AclRule(
            principal,
            "topic",
            topics.inputs,
            ("Write",),
            "`request`, `simulate` and `dlq redrive` publish to them",
        ),
        AclRule(
            principal,
            "topic",
            (*topics.inputs, topics.policy),
            ("Read",),
            "`replay` folds the events again with the policy history; `replay` and `explain` "
            "re-derive decisions from the requests",
        ),
        AclRule(
            principal,
            "topic",
            (topics.loan_decisions, topics.loan_decisions_shadow),
            ("Read",),
            "`request` and `simulate` wait for the decisions; `explain` and `replay` read them; "
            "`shadow status` compares the candidate's with them",
        ),
        AclRule(
            principal,
            "topic",
            (topics.dead_letter,),
            ("Read",),
            "`dlq list`, `show` and `redrive` read dead letters",
        ),
        AclRule(
            principal,
            "topic",
            (topics.policy,),
            ("Write",),
            "`policy apply` publishes a version (after reading the history)",
        ),
    ]


def acl_rules(settings: Settings, operator: str = f"User:{DEFAULT_OPERATOR}") -> list[AclRule]:
    """Every ACL creditline needs: the worker's, then the operator's."""
    return [*worker_rules(settings), *operator_rules(settings, operator)]


def kafka_acls_commands(
    rules: Iterable[AclRule], bootstrap: str, command_config: str = "admin.properties"
) -> list[str]:
    """One ``kafka-acls --add`` command per rule (Kafka's own CLI, run as a super user)."""
    commands = []
    for rule in rules:
        args: list[str] = [
            "kafka-acls",
            "--bootstrap-server",
            bootstrap,
            "--command-config",
            command_config,
            "--add",
            "--allow-principal",
            rule.principal,
        ]
        for op in rule.operations:
            args += ["--operation", op]
        for name in rule.names:
            args += [f"--{rule.resource_type}", name]
        commands.append(shlex.join(args))
    return commands


def _names(names: Sequence[str]) -> str:
    return ", ".join(f"`{name}`" for name in names)


def acl_markdown() -> str:
    """docs/operations.md's ACL table and commands, for the default settings."""
    # The defaults, whatever CREDITLINE_* variables this process has.
    settings = Settings.model_construct()
    lines = ["| principal | resource | operations | why |", "|---|---|---|---|"]
    for rule in acl_rules(settings):
        resource = f"{rule.resource_type}s {_names(rule.names)}"
        ops = ", ".join(f"`{op}`" for op in rule.operations)
        lines.append(f"| `{rule.principal}` | {resource} | {ops} | {rule.why} |")
    commands = kafka_acls_commands(acl_rules(settings), "kafka-1.example.internal:9093")
    return "\n".join([*lines, "", "```sh", *commands, "```"]) + "\n"
