"""minipg: policy gradients from scratch in NumPy.

The public names, from the layers that define them (the tree is the architecture: each package's
docstring says what it holds and what it may import; imports only go down):

    minipg.train, minipg.evaluate, minipg.load, minipg.save_policy       minipg/run/
    minipg.reward_to_go, minipg.gae                                     minipg/core/returns.py
    minipg.Categorical, minipg.DiagGaussian                             minipg/core/distributions.py
    minipg.CategoricalPolicy, minipg.GaussianPolicy, minipg.ValueFunction, minipg.MLP
    minipg.Adam, minipg.SGD                                             minipg/core/optim.py
    minipg.TabularMDP                                                   minipg/exact/
    minipg.algos.<name>.Config, .update                                 minipg/algos/

Importing minipg loads the compiled return kernels (minipg._kernels). If they are missing the
import fails with an ImportError that says how to build them; MINIPG_PURE_NUMPY=1 opts into the
plain NumPy reference instead (minipg.returns.BACKEND says which runs).
"""
from minipg.core import distributions, returns  # noqa: F401  (minipg.returns.BACKEND, ...)
from minipg.core.distributions import Categorical, DiagGaussian
from minipg.core.nn import MLP
from minipg.core.optim import SGD, Adam
from minipg.core.policies import CategoricalPolicy, GaussianPolicy
from minipg.core.returns import gae, reward_to_go
from minipg.core.value import ValueFunction
from minipg.exact.mdp import TabularMDP
from minipg.run.checkpoint import load, save_policy
from minipg.run.evaluate import evaluate
from minipg.run.loop import TrainResult, train

__version__ = "0.1.0"
__all__ = ["train", "evaluate", "load", "save_policy", "TrainResult", "reward_to_go", "gae",
           "Categorical", "DiagGaussian", "CategoricalPolicy", "GaussianPolicy", "ValueFunction",
           "MLP", "Adam", "SGD", "TabularMDP", "returns", "distributions", "__version__"]
