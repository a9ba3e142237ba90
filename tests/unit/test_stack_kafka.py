"""How a local Kafka node is configured (streams/devtools/stack/kafka.py), without starting one."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from streams.devtools.stack.kafka import (
    BrokerTls,
    KafkaNode,
    node_properties,
    replication_for,
    scram_arguments,
)

NODES = [KafkaNode(1, 9092, 9093), KafkaNode(2, 9094, 9095), KafkaNode(3, 9096, 9097)]


def props(nodes: list[KafkaNode], tls: BrokerTls | None = None) -> dict[str, str]:
    return node_properties(
        nodes[0],
        nodes,
        host="127.0.0.1",
        data_dir=Path("/data"),
        partitions=12,
        max_message_bytes=1024,
        tls=tls,
    )


def test_a_single_node_replicates_nothing_it_cannot() -> None:
    p = props(NODES[:1])
    assert p["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert p["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    for key in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "min.insync.replicas",
        "transaction.state.log.min.isr",
    ):
        assert p[key] == "1", key
    assert "broker.session.timeout.ms" not in p


def test_three_nodes_share_a_static_quorum_and_replicate_three_times() -> None:
    p = props(NODES)
    assert p["controller.quorum.voters"] == "1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097"
    assert p["default.replication.factor"] == "3"
    assert p["offsets.topic.replication.factor"] == "3"
    assert p["min.insync.replicas"] == "2"
    assert p["transaction.state.log.min.isr"] == "2"
    assert p["unclean.leader.election.enable"] == "false"
    assert replication_for(3) == (3, 2)
    assert replication_for(2) == (2, 1)
    assert replication_for(5) == (3, 2)


def test_tls_exposes_only_sasl_ssl_to_clients_and_brokers() -> None:
    tls = BrokerTls(
        keystore=Path("/k.pem"),
        truststore=Path("/ca.pem"),
        users={"broker": SecretStr("b-pass"), "app": SecretStr("a-pass")},
        inter_broker_user="broker",
    )
    p = props(NODES, tls)
    assert p["listeners"] == "SASL_SSL://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert p["advertised.listeners"] == "SASL_SSL://127.0.0.1:9092"
    assert p["inter.broker.listener.name"] == "SASL_SSL"
    assert p["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert p["ssl.keystore.type"] == p["ssl.truststore.type"] == "PEM"
    assert (
        'username="broker" password="b-pass"'
        in p["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    )
    assert scram_arguments(tls) == [
        "--add-scram",
        "SCRAM-SHA-512=[name=app,password=a-pass]",
        "--add-scram",
        "SCRAM-SHA-512=[name=broker,password=b-pass]",
    ]
    assert scram_arguments(None) == []
    assert "authorizer.class.name" not in p  # the default local stack stays open


def test_an_authorizing_broker_denies_what_no_acl_allows() -> None:
    tls = BrokerTls(
        keystore=Path("/k.pem"),
        truststore=Path("/ca.pem"),
        users={"broker": SecretStr("b"), "admin": SecretStr("a"), "app": SecretStr("c")},
        inter_broker_user="broker",
        authorize=True,
        super_users=("admin",),
    )
    p = props(NODES[:1], tls)
    assert p["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert p["allow.everyone.if.no.acl.found"] == "false"
    assert p["super.users"] == "User:broker;User:admin;User:ANONYMOUS"
    assert "authorizer.class.name" not in props(NODES[:1])
