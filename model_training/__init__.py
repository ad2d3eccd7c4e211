"""Training stage: datasets, training, evaluation, tuning and the model registry. Built in issues 3 and 5."""
