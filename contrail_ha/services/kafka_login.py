"""How every Kafka client of ours logs in (SASL/SCRAM-SHA-512 over the brokers' SASL_PLAINTEXT
listener): one place for the protocol, the mechanism and the librdkafka settings. Imports nothing,
so rendering names them too."""

from __future__ import annotations

PROTOCOL = "SASL_PLAINTEXT"
MECHANISM = "SCRAM-SHA-512"


def client_config(auth: tuple[str, str] | None) -> dict[str, str]:
    """librdkafka settings that log in as ``auth`` (empty: no login)."""
    if not auth:
        return {}
    return {"security.protocol": PROTOCOL, "sasl.mechanism": MECHANISM, "sasl.username": auth[0],
            "sasl.password": auth[1]}
