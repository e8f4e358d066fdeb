"""A service that reacts to ESR verdicts: subscribes to the verdict topic and prints each one.

Other services (a release gate, a ticketing bot, a policy analyst's inbox) do the same: join
a consumer group of their own on `esr.verdicts`, read the JSON, act on `verdict`. Every
message carries the headers `sim=true`, `type=verdict` and `run_id`, so simulated results
are never mistaken for production ones.

    python examples/verdict_listener.py --kafka 127.0.0.1:9092
    python examples/verdict_listener.py --kafka 127.0.0.1:9092 --from-beginning --max 1 --timeout 30

Exit code: 0 when every verdict received was PASS, 1 when one was not, 2 when none came.
It needs only confluent-kafka and the standard library: no ESR import.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from confluent_kafka import Consumer


def main() -> int:
    parser = argparse.ArgumentParser(description="print ESR verdicts as they are published")
    parser.add_argument("--kafka", default=os.environ.get("ESR_KAFKA", "127.0.0.1:9092"), help="broker HOST:PORT")
    parser.add_argument("--prefix", default=os.environ.get("ESR_KAFKA_PREFIX", "esr."), help="topic prefix")
    parser.add_argument("--group", default="verdict-listener", help="this service's consumer group")
    parser.add_argument("--from-beginning", action="store_true", help="also read verdicts published before")
    parser.add_argument("--max", type=int, default=0, help="stop after this many verdicts (0: no limit)")
    parser.add_argument("--timeout", type=float, default=0, help="stop after this many seconds (0: never)")
    args = parser.parse_args()

    consumer = Consumer({
        "bootstrap.servers": args.kafka,
        "group.id": args.group,
        "auto.offset.reset": "earliest" if args.from_beginning else "latest",
    })
    consumer.subscribe([args.prefix + "verdicts"])
    seen, all_passed = 0, True
    deadline = time.monotonic() + args.timeout if args.timeout else None
    try:
        while (not args.max or seen < args.max) and (deadline is None or time.monotonic() < deadline):
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            hdrs = {k: v.decode() for k, v in (msg.headers() or [])}
            if hdrs.get("sim") != "true":
                continue  # not simulated traffic: not ours to judge
            verdict = json.loads(msg.value())["verdict"]
            seen += 1
            all_passed &= verdict["verdict"] == "PASS"
            completeness = verdict["completeness"]
            print(json.dumps({
                "run_id": verdict["run_id"],
                "verdict": verdict["verdict"],
                "reason": verdict["reason"],
                "complete": completeness["complete"],
                "results": completeness["results_recorded"],
            }), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    if not seen:
        print("no verdict received", file=sys.stderr)
        return 2
    return 0 if all_passed else 1


if __name__ == "__main__":
    sys.exit(main())
