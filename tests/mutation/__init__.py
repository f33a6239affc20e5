"""`make mutate`: plants known bugs one at a time in a copy of the tree and runs the tests that
guard that part of chip against each (python -m tests.mutation --help)."""
