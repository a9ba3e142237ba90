"""The Kafka ACL list (streams/devtools/kafka_acls.py) and the commands printed from it."""

from __future__ import annotations

from streams.devtools.kafka_acls import acl_rules, kafka_acls_commands, operator_rules, worker_rules
from streams.settings import Settings
from streams.topics import Topics


def test_the_worker_gets_its_topics_and_groups_and_nothing_else() -> None:
    settings = Settings.model_construct(app_id="app", kafka_sasl_username="svc")
    rules = worker_rules(settings)
    bindings = {b for rule in rules for b in rule.bindings()}
    assert len(bindings) == 13
    assert {b[0] for b in bindings} == {"User:svc"}
    topics = Topics.from_settings(settings)
    read = {b[2] for b in bindings if b[1] == "topic" and b[3] == "Read"}
    assert set(topics.inputs) | {topics.policy} <= read
    assert topics.dead_letter not in read  # dead letters are the operators' to read
    # Events are folded by "app", loan requests answered by "app-decisions"; Faust joins no
    # group, so it needs no group-leader topic either.
    assert {b[2] for b in bindings if b[1] == "group"} == {"app", "app-decisions"}
    assert not any("__assignor" in b[2] for b in bindings)
    assert not any(b[3] == "Create" for b in bindings)
    # Of the input topics the worker writes only the request topic (the HTTP decision API).
    written = {b[2] for b in bindings if b[3] == "Write" and b[2] in topics.inputs}
    assert written == {topics.loan_requests}


def test_operators_create_every_topic_and_commands_group_each_rule() -> None:
    settings = Settings.model_construct()
    ops = operator_rules(settings)
    assert sum(len(rule.bindings()) for rule in ops) == 31
    created = {b[2] for rule in ops for b in rule.bindings() if b[3] == "Create"}
    assert created == {spec.name for spec in Topics.from_settings(settings).specs(settings)}
    commands = kafka_acls_commands(acl_rules(settings, "User:ops"), "k:9093", "a.properties")
    assert len(commands) == len(acl_rules(settings))
    assert commands[-1] == (
        "kafka-acls --bootstrap-server k:9093 --command-config a.properties --add "
        "--allow-principal User:ops --operation Write --topic credit.policy"
    )
