"""`modelrail load`: open-loop load runs, their report, the spec's load budgets and memory sizing."""
