"""What a command's process sets up, without TensorFlow or Beam at import:

flags.py       command-line flags built from config dataclasses (one default, shown by --help)
helpformat.py  --help with each flag's default
startup.py     TensorFlow and Beam imported without their start-up notices
threads.py     TensorFlow's thread pools (serving and scoring workers)
"""
