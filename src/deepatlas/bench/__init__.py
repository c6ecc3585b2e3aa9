"""Side-by-side benchmarks against reference implementations, runnable by any user.

Each benchmark builds our implementation and the reference at the same
configuration in one process, warms both up, then times them in alternating
rounds and reports medians and ratios (ours / reference): these machines are
shared and noisy, ratios measured side by side are what to compare.
"""
