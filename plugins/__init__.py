"""The pytest front end of the alignment harness."""
