"""``wardtui generate``: a bank-shaped inventory of loopback addresses, to try wardtui at scale."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from wardtui.cli.common import Commands, command, file_mode, write_out
from wardtui.messages import error

EXAMPLES = """\
examples:
  wardtui generate --devices 50000 -o big.csv
  wardtui generate --devices 200 --regions 2 -o lab.csv && wardtui --inventory lab.csv
"""


def register(sub: Commands) -> None:
    gen = command(sub, "generate", run, "write a bank-shaped inventory of loopback addresses", EXAMPLES)
    gen.add_argument("--devices", type=int, default=875, metavar="N", help="number of devices (default 875)")
    gen.add_argument("--regions", type=int, default=10, metavar="N", help="number of regions (default 10)")
    gen.add_argument("--seed", type=int, default=7, help="random seed for the branch kit (default 7)")
    gen.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here instead of stdout")
    gen.add_argument("--mode", type=file_mode, default=0o600, metavar="OCTAL",
                     help="mode of the -o file (default 600: yours alone; e.g. 644 to share it)")


def run(args: argparse.Namespace) -> int:
    from poller.generate import bank_rows, write_csv

    if args.devices < 1:
        error("--devices must be at least 1", prefix="wardtui generate")
        return 2
    rows = bank_rows(args.devices, args.regions, args.seed)
    if args.output is None:
        text = io.StringIO()
        write_csv(text, rows)
        write_out(text.getvalue().rstrip("\n"))  # `| head` closing the pipe is not an error
        return 0
    try:
        from store.files import open_output

        with open_output(args.output, args.mode) as out:
            write_csv(out, rows)
    except OSError as exc:  # a directory, /proc/version, a missing directory, a full disk
        error(f"-o {args.output}: cannot write the inventory: {exc.strerror or exc}",
              prefix="wardtui generate")
        return 2
    return 0
