#!/usr/bin/env python3
"""Sample from a trained char-RNN: `python generate.py --help`. With no arguments, samples the newest run."""

import sys

from charnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))
