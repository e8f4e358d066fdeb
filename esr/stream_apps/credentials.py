"""The metrics worker's login: `ESR_KAFKA_CONFIG` translated for Faust, whose aiokafka clients
take `broker_credentials` (faust.SASLCredentials, faust.SSLCredentials) rather than librdkafka
properties. The translation itself is `ClientConfig.aiokafka()` (esr.bus.client_config); this
module builds the TLS context and Faust's credential objects from it."""

from __future__ import annotations

import logging
import re
import ssl
from typing import Any

from esr.bus.client_config import AiokafkaAuth, ClientConfig, ClientConfigError

__all__ = ["SecretsFilter", "faust_settings", "hide_secrets_in_logs", "ssl_context"]

# aiokafka logs every request at debug level, SASL/PLAIN's login (user and password in clear) too
_AUTH_BYTES = re.compile(r"(sasl_auth_bytes=)(b'(?:[^'\\]|\\.)*'|b\"(?:[^\"\\]|\\.)*\")")
_LOGGERS = ("aiokafka.conn", "aiokafka", "faust")


def faust_settings(config: ClientConfig | None) -> dict[str, Any]:
    """Keyword arguments for `faust.App` that make its clients log in as the file says
    (nothing for no file, or a file that leaves the connection PLAINTEXT)."""
    if config is None:
        return {}
    import faust

    auth = config.aiokafka()
    out: dict[str, Any] = {"broker_client_id": auth.client_id} if auth.client_id else {}
    context = ssl_context(auth, config) if auth.uses_tls else None
    if auth.uses_sasl:
        if auth.sasl_mechanism == "GSSAPI":
            out["broker_credentials"] = faust.GSSAPICredentials(
                kerberos_service_name=auth.kerberos_service_name or "kafka", ssl_context=context)
        else:
            out["broker_credentials"] = faust.SASLCredentials(
                username=auth.username, password=auth.password, mechanism=auth.sasl_mechanism, ssl_context=context)
    elif context is not None:
        out["broker_credentials"] = faust.SSLCredentials(context)
    return out


def ssl_context(auth: AiokafkaAuth, config: ClientConfig) -> ssl.SSLContext:
    """The TLS context librdkafka would make from the same ssl.* properties: the CA file (or
    the system's CAs), the client certificate and key, host name and certificate checks."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=auth.cafile, capath=auth.capath)
    except (OSError, ssl.SSLError) as exc:
        raise ClientConfigError(f"{config.where('ssl.ca.location')}: ssl.ca.location: cannot load the CA "
                                f"certificates ({exc})") from None
    if auth.certfile or auth.keyfile:
        if not auth.certfile:
            raise ClientConfigError(f"{config.where('ssl.key.location')}: ssl.key.location without "
                                    "ssl.certificate.location")
        try:
            context.load_cert_chain(auth.certfile, auth.keyfile, password=auth.key_password)
        except (OSError, ssl.SSLError) as exc:
            raise ClientConfigError(f"{config.where('ssl.certificate.location')}: cannot load the client "
                                    f"certificate and key ({type(exc).__name__}: {config.mask(str(exc))})") from None
    if not auth.check_hostname or not auth.verify_certificates:
        context.check_hostname = False
    if not auth.verify_certificates:
        context.verify_mode = ssl.CERT_NONE
    return context


class SecretsFilter(logging.Filter):
    """Masks a log record's SASL bytes and the file's secret values (the record's text is
    rewritten, never dropped): aiokafka's debug log would otherwise print a PLAIN password."""

    def __init__(self, config: ClientConfig) -> None:
        super().__init__()
        self.config = config

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = self.config.mask(_AUTH_BYTES.sub(r"\1***", text))
        if masked != text:
            record.msg, record.args = masked, ()
        return True


def hide_secrets_in_logs(config: ClientConfig | None) -> None:
    """Install `SecretsFilter` on the loggers of aiokafka's connections and Faust (once)."""
    if config is None:
        return
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, SecretsFilter) for f in logger.filters):
            logger.addFilter(SecretsFilter(config))
