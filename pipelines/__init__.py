"""Apache Beam preprocessing: raw click logs -> validated, hashed, split training records."""
