"""Results as tables: run identity (``config_id``, ``data_id``), the column schema, aggregation
over seeds and model selection. Pure pandas: no files, no figures."""
