"""Reading raw rows: delimited files as blocks, headers by name, cells, validation, the
in-process reader, and the training-record layout."""
