"""Reading raw rows, from a file's bytes to the training records.

textfile       delimited files as blocks of whole lines: decompression, BOM, header, offsets
headers        a header line matched to the input format by column name
cells          lines -> a table of string cells (pyarrow.csv, in C++)
validation     the rules a raw row must meet, a block at a time (dead letters with a reason)
arrow_tensors  Arrow string columns -> TensorFlow string tensors
reader         the in-process reader: raw rows of a file as columns, plus labels
records        the training-record layout: one tf.train.Example per block of rows
sample, column_kinds, infer, schema_cli   `ue schema infer FILE`: a schema proposed from a
               file's header and first rows
"""
