"""Predicted latency for device classes with no runner attached.

training.py      training rows: published latencies (package data, cited) and stored results
featurecache.py  graph features per spec (exporters.features), cached; shipped for training rows
hostcpu.py       this host's CPU latency of the training models (a baseline), shipped
costmodel.py     non-negative per-term cost model and the proportional baselines
cv.py            held-out cases (family and op-type splits), intervals, nested evaluation
fitting.py       a class fitted: every method evaluated, the one that beats the others offered
predictor.py     the offered Predictor and the Prediction it returns (abstains outside the domain)
shipped.py       fitted predictors as package data, keyed by their data; loading, never fitting
routing.py       measure / predict / refuse, decided once per requested class
job.py           the service side: predictors by class, the predict job kind's work
"""
