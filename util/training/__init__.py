"""Training: the settings of a model script (``settings``), its roles (``roles``: train, test,
predict, average), one run (``run``) in its folder (``folders``), tf.distribute (``distribute``),
studies (``studies``: sweep, ablation, time budget) and training speed (``speed``)."""
