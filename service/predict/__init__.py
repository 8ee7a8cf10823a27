"""Predicted latency for device classes with no runner attached.

training.py      training rows: published latencies (package data, cited) and stored results
featurecache.py  graph features per spec (exporters.features), cached; shipped for training rows
hostcpu.py       this host's CPU latency of the training models (a baseline), shipped
costmodel.py     non-negative per-term cost model and the proportional baselines
cv.py            leave-one-family-out cross-validation and the choice of terms
predictor.py     Predictor per device class and the Prediction it returns (the API to call)
"""
