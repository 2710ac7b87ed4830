"""Driver of the Python interop test (test/interop/python-client.test.ts): runs the Python client
against a broker and speaks JSON (bytes as base64) on stdin/stdout.

    rill_interop.py produce ADDRESS TOPIC < records.json      -> {"results": [...]}
    rill_interop.py consume ADDRESS TOPIC PARTITION [--offset N|earliest|latest] [--follow]
                    [--max N] [--max-backoff S]                -> one JSON record per line
    rill_interop.py partition < {"keys": [b64...], "counts": [n...]}
                                                               -> {"hashes": [...], "partitions": [[...]]}

produce and consume take [--ca FILE] [--cert FILE --key FILE] [--token-file FILE]: TLS trusting
the CA (with a client certificate for mutual TLS) and a bearer token, as a user of a secured broker
passes them to Client(credentials=..., metadata=...).

The stubs directory comes from RILL_PY_GEN_DIR (see clients/python/generate.sh).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "clients" / "python"))

import grpc  # noqa: E402
from rill_client import Client, murmur2, partition_for_key  # noqa: E402


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def read(path: str | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()


def connect(args: argparse.Namespace) -> Client:
    """A Client with the TLS material and token the options name (plaintext without --ca)."""
    credentials = None
    if args.ca is not None:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=read(args.ca), private_key=read(args.key), certificate_chain=read(args.cert)
        )
    metadata = []
    if args.token_file is not None:
        metadata.append(("authorization", "Bearer " + Path(args.token_file).read_text().strip()))
    return Client(args.address, credentials=credentials, metadata=metadata)


def produce(args: argparse.Namespace) -> None:
    """Sends each input record (to its own partition if it names one) and prints the batch results."""
    records = json.load(sys.stdin)
    with connect(args) as client:
        producer = client.producer(batch_records=args.batch_records)
        for r in records:
            key = None if r["key"] is None else unb64(r["key"])
            headers = [(name, unb64(value)) for name, value in r["headers"]]
            producer.send(args.topic, [(key, unb64(r["value"]), headers, r.get("timestamp"))], partition=r["partition"])
        results = producer.close()
    out = [
        {"partition": x.partition, "baseOffset": x.base_offset, "recordCount": x.record_count, "topic": x.topic}
        for x in results
    ]
    json.dump({"results": out}, sys.stdout)


def consume(args: argparse.Namespace) -> None:
    """Prints each record read as a JSON line, flushed at once (the test reads them as they come)."""
    offset = args.offset if args.offset in ("earliest", "latest") else int(args.offset)
    with connect(args) as client:
        for r in client.consume(
            args.topic,
            args.partition,
            offset,
            follow=args.follow,
            max_records=args.max,
            max_backoff=args.max_backoff,
            max_retries=args.max_retries,
        ):
            line = {
                "partition": r.partition,
                "offset": r.offset,
                "key": None if r.key is None else b64(r.key),
                "value": b64(r.value),
                "headers": [[name, b64(value)] for name, value in r.headers],
                "timestamp": r.timestamp,
            }
            print(json.dumps(line), flush=True)


def partition(_: argparse.Namespace) -> None:
    """Prints murmur2 of each key and its partition for each count."""
    spec = json.load(sys.stdin)
    keys = [unb64(k) for k in spec["keys"]]
    json.dump(
        {
            "hashes": [murmur2(k) for k in keys],
            "partitions": [[partition_for_key(k, n) for n in spec["counts"]] for k in keys],
        },
        sys.stdout,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("produce")
    p.add_argument("address")
    p.add_argument("topic")
    p.add_argument("--batch-records", type=int, default=10_000)
    p.set_defaults(run=produce)
    c = sub.add_parser("consume")
    c.add_argument("address")
    c.add_argument("topic")
    c.add_argument("partition", type=int)
    c.add_argument("--offset", default="earliest")
    c.add_argument("--follow", action="store_true")
    c.add_argument("--max", type=int, default=None)
    c.add_argument("--max-backoff", type=float, default=5.0)
    c.add_argument("--max-retries", type=int, default=10)
    c.set_defaults(run=consume)
    for command in (p, c):
        command.add_argument("--ca", default=None)
        command.add_argument("--cert", default=None)
        command.add_argument("--key", default=None)
        command.add_argument("--token-file", default=None)
    k = sub.add_parser("partition")
    k.set_defaults(run=partition)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
