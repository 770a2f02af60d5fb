# Per env step while collecting: the reward scaler's step (RewardScaler.scale_reference,
# minipg/core/normalize.py) and the episode bookkeeping (RolloutCollector._track_episodes,
# minipg/envs/rollout.py). Included by _update_kernels.pyx.


def reward_scale_step(cnp.ndarray returns not None, object rewards, object dones, object real,
                      double gamma,
                      long long count, double mean, double var, double eps, double clip_reward):
    """One step of RewardScaler.scale, as scale_reference computes it with NumPy:

        R      = R * gamma + r                    (returns, in place)
        merge the R of the real rows into (count, mean, var) as RunningMeanStd.update does:
            mean_b = sum(R_real) / n_b, var_b = sum((R_real - mean_b)^2) / n_b   (NumPy's sums)
            delta  = mean_b - mean
            M2     = var * count + var_b * n_b + delta * delta * count * n_b / (count + n_b)
            mean   = mean + delta * n_b / (count + n_b),  var = M2 / (count + n_b)
        R      = 0 where done
        scaled = clip(r / sqrt(var + eps), -clip_reward, clip_reward)

    returns (N,) float64, written in place; rewards (N,) float64; dones and real (N,) bool (real
    None: every row), all contiguous. Returns (scaled, count, mean, var), the statistics as
    they are after the step (no real row leaves them as they were), or None for other dtypes
    or layouts (the caller's NumPy reference takes those).
    """
    cdef Py_ssize_t n = returns.shape[0] if returns.ndim == 1 else -1, i, k = 0
    cdef bint every_row = real is None
    if every_row:
        real = dones                        # (only its layout is checked, never its values)
    if not (isinstance(rewards, np.ndarray) and isinstance(dones, np.ndarray)
            and isinstance(real, np.ndarray)):
        return None
    cdef cnp.ndarray real_array = real, rewards_array = rewards, dones_array = dones
    cdef cnp.ndarray array
    for array in (returns, rewards_array, dones_array, real_array):
        if array.ndim != 1 or not cnp.PyArray_IS_C_CONTIGUOUS(array):
            return None
    if (cnp.PyArray_TYPE(returns) != cnp.NPY_DOUBLE
            or cnp.PyArray_TYPE(rewards_array) != cnp.NPY_DOUBLE
            or cnp.PyArray_TYPE(dones_array) != cnp.NPY_BOOL
            or cnp.PyArray_TYPE(real_array) != cnp.NPY_BOOL
            or not cnp.PyArray_ISWRITEABLE(returns)):
        return None
    _check_length("rewards", rewards_array.shape[0], n)
    _check_length("dones", dones_array.shape[0], n)
    _check_length("real", real_array.shape[0], n)
    cdef cnp.ndarray scaled_array = _empty1(n, cnp.NPY_DOUBLE)
    cdef double* returns_ = <double*>_data(returns)
    cdef const double* rewards_ = <double*>_data(rewards_array)
    cdef const unsigned char* dones_ = <unsigned char*>_data(dones_array)
    cdef const unsigned char* real_ = <unsigned char*>_data(real_array)
    cdef double* scaled = <double*>_data(scaled_array)
    cdef double* picked = <double*>malloc(max(n, 1) * sizeof(double))
    if picked == NULL:
        raise MemoryError()
    cdef double mean_b, var_b, delta, m2, n_a, n_b, n_ab, x, scale
    with nogil:
        for i in range(n):
            returns_[i] = returns_[i] * gamma + rewards_[i]
            if every_row or real_[i]:
                picked[k] = returns_[i]
                k = k + 1
        if k > 0:
            n_b = <double>k
            mean_b = _pairwise_sum(picked, k) / n_b
            for i in range(k):
                x = picked[i] - mean_b
                picked[i] = x * x
            var_b = _pairwise_sum(picked, k) / n_b
            n_a = <double>count
            n_ab = <double>(count + k)
            delta = mean_b - mean
            m2 = (var * n_a if count else 0.0) + var_b * n_b
            m2 = m2 + delta * delta * n_a * n_b / n_ab
            mean = mean + delta * n_b / n_ab
            var = m2 / n_ab
            count = count + k
        for i in range(n):
            if dones_[i]:
                returns_[i] = 0.0
        scale = sqrt(var + eps)
        for i in range(n):
            x = rewards_[i] / scale
            # np.clip's order: the upper bound over the lower one's max; a NaN stays NaN
            if not (x != x):
                if x < -clip_reward:
                    x = -clip_reward
                if x > clip_reward:
                    x = clip_reward
            scaled[i] = x
    free(picked)
    return scaled_array, count, mean, var


def track_episodes(cnp.ndarray episode_return not None, cnp.ndarray episode_length not None,
                   cnp.ndarray rewards not None, cnp.ndarray real not None,
                   cnp.ndarray terminated not None, cnp.ndarray truncated not None):
    """The collector's episode bookkeeping for one step of N envs (RolloutCollector's
    _track_episodes, its NumPy lines' numbers), in place:

        return += r * real,   length += real,   ended = real & (terminated | truncated)
        then, for each ended env (in order): record (return, length), and start both at 0

    episode_return (N,) float64, episode_length (N,) int64, rewards (N,) float64, the rest (N,)
    bool, all contiguous, the first two writeable. Returns (ended (N,) bool, [(return, length)
    of each ended episode]), or None otherwise (the caller's NumPy lines take those cases).
    """
    cdef npy_intp n = episode_return.shape[0] if episode_return.ndim == 1 else -1, i
    cdef cnp.ndarray array
    for array in (episode_return, episode_length, rewards, real, terminated, truncated):
        if array.ndim != 1 or array.shape[0] != n or not cnp.PyArray_IS_C_CONTIGUOUS(array):
            return None
    if (cnp.PyArray_TYPE(episode_return) != cnp.NPY_DOUBLE
            or cnp.PyArray_TYPE(rewards) != cnp.NPY_DOUBLE
            or cnp.PyArray_TYPE(episode_length) != cnp.NPY_INT64
            or cnp.PyArray_TYPE(real) != cnp.NPY_BOOL
            or cnp.PyArray_TYPE(terminated) != cnp.NPY_BOOL
            or cnp.PyArray_TYPE(truncated) != cnp.NPY_BOOL
            or not cnp.PyArray_ISWRITEABLE(episode_return)
            or not cnp.PyArray_ISWRITEABLE(episode_length)):
        return None
    cdef double* ret = <double*>_data(episode_return)
    cdef long long* length = <long long*>_data(episode_length)
    cdef const double* r = <double*>_data(rewards)
    cdef const unsigned char* real_ = <unsigned char*>_data(real)
    cdef const unsigned char* term = <unsigned char*>_data(terminated)
    cdef const unsigned char* trunc = <unsigned char*>_data(truncated)
    cdef cnp.ndarray ended = _empty1(n, cnp.NPY_BOOL)
    cdef unsigned char* ended_ = <unsigned char*>_data(ended)
    finished = []
    for i in range(n):
        ret[i] = ret[i] + r[i] * (1.0 if real_[i] else 0.0)
        length[i] = length[i] + (1 if real_[i] else 0)
        ended_[i] = 1 if (real_[i] and (term[i] or trunc[i])) else 0
        if ended_[i]:
            finished.append((ret[i], length[i]))
            ret[i] = 0.0
            length[i] = 0
    return ended, finished
