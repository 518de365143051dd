"""charnn bench: throughput and quality, each beside a baseline measured in the same run.

The machine is shared and noisy, so every figure is the median of several repeats with its min and
max, and every comparison is the ratio within pairs of runs taken back to back (charnn then the
baseline, then the other way round, ...), so both halves of a pair share the same disturbance.

Sections:
- matmul: this machine's fp32 matrix-multiply ceiling (GFLOP/s), a large GEMM through both of torch's
  CPU libraries: ``torch.mm`` (MKL) and a oneDNN linear layer (what nn.LSTM runs on); bf16 for reference.
- train: charnn's real ``Trainer.train_step`` (data pipeline, learning-rate schedule, clipping, NaN
  check, carried state) on the stdlib corpus vs a bare loop over the same model, precision policy and fused
  AdamW on random token batches of the same shape; FLOPs per character and the fraction of the ceiling.
- sample: ``charnn.sample.generate`` (FastStepper) vs nn.LSTM called once per character.
- encode: ``load_corpus`` on a large file, in a subprocess so its peak RSS is its own, at two sizes
  (RSS must not grow with the size), vs a whole-file numpy encoder.
- quality (``--quality``): best val loss on --quality-corpus (stdlib by default) after a wall-clock budget.
- cuda (where a CUDA GPU is present, on by default there): the train and sample measurements again on the
  GPU, with the shapes recommended for a GPU, so one command tells a GPU user where they stand.

What to measure is charnn.bench.settings, the flags and the command charnn.bench.command, the whole run
charnn.bench.run; each section is measured in a module of its own and tabulated by charnn.bench.table. This
package imports nothing, so the command line can offer the flags without loading torch.
"""
