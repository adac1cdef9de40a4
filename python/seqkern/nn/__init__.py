"""Neural-network layers, losses, optimizers and a Keras-like model on the seqkern kernels.

NumPy parameters, explicit forward and backward (see ``layers``); sequence tensors between layers
are time-major (T, B, F). A text classifier::

    from seqkern import nn
    model = nn.Sequential([
        nn.Embedding(vocab_size, 64),
        nn.LSTM(64, 64, return_sequences=True),
        nn.AttentionPool(64),
        nn.Dense(64, n_classes, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(X, y, epochs=10, batch_size=64)

Training takes Keras's ``validation_split``, ``sample_weight``, ``class_weight`` and callbacks
(``callbacks``: ``ModelCheckpoint``, ``CSVLogger``, ``ReduceLROnPlateau``, ...), metrics beyond
accuracy (``metrics``), per-token outputs for sequence labelling (``TimeDistributed``), and the
functional API (``functional``: ``Input``, ``Model``, ``Dot``, ``Add``, ``Concatenate``,
``Softmax``), and convolution over time (``Conv1D``, ``GlobalMaxPool1D``). ``model.summary()``, ``model.plot_history(path)`` and ``model.to_onnx(path)``
(``onnx_export``) describe, draw and export a model; ``from_keras(keras_model)`` converts a
trained Keras ``Sequential`` model.
"""

from . import metrics
from .callbacks import (Callback, CSVLogger, EarlyStopping, LambdaCallback, LearningRateScheduler, ModelCheckpoint,
                        ReduceLROnPlateau)
from .functional import Add, Concatenate, Dot, Input, Model, Softmax
from .keras_import import from_keras
from .layers import (GRU, LSTM, AttentionPool, Conv1D, Dense, Dropout, Embedding, GlobalMaxPool1D, Layer, MeanPool,
                     SimpleRNN, TimeDistributed, layer_from_config)
from .losses import BinaryCrossEntropy, MeanSquaredError, SoftmaxCrossEntropy, get_loss
from .model import Sequential, load_model
from .optim import SGD, Adam, Optimizer, get_optimizer, global_norm
from .predict import Predictor

__all__ = [
    "Layer", "Embedding", "Dense", "Dropout", "LSTM", "GRU", "SimpleRNN", "AttentionPool", "MeanPool", "TimeDistributed",
    "Conv1D", "GlobalMaxPool1D", "layer_from_config",
    "SoftmaxCrossEntropy", "BinaryCrossEntropy", "MeanSquaredError", "get_loss",
    "Optimizer", "SGD", "Adam", "get_optimizer", "global_norm",
    "Sequential", "load_model", "metrics", "Input", "Model", "Dot", "Add", "Concatenate", "Softmax",
    "Callback", "LambdaCallback", "EarlyStopping", "ModelCheckpoint", "CSVLogger", "ReduceLROnPlateau",
    "LearningRateScheduler", "Predictor", "from_keras",
]
