"""The training plan's tables, one per fact, shared by the compiled plan
(:mod:`fastnn._kernels.plan`), its NumPy twin (:mod:`fastnn.reference.plan`)
and the Python API that describes a model to them.

A layer, a loss and an optimizer each describe themselves to the plan by
name (``Layer.plan_op``, ``LossSpec.plan_loss``, ``Optimizer.plan_spec``);
these tables turn the names into the codes and argument orders that the
compiled step loop switches on. Pure Python: importable without the compiled
kernels.
"""

__all__ = ["ACTIVATION_CODES", "LABEL_LOSSES", "LAYER_CODES", "LAYER_KINDS",
           "LOSS_CODES", "OPTIMIZERS", "OptimizerCodes"]

from collections import namedtuple

#: Canonical activation name -> kernel code (the ``ACT_*`` enum of
#: ``activations.pxd``, which ``activations.pyx`` checks against this table).
ACTIVATION_CODES = {
    "identity": 0, "sigmoid": 1, "tanh": 2, "relu": 3, "leaky_relu": 4,
    "elu": 5, "selu": 6, "silu": 7, "gelu": 8, "gelu_tanh": 9, "softplus": 10,
}

#: The kinds of step the plan runs, one per layer, in code order; each
#: kind's arrays and values are listed by :data:`LAYER_KINDS`.
LAYER_KINDS = {
    # kind: (arrays, of which optional, values)
    "dense": (("weight", "bias", "grad_weight", "grad_bias", "Y", "Z", "dX"),
              ("grad_weight", "grad_bias", "Z"),
              ("activation", "alpha", "l1", "l2", "trainable")),
    "activation": (("Y", "dX"), (), ("activation", "alpha")),
    "softmax": (("Y", "dX"), (), ("temperature",)),
    "dropout": (("mask", "Y", "dX"), (), ("p",)),
    "noise": (("Y",), (), ("std",)),
    "batchnorm": (("weight", "bias", "grad_weight", "grad_bias", "running_mean",
                   "running_var", "mean", "invstd", "Y", "dX"), (),
                  ("eps", "momentum", "trainable")),
    "prelu": (("weight", "grad_weight", "Y", "dX"), (), ("trainable",)),
    "maxout": (("weight", "bias", "grad_weight", "grad_bias", "Z", "argmax",
                "dZ", "Y", "dX"), ("grad_weight", "grad_bias"),
               ("pieces", "trainable")),
}
LAYER_CODES = {kind: code for code, kind in enumerate(LAYER_KINDS)}

#: Loss name -> code; the label losses (int64 class targets) come first.
LOSS_CODES = {"softmax_cross_entropy": 0, "hinge": 1, "mse": 2, "mae": 3,
              "huber": 4, "binary_cross_entropy": 5}
LABEL_LOSSES = ("softmax_cross_entropy", "hinge")

#: An optimizer's code, its hyperparameters in the order the kernel takes
#: them (SGD's ``velocity`` and Adam's ``eps_uncorrected`` are scikit-learn's
#: forms of the update, see ``optim.pyx``), its state arrays (each shaped like the flat parameter buffer, None
#: where the hyperparameters leave one unused) and its float64 scalars.
OptimizerCodes = namedtuple("OptimizerCodes", "code hyper state scalars")

OPTIMIZERS = {
    "sgd": OptimizerCodes(0, ("momentum", "dampening", "nesterov", "weight_decay",
                              "velocity"),
                          ("momentum_buffer",), ()),
    "adagrad": OptimizerCodes(1, ("lr_decay", "weight_decay", "eps", "decay"),
                              ("sum",), ()),
    "rmsprop": OptimizerCodes(2, ("alpha", "eps", "weight_decay", "momentum",
                                  "centered"),
                              ("square_avg", "momentum_buffer", "grad_avg"), ()),
    "adadelta": OptimizerCodes(3, ("rho", "eps", "weight_decay"),
                               ("square_avg", "acc_delta"), ()),
    "adam": OptimizerCodes(4, ("beta1", "beta2", "eps", "weight_decay", "amsgrad",
                               "eps_uncorrected"),
                           ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"), ()),
    "adamw": OptimizerCodes(5, ("beta1", "beta2", "eps", "weight_decay",
                                "amsgrad", "eps_uncorrected"),
                            ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"), ()),
    "nadam": OptimizerCodes(6, ("beta1", "beta2", "eps", "weight_decay",
                                "momentum_decay"),
                            ("exp_avg", "exp_avg_sq"), ("mu_product",)),
}
