"""Models: the layers every model carries and the model card ``SuiteInfo`` (``layers``), loading,
checking and averaging saved models (``loading``) and exporting them to other runtimes (``export``)."""
