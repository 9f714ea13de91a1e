"""The tiny tab-separated schema the pipeline's tests share: a label, a log1p number, a
categorical and a multi-valued field, no header."""

TINY_SCHEMA = {
    "columns": ["y", "n", "c", "m"],
    "label": "y",
    "delimiter": "\t",
    "header": False,
    "numeric": {"n": "log1p"},
    "multi_valued": {"m": "|"},
}
