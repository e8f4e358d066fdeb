"""`ESR_KAFKA_CONFIG`: a file of Kafka client properties (security.protocol, SASL, TLS) for every
client ESR makes, read the way kcat's `-F` and the Kafka tools' `--command-config` read theirs.

The file is Java-properties style: `key=value` lines, `#` or `!` comments, blank lines, a
trailing backslash continuing a line. Keys are librdkafka's (confluent-kafka's), which for
security are the Java client's names too; a Java `sasl.jaas.config` with the PLAIN or SCRAM
login module is turned into librdkafka's `sasl.username` and `sasl.password`.

The same file has to reach the metrics worker's Faust app, which talks through aiokafka:
`ClientConfig.aiokafka()` translates what aiokafka can take, and names the key and its line
for anything it cannot (nothing is dropped silently). Secrets (passwords, the JAAS line) are
never printed: `repr`, `shown()` and every error here mask them.

    EsrError
     └── ClientConfigError     the file cannot be read, a line is malformed, a key is refused
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from esr.core.errors import EsrError

__all__ = ["AiokafkaAuth", "ClientConfig", "ClientConfigError", "Property", "is_secret", "parse_client_config",
           "read_client_config"]


class ClientConfigError(EsrError):
    """`ESR_KAFKA_CONFIG` names a file ESR cannot use; the message names the file and line."""


# keys ESR sets itself, per client, for its delivery guarantees: a file changing them would break them
_RESERVED = {
    "bootstrap.servers": "the broker comes from ESR_KAFKA (or --kafka)",
    "group.id": "ESR names its consumer groups after ESR_KAFKA_PREFIX",
    "enable.auto.commit": "ESR commits offsets itself once results are stored",
    "enable.auto.offset.store": "ESR commits offsets itself once results are stored",
    "enable.idempotence": "ESR's producers are idempotent so a broker restart neither loses nor repeats",
    "acks": "ESR's producers wait for acks=all",
    "isolation.level": "ESR's consumers read committed messages only",
    "auto.offset.reset": "ESR's consumers start where their role needs",
    "transactional.id": "ESR does not use transactions",
    "partitioner": "ESR's metrics workers find a run's partition with librdkafka's default partitioner",
}
_SECRET = re.compile(r"password|secret|jaas|token|key\.pem|\bpem\b", re.IGNORECASE)
_JAAS = re.compile(r"^\s*(?P<module>[\w.$]+)\s+(?:required|requisite|sufficient|optional)(?P<options>.*?);?\s*$",
                   re.DOTALL)
_JAAS_OPTION = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|(\S+?))(?=\s|;|$)')
_LOGIN_MODULES = {
    "org.apache.kafka.common.security.plain.PlainLoginModule": ("PLAIN",),
    "org.apache.kafka.common.security.scram.ScramLoginModule": ("SCRAM-SHA-256", "SCRAM-SHA-512"),
}


def is_secret(key: str) -> bool:
    """Whether a property's value must never be printed (passwords, secrets, the JAAS line, PEM keys)."""
    return bool(_SECRET.search(key))


@dataclass(frozen=True, slots=True)
class Property:
    key: str
    value: str
    line: int

    def __repr__(self) -> str:
        return f"Property({self.key!r}, {'***' if is_secret(self.key) else repr(self.value)}, line {self.line})"


@dataclass(frozen=True, slots=True)
class AiokafkaAuth:
    """The file's properties as aiokafka takes them (what Faust's `broker_credentials` need)."""

    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    username: str | None = None
    password: str | None = None
    kerberos_service_name: str | None = None
    cafile: str | None = None
    capath: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    key_password: str | None = None
    check_hostname: bool = True
    verify_certificates: bool = True
    client_id: str | None = None

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def __repr__(self) -> str:
        return (f"AiokafkaAuth({self.security_protocol}, mechanism={self.sasl_mechanism}, username={self.username}, "
                f"password={'***' if self.password else None})")


_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_AIOKAFKA_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI")
# librdkafka key -> AiokafkaAuth field; anything else has no aiokafka counterpart ESR knows of
_AIOKAFKA_KEYS = {
    "security.protocol": "security_protocol",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.mechanisms": "sasl_mechanism",
    "sasl.username": "username",
    "sasl.password": "password",
    "sasl.kerberos.service.name": "kerberos_service_name",
    "ssl.ca.location": "cafile",
    "ssl.certificate.location": "certfile",
    "ssl.key.location": "keyfile",
    "ssl.key.password": "key_password",
    "ssl.endpoint.identification.algorithm": "check_hostname",
    "enable.ssl.certificate.verification": "verify_certificates",
    "client.id": "client_id",
}


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """The properties of one `ESR_KAFKA_CONFIG` file, in file order, each with its line."""

    source: str
    properties: tuple[Property, ...] = ()

    def confluent(self) -> dict[str, str]:
        """The properties as a confluent-kafka config: merged into every producer, consumer and admin client."""
        return {p.key: p.value for p in self.properties}

    def line_of(self, key: str) -> int | None:
        return next((p.line for p in self.properties if p.key == key), None)

    def where(self, key: str) -> str:
        """`file:line` of a key, for messages."""
        line = self.line_of(key)
        return f"{self.source}:{line}" if line is not None else self.source

    def shown(self) -> dict[str, str]:
        """The properties with secret values masked, for plans and logs."""
        return {p.key: "***" if is_secret(p.key) else p.value for p in self.properties}

    def mask(self, text: str) -> str:
        """`text` with every secret value of the file replaced by ***, for messages that quote a client's error."""
        for p in self.properties:
            if is_secret(p.key) and p.value:
                text = text.replace(p.value, "***")
        return text

    def client_error(self, message: str) -> str:
        """A confluent-kafka client's refusal of the config, masked, with the file and line of
        the key it names (librdkafka quotes it: `No such configuration property: "foo"`)."""
        message = self.mask(message)
        for p in self.properties:
            if f'"{p.key}"' in message or f" {p.key} " in f" {message} ":
                return f"{self.source}:{p.line}: {message}"
        return f"{self.source}: {message}"

    def aiokafka(self) -> AiokafkaAuth:
        """The properties as aiokafka takes them (the metrics worker's Faust app); a key aiokafka
        has no counterpart for, or a value it cannot take, is an error naming the key and line."""
        fields: dict[str, object] = {}
        for p in self.properties:
            name = _AIOKAFKA_KEYS.get(p.key)
            if name is None:
                known = ", ".join(sorted(_AIOKAFKA_KEYS))
                raise ClientConfigError(
                    f"{self.source}:{p.line}: {p.key} has no aiokafka counterpart, so the metrics worker (Faust, "
                    f"aiokafka) cannot apply it; remove the line from ESR_KAFKA_CONFIG (keys it can apply: {known})")
            if name == "cafile" and Path(p.value).is_dir():
                name = "capath"  # ssl.ca.location may be a folder of certificates
            fields[name] = self._aiokafka_value(p, name)
        auth = AiokafkaAuth(**fields)  # type: ignore[arg-type]
        if auth.uses_sasl:
            mechanism = auth.sasl_mechanism or "GSSAPI"  # librdkafka's default
            if mechanism not in _AIOKAFKA_MECHANISMS:
                raise ClientConfigError(
                    f"{self.where('sasl.mechanism')}: sasl.mechanism={mechanism}: the metrics worker (aiokafka) "
                    f"takes {', '.join(_AIOKAFKA_MECHANISMS)}")
            if mechanism != "GSSAPI" and (auth.username is None or auth.password is None):
                raise ClientConfigError(f"{self.source}: security.protocol={auth.security_protocol} with "
                                        f"sasl.mechanism={mechanism} needs sasl.username and sasl.password")
            auth = replace(auth, sasl_mechanism=mechanism)
        return auth

    def _aiokafka_value(self, p: Property, name: str) -> object:
        where = f"{self.source}:{p.line}"
        if name == "security_protocol":
            protocol = p.value.upper()
            if protocol not in _PROTOCOLS:
                raise ClientConfigError(f"{where}: security.protocol={p.value}: expected one of "
                                        f"{', '.join(_PROTOCOLS)}")
            return protocol
        if name == "sasl_mechanism":
            return p.value.upper()
        if name == "check_hostname":
            if p.value.lower() not in ("https", "none", ""):
                raise ClientConfigError(f"{where}: {p.key}={p.value}: expected https or none")
            return p.value.lower() == "https"
        if name == "verify_certificates":
            if p.value.lower() not in ("true", "false"):
                raise ClientConfigError(f"{where}: {p.key}={p.value}: expected true or false")
            return p.value.lower() == "true"
        return p.value


def read_client_config(path: Path | str) -> ClientConfig:
    """The file `ESR_KAFKA_CONFIG` names, parsed; a ClientConfigError names the file (and line)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ClientConfigError(f"ESR_KAFKA_CONFIG={path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ClientConfigError(f"ESR_KAFKA_CONFIG={path}: cannot read it ({exc})") from None
    return parse_client_config(text, str(path))


def parse_client_config(text: str, source: str = "ESR_KAFKA_CONFIG") -> ClientConfig:
    """Properties from the text of a file (`source` names it in messages)."""
    found: dict[str, Property] = {}
    for number, line in _logical_lines(text):
        stripped = line.strip()
        if not stripped or stripped[0] in "#!":
            continue
        key, sep, value = stripped.partition("=")
        key, value = key.strip(), value.strip()
        if not sep:
            shown = stripped if len(stripped) <= 40 and not is_secret(stripped) else stripped[:12] + "..."
            raise ClientConfigError(f"{source}:{number}: expected key=value, got {shown!r}")
        if not key:
            raise ClientConfigError(f"{source}:{number}: a line starting with '=' has no key")
        if key in _RESERVED:
            raise ClientConfigError(f"{source}:{number}: {key} is set by ESR itself ({_RESERVED[key]}); "
                                    "remove the line from ESR_KAFKA_CONFIG")
        if key in found:
            raise ClientConfigError(f"{source}:{number}: {key} is given again (first on line {found[key].line}); "
                                    "keep one")
        found[key] = Property(key, value, number)
    if "sasl.mechanism" in found and "sasl.mechanisms" in found:
        raise ClientConfigError(f"{source}:{found['sasl.mechanisms'].line}: sasl.mechanisms repeats sasl.mechanism "
                                f"(line {found['sasl.mechanism'].line}): keep one")
    jaas = found.pop("sasl.jaas.config", None)
    if jaas is not None:
        for prop in _from_jaas(jaas, found, source):
            found[prop.key] = prop
    return ClientConfig(source, tuple(sorted(found.values(), key=lambda p: p.line)))


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each logical line: a line ending in an odd number of
    backslashes continues on the next, whose leading blanks are dropped (Java's rule)."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.lstrip() if pending is not None else raw
        if pending is not None:
            number, line = pending[0], pending[1] + line
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1 and not line.lstrip().startswith(("#", "!")):
            pending = (number, line[:-1])
            continue
        pending = None
        out.append((number, line))
    if pending is not None:
        out.append(pending)
    return out


def _from_jaas(jaas: Property, found: dict[str, Property], source: str) -> list[Property]:
    """sasl.jaas.config (the Java client's way to give a login) as librdkafka's sasl.username
    and sasl.password, for the PLAIN and SCRAM login modules."""
    where = f"{source}:{jaas.line}"
    match = _JAAS.match(jaas.value)
    module = match.group("module") if match else None
    if match is None or module not in _LOGIN_MODULES:
        name = module or "(unreadable)"
        raise ClientConfigError(f"{where}: sasl.jaas.config with login module {name}: ESR reads only "
                                f"{' and '.join(_LOGIN_MODULES)}; give sasl.username and sasl.password instead")
    options = {m.group(1): m.group(2) if m.group(2) is not None else m.group(3)
               for m in _JAAS_OPTION.finditer(match.group("options"))}
    if "username" not in options or "password" not in options:
        raise ClientConfigError(f'{where}: sasl.jaas.config needs username="..." and password="..."')
    for key in ("sasl.username", "sasl.password"):
        if key in found:
            raise ClientConfigError(f"{source}:{found[key].line}: {key} and sasl.jaas.config (line {jaas.line}) "
                                    "both give the login: keep one")
    mechanism = found.get("sasl.mechanism") or found.get("sasl.mechanisms")
    if mechanism is not None and mechanism.value.upper() not in _LOGIN_MODULES[module]:
        raise ClientConfigError(f"{source}:{mechanism.line}: sasl.mechanism={mechanism.value} does not go with "
                                f"the {module.rsplit('.', 1)[1]} of sasl.jaas.config (line {jaas.line})")
    return [Property("sasl.username", _unescape(options["username"]), jaas.line),
            Property("sasl.password", _unescape(options["password"]), jaas.line)]


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)
