"""Evaluation: the protocols (``protocols``), PSNR / SSIM (``metrics``), raster scores
(``raster_metrics``, ``raster_eval``), the classical peers (``peers``), the scores of a data set's
test pairs (``pair_scores``) and the tables and figures (``report``)."""
