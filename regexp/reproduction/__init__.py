"""The Scardapane et al. 2017 reproduction (``make reproduce``): claims, tables, figures."""
