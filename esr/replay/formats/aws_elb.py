"""AWS Classic Load Balancer (ELB) access logs.

    time elb client:port backend:port request_processing_time backend_processing_time
    response_processing_time elb_status_code backend_status_code received_bytes sent_bytes
    "request" "user_agent" ssl_cipher ssl_protocol

`time` is when the load balancer received the request. Older logs end after `"request"`; TCP and
SSL listeners log `"- - - "` as the request, which is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from esr.replay.formats._aws_common import BalancerLog, majority, read_balancer_log
from esr.replay.formats._common import check_options
from esr.replay.record import Parsed

__all__ = ["NAME", "parse", "sniff"]

NAME = "elb"
SAMPLE = (  # a line (or file) of this format, for `esr replay --list-formats`
    '2024-03-04T09:00:01.945958Z claims-elb 203.0.113.7:2817 10.0.0.1:80 0.000073 0.001048 0.000057 200 200 0 29 '
    '"GET http://claims.example.com:80/claims?id=3 HTTP/1.1" "curl/8.5.0" - -',
)

_LOG = BalancerLog(
    names=(
        "time", "elb", "client:port", "backend:port", "request_processing_time", "backend_processing_time",
        "response_processing_time", "elb_status_code", "backend_status_code", "received_bytes", "sent_bytes",
        "request", "user_agent", "ssl_cipher", "ssl_protocol",
    ),  # fmt: skip
    layout="time elb client:port backend:port",
    no_request="no request line (TCP/SSL listener or unreadable request)",
    time=0,
    client=2,
    seconds=(4, 5, 6),
    status=7,
    bytes=10,
    request=11,
    user_agent=12,
)
_HEAD = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z \S+ \S+:\d+ (?:\S+:\d+|-) -?\d")


def sniff(head: list[str]) -> bool:
    """Lines start `<ISO time>Z <name> <client:port> <backend:port or -> <seconds>`."""
    return majority(head, _HEAD)


def parse(lines: Iterable[tuple[int, str]], source: str, **options: object) -> Iterator[Parsed]:
    """Yield a record per Classic ELB entry."""
    check_options(NAME, options)
    return read_balancer_log(lines, source, _LOG)
