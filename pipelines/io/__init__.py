"""Read CSV and IDX files (raw or gzip) into ``Chunk`` streams: parse, validate, cache. The I/O edge.

CSV: header or not (``header="auto"`` sniffs the first line), LF or CRLF, ``.csv.gz``, any label column (index,
header name, or ``None`` for unlabelled files). IDX: ``*-idx3-ubyte`` images with their ``*-idx1-ubyte`` labels
found beside them, raw or ``.gz``. This module only re-exports the public API; one module per idea:

- ``sources``: byte blocks of a file, raw or gunzipped; ``BLOCK_BYTES``.
- ``bad_rows``: raise at the first bad row, or skip and report them.
- ``csv_format``: the CSV parser (vectorised blocks, parse threads, bisection to bad lines); ``csv_row_lines``.
- ``idx_format``: the IDX parser; ``find_labels_file``.
- ``cache``: the ``.npy`` parse cache and ``file_sha256``.
- ``readers``: ``read_chunks``, ``read_arrays``, ``read_arrays_with_sha256``.
- ``writers``: ``write_csv``, ``write_idx``.
- ``atomic``: ``atomic_file`` / ``atomic_write_bytes``, the temp-file-and-rename write (cache, downloads, run folders).
"""

from pipelines.io.cache import file_sha256
from pipelines.io.csv_format import csv_row_lines
from pipelines.io.idx_format import find_labels_file
from pipelines.io.readers import read_arrays, read_arrays_with_sha256, read_chunks
from pipelines.io.writers import write_csv, write_idx

__all__ = ["read_chunks", "read_arrays", "read_arrays_with_sha256", "csv_row_lines", "write_csv", "write_idx",
           "file_sha256", "find_labels_file"]
