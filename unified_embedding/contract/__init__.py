"""The feature contract: what the pipeline writes, the model reads and serving checks.

spec          FeatureSpec (`spec.json`), built from `fields`, `table`, `input_format`
errors        SpecError, raised by every part of the contract
schemas       built-in schemas and the short-form schema files
kinds         one small class per field kind; `raw_values`: their raw types
hashing       the one hashing function (TensorFlow ops, and the same in NumPy for the
              pipeline's workers); `features`: raw values -> inputs
vocabulary    collision-free lookup in a fixed vocabulary
artifacts     the names of every file and folder the jobs write and read
"""
