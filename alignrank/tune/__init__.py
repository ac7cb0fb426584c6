"""Hyper-parameter search over our params with Ray Tune, each trial a real run of our trainer."""
