"""The feature contract: spec.json, schemas, field kinds, the one hashing function, the
file names of every artifact."""
