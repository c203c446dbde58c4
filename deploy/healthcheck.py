#!/usr/bin/env python3
"""Container health check for an Accord party: grpc.health.v1 over the party's own mTLS.

Accord's servers listen only with mutual TLS, so neither Kubernetes' built-in gRPC probe nor a
plain `grpc_health_probe` can reach them. This probe connects the way any party does: with the
pod's own certificate from ``--pki``, pinning the server's name to that same party (a server
presents its own certificate), and asks the standard health service for SERVING.

    accord-healthcheck --pki /pki --target 127.0.0.1:50052 [--ready-file /data/endpoint]
    accord-healthcheck --plaintext --target 127.0.0.1:9099   # Flower's health port

``--ready-file``: also require this file (a node writes ``<data dir>/endpoint`` only once the
coordinator has accepted its registration and it has caught up: "ready", not just "alive").
Exit status 0 when healthy, 1 otherwise, with one line on stderr saying why.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="accord-healthcheck", description=__doc__.split("\n")[0])
    parser.add_argument("--target", required=True, help="host:port of the party's gRPC server")
    parser.add_argument("--pki", type=Path, help="this party's folder (ca.crt, tls.crt, tls.key)")
    parser.add_argument("--peer", help="the server's party name (default: --pki's own name)")
    parser.add_argument("--service", default="", help="health service name ('' = the server)")
    parser.add_argument("--plaintext", action="store_true", help="no TLS (Flower's health port)")
    parser.add_argument("--ready-file", type=Path, help="also require this file to exist")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds")
    args = parser.parse_args(argv)

    if args.ready_file is not None and not args.ready_file.exists():
        print(f"not ready: {args.ready_file} does not exist yet", file=sys.stderr)
        return 1
    if args.plaintext:
        channel = grpc.insecure_channel(args.target)
    else:
        if args.pki is None:
            parser.error("--pki is required unless --plaintext")
        from accord.rpc.tls import PartyCredentials

        credentials = PartyCredentials.load(args.pki)
        channel = credentials.channel(args.target, args.peer or credentials.party)
    try:
        with channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
    except grpc.RpcError as err:
        print(f"unhealthy: {args.target}: {err.code().name}: {err.details()}", file=sys.stderr)
        return 1
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        print(f"unhealthy: {args.target} reports {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
