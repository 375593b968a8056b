"""`rebalancer chain up|build`: local fixture chains on anvil."""

from __future__ import annotations

import argparse
import signal
import threading


def cmd_chain_build(args: argparse.Namespace) -> int:
    from anvil_fixtures.builder import build

    fixture = build(args.scenario, mirror=args.mirror, force=args.force)
    print(f"state:    {fixture.state_path}")
    print(f"manifest: {fixture.manifest_path}")
    return 0


def cmd_chain_up(args: argparse.Namespace) -> int:
    from anvil_fixtures.builder import build

    fixture = build(args.scenario, mirror=args.mirror)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with fixture.start(port=args.port) as anvil:
        print(
            f"fixture chain {fixture.manifest['scenario']!r}{' (mirror)' if args.mirror else ''} "
            f"at block {fixture.manifest['block_number']}, chain id {fixture.chain_id}"
        )
        print(f"rpc url:  {anvil.url}")
        print(f"manifest: {fixture.manifest_path}")
        print(f"keeper:   {fixture.manifest['keeper']['address']} (anvil dev key in the manifest)")
        print("Ctrl-C stops it.", flush=True)
        stop.wait()
    return 0
