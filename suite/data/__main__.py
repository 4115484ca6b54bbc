"""Command line: ``python -m suite.data [ensure|describe] ...`` prints JSON.

``python -m suite.data ensure voc2012 --cache-dir DIR [--seed 0] [--num-train 48]
[--num-val 16] [--size 96 96] [--num-aug N]`` generates (once) and describes a dataset (any key
of ``DATASETS``, e.g. ``coco2017`` for COCO 2017 instances, default size 128 160);
``python -m suite.data describe ROOT`` describes an existing tree; ``python -m suite.data
list`` prints the metadata of every dataset.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from suite.data.generate import describe, ensure_dataset
from suite.data.registry import DATASETS


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m suite.data", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    ens = sub.add_parser("ensure", help="generate a dataset once and describe it")
    ens.add_argument("dataset", choices=sorted(DATASETS))
    ens.add_argument("--cache-dir", type=Path, default=None)
    ens.add_argument("--seed", type=int, default=0)
    ens.add_argument("--num-train", type=int, default=None)
    ens.add_argument("--num-val", type=int, default=None)
    ens.add_argument("--num-aug", type=int, default=None)
    ens.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=None)
    desc = sub.add_parser("describe", help="count images and label maps per split")
    desc.add_argument("root", type=Path)
    sub.add_parser("list", help="print the metadata of every dataset")
    args = parser.parse_args(argv)
    if args.cmd == "ensure":
        t0 = time.perf_counter()
        root = ensure_dataset(args.dataset, cache_dir=args.cache_dir, seed=args.seed,
                              num_train=args.num_train, num_val=args.num_val,
                              size=None if args.size is None else tuple(args.size),
                              num_aug=args.num_aug)
        out = describe(root)
        out["seconds"] = round(time.perf_counter() - t0, 3)
    elif args.cmd == "describe":
        out = describe(args.root)
    else:
        out = {k: dataclasses.asdict(v) for k, v in DATASETS.items()}
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
