"""charnn generate's command line: its flags and the command, which streams one sample or prints many."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from charnn.argtypes import rule_of as rule
from charnn.errors import CharnnError
from charnn.sample_options import SAMPLE_PRECISIONS, SampleOptions


def add_generate_options(parser: argparse.ArgumentParser) -> None:
    """Sampling flags."""
    parser.add_argument("--run", help="run directory (default: the newest under runs/)")
    parser.add_argument("--checkpoint", help="a checkpoint file instead of --run")
    parser.add_argument(
        "--which", choices=("best", "last"), default="best", help="which checkpoint of the run (default: best)"
    )
    parser.add_argument(
        "--length",
        type=rule(SampleOptions, "length"),
        default=500,
        help="characters to generate per sample (default: 500)",
    )
    parser.add_argument(
        "--temperature",
        type=rule(SampleOptions, "temperature"),
        default=0.8,
        help="> 0 sharpens (<1) or flattens (>1) the distribution; 0 = greedy argmax (default: 0.8)",
    )
    parser.add_argument(
        "--greedy", action="store_true", help="always take the most likely character (same as --temperature 0)"
    )
    parser.add_argument(
        "--top-k", type=rule(SampleOptions, "top_k"), help="sample only from the K most likely characters"
    )
    parser.add_argument(
        "--top-p",
        type=rule(SampleOptions, "top_p"),
        help="sample only from the smallest set of characters whose probability reaches P, in (0, 1]",
    )
    parser.add_argument(
        "--prime", default="", help="text to warm the state on; the output starts with it unless --no-echo"
    )
    parser.add_argument("--prime-file", help="read the priming text from a file")
    parser.add_argument("--no-echo", action="store_true", help="do not print the priming text")
    parser.add_argument(
        "--seed",
        type=rule(SampleOptions, "seed"),
        help="random seed: same seed, checkpoint and options give the same text",
    )
    parser.add_argument(
        "--num-samples",
        type=rule(SampleOptions, "num_samples"),
        default=1,
        help="samples generated together as one batch (default: 1)",
    )
    parser.add_argument("--stop", help="end a sample when it produces this string (e.g. $'\\n' for one tweet)")
    parser.add_argument(
        "--unknown",
        choices=("error", "replace"),
        default="error",
        help="priming characters outside the vocabulary: stop (error) or map to the unknown id (replace)",
    )
    parser.add_argument(
        "--clamp",
        action="append",
        default=[],
        metavar="LAYER:UNIT=VALUE",
        help="hold a unit's h (in [-1, 1]; or an LSTM's c with LAYER:UNIT:c=VALUE) at a value inside every "
        "step, where the layer above and the output read it; layers from 1, as the probe numbers them (-1 is the top "
        "layer: --clamp -1:0=1 works); "
        "repeatable",
    )
    parser.add_argument("--out", help="also write the samples to this file")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, mps or auto")
    parser.add_argument(
        "--precision",
        choices=SAMPLE_PRECISIONS,
        default="fp32",
        help="fp32 (default), or bf16: each step's matrix products in bf16, faster on a CPU with AVX-512 BF16 "
        "or AMX and on recent GPUs; the distribution is close to fp32's, not equal (charnn bench measures both)",
    )


def command_generate(args: argparse.Namespace) -> int:
    """charnn generate: a loaded model's stream (one sample) or samples (many) to stdout, and --out."""
    from charnn.api import Model
    from charnn.device import pick_device
    from charnn.sample import Clamp, SampleOptions, resolve_checkpoint

    prime = args.prime
    if args.prime_file:
        try:
            prime = Path(args.prime_file).read_text(encoding="utf-8-sig")  # -sig: a BOM is not part of the text
        except (OSError, UnicodeDecodeError) as err:
            raise CharnnError(
                f"cannot read --prime-file '{args.prime_file}': {getattr(err, 'strerror', None) or err}"
            ) from None
    settings = dict(
        length=args.length,
        temperature=0.0 if args.greedy else args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        prime=prime,
        seed=args.seed,
        stop=args.stop,
        echo=not args.no_echo,
        unknown=args.unknown,
        precision=args.precision,
    )
    clamps = [Clamp.parse(c) for c in args.clamp]
    SampleOptions(
        num_samples=args.num_samples, clamps=clamps, **settings
    ).validate()  # flags first, before any file is read
    model = Model(resolve_checkpoint(args.run, args.checkpoint, args.which), pick_device(args.device))
    out = sys.stdout
    if args.num_samples == 1:
        pieces = []
        for piece in model.stream(clamp=clamps, **settings):
            out.write(piece)
            out.flush()
            pieces.append(piece)
        out.write("\n")
        written = "".join(pieces)
    else:  # many streams print at the end
        texts = model.generate(num_samples=args.num_samples, clamp=clamps, **settings)
        written = "".join(f"--- sample {i + 1} ---\n{t}\n" for i, t in enumerate(texts))
        out.write(written)
    out.flush()
    if args.out:
        try:
            Path(args.out).write_text(written, encoding="utf-8")
        except OSError as err:
            raise CharnnError(f"cannot write --out '{args.out}': {err.strerror}") from None
    return 0
