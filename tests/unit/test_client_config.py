"""ESR_KAFKA_CONFIG: the properties file parsed as kcat -F and the Kafka tools read theirs,
merged into confluent-kafka configs, translated for Faust's aiokafka, secrets never shown."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from real_parts import missing

from esr.bus.client_config import AiokafkaAuth, ClientConfigError, parse_client_config, read_client_config
from esr.bus.kafka import KafkaError, KafkaSettings, _config, make_producer
from esr.settings import Settings
from esr.stream_apps.credentials import faust_settings

SASL = """\
# the staging cluster
security.protocol=SASL_PLAINTEXT
sasl.mechanism = PLAIN

! Java-style comment
sasl.username=alice
sasl.password=s3cr=t with spaces
"""


def test_key_value_lines_comments_and_blank_lines() -> None:
    config = parse_client_config(SASL, "client.properties")
    assert config.confluent() == {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                                  "sasl.username": "alice", "sasl.password": "s3cr=t with spaces"}
    assert [p.line for p in config.properties] == [2, 3, 6, 7]
    assert config.where("sasl.username") == "client.properties:6"


def test_secrets_are_masked_when_shown() -> None:
    config = parse_client_config(SASL, "client.properties")
    assert config.shown()["sasl.password"] == "***" and config.shown()["sasl.username"] == "alice"
    assert "s3cr" not in repr(config) and "s3cr" not in repr(config.aiokafka())
    assert config.mask("login failed for s3cr=t with spaces") == "login failed for ***"


def test_a_continued_line_and_the_java_jaas_login() -> None:
    text = ("security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n"
            '    username="bob" \\\n    password="p\\"w";\nclient.id=esr-staging\n')
    config = parse_client_config(text, "c.properties")
    assert config.confluent() == {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                                  "sasl.username": "bob", "sasl.password": 'p"w', "client.id": "esr-staging"}
    assert config.line_of("sasl.password") == 3 and config.line_of("client.id") == 6


@pytest.mark.parametrize(("text", "message"), [
    ("security.protocol=SASL_PLAINTEXT\nsasl.username alice\n",
     "c.properties:2: expected key=value, got 'sasl.username alice'"),
    ("# ok\n=PLAIN\n", "c.properties:2: a line starting with '=' has no key"),
    ("sasl.username=a\nsasl.username=b\n", "c.properties:2: sasl.username is given again (first on line 1)"),
    ("bootstrap.servers=10.0.0.1:9092\n", "c.properties:1: bootstrap.servers is set by ESR itself (the broker comes "
                                          "from ESR_KAFKA"),
    ("acks=1\n", "c.properties:1: acks is set by ESR itself"),
    ("partitioner=murmur2_random\n", "c.properties:1: partitioner is set by ESR itself (ESR's metrics workers "
                                      "find a run's partition"),
    ("sasl.jaas.config=com.sun.security.auth.module.Krb5LoginModule required;\n",
     "c.properties:1: sasl.jaas.config with login module com.sun.security.auth.module.Krb5LoginModule"),
    ('sasl.username=x\nsasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required '
     'username="a" password="b";\n', "c.properties:1: sasl.username and sasl.jaas.config (line 2) both give"),
])
def test_bad_lines_are_named_by_file_and_line(text: str, message: str) -> None:
    with pytest.raises(ClientConfigError) as err:
        parse_client_config(text, "c.properties")
    assert str(err.value).startswith(message)


def test_a_line_without_equals_does_not_echo_a_secret() -> None:
    with pytest.raises(ClientConfigError) as err:
        parse_client_config("sasl.password hunter2-long-secret-value-here-1234567890\n", "c.properties")
    assert "hunter2" not in str(err.value) and "c.properties:1: expected key=value" in str(err.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ClientConfigError, match=r"ESR_KAFKA_CONFIG=.*nope.properties: no such file"):
        read_client_config(tmp_path / "nope.properties")


def test_settings_carry_the_path_and_kafka_settings_read_the_file(tmp_path: Path) -> None:
    path = tmp_path / "client.properties"
    path.write_text(SASL)
    settings = Settings.from_env({"ESR_KAFKA": "127.0.0.1:9094", "ESR_KAFKA_CONFIG": str(path)})
    assert settings.kafka_config == path
    kafka = KafkaSettings.from_settings(settings)
    assert kafka.client_config is not None and kafka.client_config.source == str(path)
    assert "s3cr" not in repr(kafka)


def test_the_file_goes_into_every_client_config_over_esr_tuning_but_under_call_overrides() -> None:
    config = parse_client_config(SASL + "linger.ms=50\n", "c")
    kafka = KafkaSettings("127.0.0.1:9094", client_config=config)
    merged = _config(kafka, {"linger.ms": 5, "acks": "all"}, {"client.id": "esr-watch"})
    assert merged["bootstrap.servers"] == "127.0.0.1:9094" and merged["acks"] == "all"
    assert (merged["sasl.username"], merged["linger.ms"], merged["client.id"]) == ("alice", "50", "esr-watch")


def test_a_property_librdkafka_refuses_is_named_by_its_line() -> None:
    config = parse_client_config("security.protocol=SASL_PLAINTEXT\nsocket.keepalive=true\n", "c.properties")
    with pytest.raises(KafkaError, match=r'c.properties:2: No such configuration property: "socket.keepalive"'):
        make_producer(KafkaSettings("127.0.0.1:1", client_config=config))


def test_a_refused_secret_value_is_not_echoed() -> None:
    config = parse_client_config("sasl.password=abc123secret\nsasl.oauthbearer.method=nonsense\n", "c")
    with pytest.raises(KafkaError) as err:
        make_producer(KafkaSettings("127.0.0.1:1", client_config=config))
    assert "c:2:" in str(err.value) and "abc123secret" not in str(err.value)


# -- aiokafka (the metrics worker's Faust app) ------------------------------------------------
def test_sasl_plain_translates_to_faust_sasl_credentials() -> None:
    auth = parse_client_config(SASL, "c").aiokafka()
    assert auth == AiokafkaAuth(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", username="alice",
                                password="s3cr=t with spaces")
    creds = faust_settings(parse_client_config(SASL, "c"))["broker_credentials"]
    assert (type(creds).__name__, creds.username, creds.password, creds.mechanism.value, creds.protocol.value) == (
        "SASLCredentials", "alice", "s3cr=t with spaces", "PLAIN", "SASL_PLAINTEXT")
    assert "s3cr" not in repr(creds)


def test_tls_translates_to_an_ssl_context(tmp_path: Path) -> None:
    ca = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")
    if not ca.exists():
        missing(f"no system CA bundle at {ca} (Debian: apt-get install ca-certificates)")
    text = f"security.protocol=ssl\nssl.ca.location={ca}\nssl.endpoint.identification.algorithm=none\n"
    settings = faust_settings(parse_client_config(text, "c"))
    creds = settings["broker_credentials"]
    assert type(creds).__name__ == "SSLCredentials" and creds.protocol.value == "SSL"
    assert creds.context.verify_mode == ssl.CERT_REQUIRED and creds.context.check_hostname is False
    sasl_ssl = faust_settings(parse_client_config(f"security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-256\n"
                                                  f"sasl.username=a\nsasl.password=b\nssl.ca.location={ca}\n", "c"))
    creds = sasl_ssl["broker_credentials"]
    assert (creds.protocol.value, creds.mechanism.value, creds.ssl_context.check_hostname) == (
        "SASL_SSL", "SCRAM-SHA-256", True)


def test_no_file_or_plaintext_adds_nothing_to_faust() -> None:
    assert faust_settings(None) == {}
    assert faust_settings(parse_client_config("security.protocol=PLAINTEXT\n", "c")) == {}
    assert faust_settings(parse_client_config("client.id=esr-a\n", "c")) == {"broker_client_id": "esr-a"}


@pytest.mark.parametrize(("text", "message"), [
    ("security.protocol=SSL\nsocket.keepalive.enable=true\n",
     "c.properties:2: socket.keepalive.enable has no aiokafka counterpart"),
    ("security.protocol=SASL_SSL\nsasl.mechanism=OAUTHBEARER\n",
     "c.properties:2: sasl.mechanism=OAUTHBEARER: the metrics worker (aiokafka) takes PLAIN, SCRAM-SHA-256"),
    ("security.protocol=TLS\n", "c.properties:1: security.protocol=TLS: expected one of PLAINTEXT, SSL"),
    ("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.username=a\n",
     "c.properties: security.protocol=SASL_PLAINTEXT with sasl.mechanism=PLAIN needs sasl.username and"),
    ("security.protocol=SSL\nenable.ssl.certificate.verification=maybe\n",
     "c.properties:2: enable.ssl.certificate.verification=maybe: expected true or false"),
])
def test_what_aiokafka_cannot_take_is_an_error_naming_key_and_line(text: str, message: str) -> None:
    with pytest.raises(ClientConfigError) as err:
        faust_settings(parse_client_config(text, "c.properties"))
    assert str(err.value).startswith(message)


def test_an_unloadable_ca_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    config = parse_client_config(f"security.protocol=SSL\nssl.ca.location={bad}\n", "c.properties")
    with pytest.raises(ClientConfigError, match=r"c.properties:2: ssl.ca.location: cannot load the CA"):
        faust_settings(config)


def test_aiokafka_debug_logs_never_show_the_login(caplog: pytest.LogCaptureFixture) -> None:
    """aiokafka logs each request at debug level, SASL/PLAIN's login bytes too."""
    import logging

    from esr.stream_apps.credentials import hide_secrets_in_logs

    hide_secrets_in_logs(parse_client_config(SASL, "c"))
    hide_secrets_in_logs(parse_client_config(SASL, "c"))  # once is enough: no second filter
    conn = logging.getLogger("aiokafka.conn")
    assert len(conn.filters) == 1
    with caplog.at_level(logging.DEBUG, logger="aiokafka.conn"):
        conn.debug("Request to %s:%d %d: %s", "127.0.0.1", 9094, 3,
                   "SaslAuthenticateRequest_v1(sasl_auth_bytes=b'alice\\x00alice\\x00s3cr=t with spaces')")
        logging.getLogger("faust").warning("retrying with password %s", "s3cr=t with spaces")
    assert caplog.messages == ["Request to 127.0.0.1:9094 3: SaslAuthenticateRequest_v1(sasl_auth_bytes=***)",
                               "retrying with password ***"]
    for name in ("aiokafka.conn", "aiokafka", "faust"):
        logging.getLogger(name).filters.clear()
