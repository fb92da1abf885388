"""The drift monitor: baseline statistics, capture records, and the scheduled function that compares them."""
