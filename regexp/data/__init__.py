"""Data: raw tables (:mod:`~regexp.data.sources`: built-in sets, CSV files), their split and
scaling (:mod:`~regexp.data.prepare`) and the cache of prepared sets (:mod:`~regexp.data.cache`)."""
