"""The benchmarks behind ``benchmark.py``, one module per subcommand, each with only its own flags:
``models`` (super-resolution models beside bicubic: quality, speed, size, memory), ``restoration``
(denoising and deblurring models beside the classical peers), ``raster`` (the DEM models beside
bicubic and cubic spline), ``training`` (training speed of the model scripts), ``scaling`` (one
training process against two tf.distribute workers) and ``data_sizes`` (peak memory against the
size of the training set). Each module has ``add_arguments(parser)`` and ``main(args)``; what they
share (median timing, the peak RSS of a child process, the machine's name, the written .md and
.json tables, the common flags) is in ``util.benchmarks.measure``. Nothing runs at import time.
"""
