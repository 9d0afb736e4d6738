"""`python -m sim --scenario FILE --out DIR`: the simulator without the bot's CLI around it."""

from __future__ import annotations

import argparse
import sys

from sim.server import Ports, main


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="winpod sim", description=__doc__)
    parser.add_argument("--scenario", required=True, help="scenario YAML (SPEC §8)")
    parser.add_argument("--out", required=True, help="directory for kubeconfig, winpod.yaml, …")
    parser.add_argument("--kube-port", type=int, default=0, help="0: any free port")
    parser.add_argument("--control-port", type=int, default=0)
    parser.add_argument("--slack-port", type=int, default=0)
    parser.add_argument("--winrm-port", type=int, default=0)
    args = parser.parse_args(argv)
    return main(
        args.scenario,
        args.out,
        Ports(args.kube_port, args.control_port, args.slack_port, args.winrm_port),
    )


if __name__ == "__main__":
    sys.exit(cli())
