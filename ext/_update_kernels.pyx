"""Compiled kernels for the training step: Adam's step and tanh's derivative in the backward
pass, and the reward scaler's per-step update while collecting.

Each kernel is one loop doing what its NumPy reference (Adam.step_reference in
minipg/core/optim.py, MLP.backward's NumPy lines in minipg/core/nn.py,
RewardScaler.scale_reference in minipg/core/normalize.py) does in several passes over the
arrays: the same IEEE operations, on the same dtype, in the same order, so the results
are bit for bit the reference's (the tests compare them with array_equal). Two things keep them
so: setup.py compiles this module without FMA contraction (-ffp-contract=off; a fused
multiply-add rounds once where NumPy rounds twice) and without -ffast-math, and each scalar is
rounded to the dtype NumPy would compute in. NumPy 2 treats a Python float as "weak" (it takes
the array's dtype: float32 for a float32 array) and a numpy.float64 scalar as float64 (the
float32 array is promoted, the result rounded back when stored), and the kernels follow the
reference line by line on that.

Shapes are checked here (ValueError), before the GIL is released: the loops trust them.
"""
from libc.math cimport sqrt, sqrtf
from libc.stdlib cimport malloc, free
from cython cimport floating


cdef inline void _check_length(str name, Py_ssize_t got, Py_ssize_t expected) except *:
    if got != expected:
        raise ValueError(f"{name} has length {got}, expected {expected}")


def adam_step(floating[::1] params not None, const floating[::1] grad not None,
              floating[::1] m not None, floating[::1] v not None,
              double one_minus_beta1, double one_minus_beta2, double eps_term, double step_size):
    """One Adam step in place, as Adam.step_reference computes it, element by element:

        m  = m + (1 - beta1) (g - m)            (1 - beta1: a Python float, the arrays' dtype)
        v  = v + (1 - beta2) (g^2 - v)          (likewise)
        s  = sqrt(v) + eps_term                 (eps_term: float64, the sum rounded back)
        s  = m / s
        s  = s * step_size                      (step_size: float64, the product rounded back)
        params = params - s
    """
    cdef Py_ssize_t n = params.shape[0], i
    _check_length("grad", grad.shape[0], n)
    _check_length("m", m.shape[0], n)
    _check_length("v", v.shape[0], n)
    if n == 0:
        return
    cdef floating c1 = <floating>one_minus_beta1, c2 = <floating>one_minus_beta2
    cdef floating d, e, mi, vi, s
    # plain pointers and one flat loop: what the compiler vectorises (with a runtime check
    # that the four arrays do not overlap)
    cdef floating* p = &params[0]
    cdef const floating* g = &grad[0]
    cdef floating* m_ = &m[0]
    cdef floating* v_ = &v[0]
    with nogil:
        for i in range(n):
            d = g[i] - m_[i]
            d = d * c1
            mi = m_[i] + d
            m_[i] = mi
            e = g[i] * g[i]
            e = e - v_[i]
            e = e * c2
            vi = v_[i] + e
            v_[i] = vi
            if floating is float:   # correctly rounded either way: sqrtf(x) == (float)sqrt(x)
                s = sqrtf(vi)
            else:
                s = sqrt(vi)
            s = <floating>(<double>s + eps_term)
            s = mi / s
            s = <floating>(<double>s * step_size)
            p[i] = p[i] - s


def tanh_backward(floating[:, ::1] grad_h not None, const floating[:, ::1] h not None):
    """grad_h *= 1 - h^2 in place (tanh'(z) from the layer's output h = tanh(z)), rounding as
    NumPy's three passes do: h*h, then 1 - that, then the product."""
    cdef Py_ssize_t rows = grad_h.shape[0], cols = grad_h.shape[1], i, j
    _check_length("h's rows", h.shape[0], rows)
    _check_length("h's columns", h.shape[1], cols)
    if rows == 0 or cols == 0:
        return
    cdef floating square, derivative
    cdef floating* g = &grad_h[0, 0]
    cdef const floating* h_ = &h[0, 0]
    with nogil:
        for i in range(rows * cols):                  # both C-contiguous: one flat loop
            square = h_[i] * h_[i]
            derivative = 1 - square
            g[i] = g[i] * derivative


cdef double _pairwise_sum(const double* a, Py_ssize_t n) noexcept nogil:
    """NumPy's sum of a contiguous float64 vector (np.add.reduce), in its order: a running sum
    below 8 entries, eight interleaved running sums up to 128, halves above."""
    cdef double res, r0, r1, r2, r3, r4, r5, r6, r7
    cdef Py_ssize_t i, half
    if n < 8:
        res = 0.0
        for i in range(n):
            res = res + a[i]
        return res
    if n <= 128:
        r0, r1, r2, r3 = a[0], a[1], a[2], a[3]
        r4, r5, r6, r7 = a[4], a[5], a[6], a[7]
        i = 8
        while i < n - (n % 8):
            r0 = r0 + a[i]
            r1 = r1 + a[i + 1]
            r2 = r2 + a[i + 2]
            r3 = r3 + a[i + 3]
            r4 = r4 + a[i + 4]
            r5 = r5 + a[i + 5]
            r6 = r6 + a[i + 6]
            r7 = r7 + a[i + 7]
            i = i + 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            res = res + a[i]
            i = i + 1
        return res
    half = n // 2
    half = half - half % 8
    return _pairwise_sum(a, half) + _pairwise_sum(a + half, n - half)


def reward_scale_step(double[::1] returns not None, const double[::1] rewards not None,
                      const unsigned char[::1] dones not None,
                      const unsigned char[::1] real not None, double gamma,
                      long long count, double mean, double var, double eps, double clip_reward,
                      double[::1] scaled not None):
    """One step of RewardScaler.scale, as scale_reference computes it with NumPy:

        R      = R * gamma + r                    (returns, in place)
        merge the R of the real rows into (count, mean, var) as RunningMeanStd.update does:
            mean_b = sum(R_real) / n_b, var_b = sum((R_real - mean_b)^2) / n_b   (NumPy's sums)
            delta  = mean_b - mean
            M2     = var * count + var_b * n_b + delta * delta * count * n_b / (count + n_b)
            mean   = mean + delta * n_b / (count + n_b),  var = M2 / (count + n_b)
        R      = 0 where done
        scaled = clip(r / sqrt(var + eps), -clip_reward, clip_reward)

    Returns the new (count, mean, var); no real row leaves them as they were.
    """
    cdef Py_ssize_t n = returns.shape[0], i, k = 0
    _check_length("rewards", rewards.shape[0], n)
    _check_length("dones", dones.shape[0], n)
    _check_length("real", real.shape[0], n)
    _check_length("scaled", scaled.shape[0], n)
    cdef double* picked = <double*>malloc(max(n, 1) * sizeof(double))
    if picked == NULL:
        raise MemoryError()
    cdef double mean_b, var_b, delta, m2, n_a, n_b, n_ab, x, scale
    with nogil:
        for i in range(n):
            returns[i] = returns[i] * gamma + rewards[i]
            if real[i]:
                picked[k] = returns[i]
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
            if dones[i]:
                returns[i] = 0.0
        scale = sqrt(var + eps)
        for i in range(n):
            x = rewards[i] / scale
            # np.clip's order: the upper bound over the lower one's max; a NaN stays NaN
            if not (x != x):
                if x < -clip_reward:
                    x = -clip_reward
                if x > clip_reward:
                    x = clip_reward
            scaled[i] = x
    free(picked)
    return count, mean, var
