"""AWS Application Load Balancer access logs (the `.log.gz` files ALB writes to S3).

    type time elb client:port target:port request_processing_time target_processing_time
    response_processing_time elb_status_code target_status_code received_bytes sent_bytes
    "request" "user_agent" ssl_cipher ssl_protocol target_group_arn "trace_id" "domain_name"
    "chosen_cert_arn" matched_rule_priority request_creation_time "actions_executed" ...

AWS appends fields over the years, so only the fields up to `"request"` are required and any
trailing ones are ignored. The record's time is `request_creation_time` (when ALB received the
request); `time` is when it answered, and is used only when the former is absent or `-`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from esr.replay.formats._aws_common import BalancerLog, majority, read_balancer_log
from esr.replay.formats._common import check_options
from esr.replay.record import Parsed

__all__ = ["NAME", "parse", "sniff"]

NAME = "alb"
SAMPLE = (  # a line (or file) of this format, for `esr replay --list-formats`
    'https 2024-03-04T09:00:01.123456Z app/claims-alb/50dc6c495c0c9188 203.0.113.7:51234 10.0.1.15:8080 '
    '0.001 0.045 0.000 200 200 512 1536 "GET https://claims.example.com:443/claims?id=3 HTTP/1.1" "curl/8.5.0" '
    'ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 '
    'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/claims/73e2d6bc24d8a067 '
    '"Root=1-65e58e11-1a2b3c4d5e6f7a8b9c0d1e2f" "claims.example.com" "-" 1 2024-03-04T09:00:01.076543Z "forward" "-" '
    '"-" "10.0.1.15:8080" "200" "-" "-" TID_1234abcd5678ef90',
)

_LOG = BalancerLog(
    names=(
        "type", "time", "elb", "client:port", "target:port", "request_processing_time",
        "target_processing_time", "response_processing_time", "elb_status_code", "target_status_code",
        "received_bytes", "sent_bytes", "request", "user_agent", "ssl_cipher", "ssl_protocol",
        "target_group_arn", "trace_id", "domain_name", "chosen_cert_arn", "matched_rule_priority",
        "request_creation_time",
    ),  # fmt: skip
    layout="type time elb client:port target:port",
    no_request="no request line (the load balancer could not read a request)",
    time=1,
    client=3,
    seconds=(5, 6, 7),
    status=8,
    bytes=11,
    request=12,
    user_agent=13,
    kind=0,
    creation_time=21,
    domain=18,
)
_HEAD = re.compile(r"[a-z][a-z0-9]* \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z \S+ ")


def sniff(head: list[str]) -> bool:
    """Lines start `<type> <ISO time>Z <elb> `, e.g. `https 2024-03-04T09:00:01.123456Z app/...`."""
    return majority(head, _HEAD)


def parse(
    lines: Iterable[tuple[int, str]],
    source: str,
    *,
    time_field: str = "request_creation_time",
    **options: object,
) -> Iterator[Parsed]:
    """Yield a record per ALB entry; `time_field="time"` dates requests by when ALB answered instead."""
    check_options(NAME, options, ("time_field",))
    if time_field not in ("request_creation_time", "time"):
        raise ValueError(f"time_field {time_field!r}: expected 'request_creation_time' or 'time'")
    return read_balancer_log(lines, source, _LOG, time_field == "request_creation_time")
