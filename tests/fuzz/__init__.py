"""Hostile-input fuzzing of every way in that reads outside input (issue 27).

mutations.py turns real files (../shared/corpora and the repository's own samples) into
seeded hostile cases; ways.py runs each case through the real `ainews` command in a
subprocess with a 10 s kill and a memory cap and classifies what happened; test_fuzz.py runs
a bounded number of cases per way in, and benchmarks/fuzz.py the long run."""
