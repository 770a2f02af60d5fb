"""Layer 1, the math: nothing here knows an environment, a file or an algorithm.

    checks         argument checks: TypeError for a wrong type, ValueError for a wrong value
    returns        reward_to_go and GAE over (T, N) arrays: checks, then the compiled kernels
    nn             the MLP: out, cache = forward(x); backward(cache, dout); jvp(cache, v)
    distributions  Categorical and DiagGaussian: log_prob, entropy, scores, param_grads
    heads          observations as rows, the cache a backward reads, one vector for networks
    policies       a network plus a distribution: CategoricalPolicy, GaussianPolicy
    value          the value function V(s)
    losses         the score-function surrogate, advantage normalisation, the value loss
    optim          Adam, SGD, global-norm clipping, the clipped step, learning-rate schedules
    normalize      running mean and variance, observation normalisation, reward scaling
    speed          one BLAS thread and freed memory kept for reuse, while training
    memory         what a run or an evaluation will allocate, checked before it does

May import only numpy, threadpoolctl and the compiled kernels (minipg._kernels,
minipg._update_kernels): no gymnasium, no other minipg package.
"""
