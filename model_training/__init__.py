"""Training stage: from labelled tweets to a published model artifact.

Hyperparameters, training loops, metrics, evaluation, the default model, ONNX export, the tuning spec, the SageMaker
entry point and the local (Optuna) and SageMaker tuners. Datasets and the model registry are in the kernel
(``tone.datasets``, ``tone.registry``): the stream and the CLI use them too.
"""
