#!/usr/bin/env python3
"""Train a char-RNN: `python train.py --help`. With no arguments, trains on the Python standard library."""

import sys

from charnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
