"""One module per network, each defining `RECIPE` (SPEC §3: the authors' released configs)."""
