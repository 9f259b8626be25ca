"""The offline HTML report: one self-contained file built from every study's results."""
