"""Compiled kernels for the two backward recurrences of policy-gradient methods.

Shapes: every array is (T, N), time first, environments second, C-contiguous. Rewards, values
and next_values share one floating dtype (float32 or float64); terminated and truncated are
uint8 (0/1; a bool array viewed as uint8). The output array is allocated by the caller.

These functions trust minipg.returns to have validated dtypes, finiteness and gamma/lam; they
still check shapes themselves (raising ValueError, never asserting) because reading past the end
of a buffer is the one mistake that would crash the interpreter instead of raising.

Loop order. Both recurrences run backwards in time and are independent across environments.
- N large: t outer (backwards), n inner. The inner loop streams one contiguous row and the
  compiler vectorises it; the carry A_{t+1} is simply the row just written (still in cache).
- N small (below COLUMN_ORDER_MAX_N): n outer, t inner, one scalar recursion per column. A row of
  one or two elements gives the vector loop nothing to do, and its per-row overhead dominates.
- N very large: blocks of columns are handed to OpenMP threads (prange); each thread runs the
  t-outer loop on its own block. Without OpenMP, prange is an ordinary loop.
"""
from cython cimport floating
from cython.parallel cimport prange

cdef extern from *:
    """
    #ifdef _OPENMP
    static const int MINIPG_OPENMP = 1;
    #else
    static const int MINIPG_OPENMP = 0;
    #endif
    """
    const int MINIPG_OPENMP

# Measured in benchmarks/bench_returns.py: at or below this many environments the per-column
# scalar recursion beats the vectorised row loop.
cdef Py_ssize_t COLUMN_ORDER_MAX_N = 4
# Threads only pay for themselves when each one gets a long stretch of contiguous columns and
# enough total work to hide the start-up cost (a few microseconds).
cdef Py_ssize_t PARALLEL_MIN_N = 512
cdef Py_ssize_t PARALLEL_MIN_ELEMENTS = 1 << 20
cdef Py_ssize_t PARALLEL_BLOCK = 256


cdef void _gae_block(const floating* r, const floating* v, const floating* nv,
                     const unsigned char* term, const unsigned char* trunc, floating* out,
                     Py_ssize_t T, Py_ssize_t N, Py_ssize_t n0, Py_ssize_t n1,
                     floating gamma, floating gamma_lam, bint column_order) noexcept nogil:
    """delta_t = r_t + gamma (1 - term_t) nv_t - v_t;  A_t = delta_t + gamma lam (1 - done_t) A_{t+1}."""
    cdef Py_ssize_t t, n, i
    cdef floating a, delta
    cdef unsigned char done
    if column_order:
        for n in range(n0, n1):
            a = 0
            for t in range(T - 1, -1, -1):
                i = t * N + n
                done = term[i] | trunc[i]
                delta = r[i] + gamma * (1 - term[i]) * nv[i] - v[i]
                a = delta + gamma_lam * (1 - done) * a
                out[i] = a
        return
    # Last row: A_T = 0, so A_{T-1} = delta_{T-1}.
    t = T - 1
    for n in range(n0, n1):
        i = t * N + n
        out[i] = r[i] + gamma * (1 - term[i]) * nv[i] - v[i]
    for t in range(T - 2, -1, -1):
        for n in range(n0, n1):
            i = t * N + n
            done = term[i] | trunc[i]
            out[i] = (r[i] + gamma * (1 - term[i]) * nv[i] - v[i]
                      + gamma_lam * (1 - done) * out[i + N])


cdef void _rtg_block(const floating* r, const floating* nv, bint has_nv,
                     const unsigned char* term, const unsigned char* trunc, floating* out,
                     Py_ssize_t T, Py_ssize_t N, Py_ssize_t n0, Py_ssize_t n1,
                     floating gamma, bint column_order) noexcept nogil:
    """G_t = r_t + gamma ((1 - done_t) G_{t+1} + boot_t nv_t),  boot_t = (1 - term_t)(done_t or t = T-1)."""
    cdef Py_ssize_t t, n, i
    cdef floating g, boot
    cdef unsigned char done
    if column_order:
        for n in range(n0, n1):
            g = 0
            for t in range(T - 1, -1, -1):
                i = t * N + n
                done = term[i] | trunc[i]
                # At the last row G_T = 0, and the segment is cut there: bootstrap unless terminal.
                if t == T - 1:
                    done = 1
                g = (1 - done) * g
                if has_nv:
                    g = g + done * (1 - term[i]) * nv[i]
                g = r[i] + gamma * g
                out[i] = g
        return
    t = T - 1
    for n in range(n0, n1):
        i = t * N + n
        if has_nv:
            out[i] = r[i] + gamma * (1 - term[i]) * nv[i]
        else:
            out[i] = r[i]
    for t in range(T - 2, -1, -1):
        if has_nv:
            for n in range(n0, n1):
                i = t * N + n
                done = term[i] | trunc[i]
                boot = done * (1 - term[i])
                out[i] = r[i] + gamma * ((1 - done) * out[i + N] + boot * nv[i])
        else:
            for n in range(n0, n1):
                i = t * N + n
                done = term[i] | trunc[i]
                out[i] = r[i] + gamma * (1 - done) * out[i + N]


cdef inline int _check_shape(object name, Py_ssize_t T, Py_ssize_t N, Py_ssize_t t2, Py_ssize_t n2) except -1:
    if t2 != T or n2 != N:
        raise ValueError(f"{name} has shape ({t2}, {n2}) but rewards has shape ({T}, {N})")
    return 0


def gae(const floating[:, ::1] rewards, const floating[:, ::1] values,
        const floating[:, ::1] next_values, const unsigned char[:, ::1] terminated,
        const unsigned char[:, ::1] truncated, double gamma, double lam,
        floating[:, ::1] out):
    """Fill out (T, N) with GAE advantages. See minipg.returns.gae for the contract."""
    cdef Py_ssize_t T = rewards.shape[0], N = rewards.shape[1]
    _check_shape("values", T, N, values.shape[0], values.shape[1])
    _check_shape("next_values", T, N, next_values.shape[0], next_values.shape[1])
    _check_shape("terminated", T, N, terminated.shape[0], terminated.shape[1])
    _check_shape("truncated", T, N, truncated.shape[0], truncated.shape[1])
    _check_shape("out", T, N, out.shape[0], out.shape[1])
    if T == 0 or N == 0:
        return
    cdef floating g = <floating>gamma, gl = <floating>(gamma * lam)
    cdef const floating* r = &rewards[0, 0]
    cdef const floating* v = &values[0, 0]
    cdef const floating* nv = &next_values[0, 0]
    cdef const unsigned char* te = &terminated[0, 0]
    cdef const unsigned char* tr = &truncated[0, 0]
    cdef floating* o = &out[0, 0]
    cdef Py_ssize_t b, nblocks, n0, n1
    with nogil:
        if N >= PARALLEL_MIN_N and T * N >= PARALLEL_MIN_ELEMENTS:
            nblocks = (N + PARALLEL_BLOCK - 1) // PARALLEL_BLOCK
            for b in prange(nblocks, schedule="static"):
                n0 = b * PARALLEL_BLOCK
                n1 = min(N, n0 + PARALLEL_BLOCK)
                _gae_block(r, v, nv, te, tr, o, T, N, n0, n1, g, gl, False)
        else:
            _gae_block(r, v, nv, te, tr, o, T, N, 0, N, g, gl, N <= COLUMN_ORDER_MAX_N)


def reward_to_go(const floating[:, ::1] rewards, const floating[:, ::1] next_values,
                 bint has_next_values, const unsigned char[:, ::1] terminated,
                 const unsigned char[:, ::1] truncated, double gamma, floating[:, ::1] out):
    """Fill out (T, N) with discounted reward-to-go. See minipg.returns.reward_to_go.

    When has_next_values is False, next_values is never read (pass rewards as a placeholder).
    """
    cdef Py_ssize_t T = rewards.shape[0], N = rewards.shape[1]
    if has_next_values:
        _check_shape("next_values", T, N, next_values.shape[0], next_values.shape[1])
    _check_shape("terminated", T, N, terminated.shape[0], terminated.shape[1])
    _check_shape("truncated", T, N, truncated.shape[0], truncated.shape[1])
    _check_shape("out", T, N, out.shape[0], out.shape[1])
    if T == 0 or N == 0:
        return
    cdef floating g = <floating>gamma
    cdef const floating* r = &rewards[0, 0]
    cdef const floating* nv = &next_values[0, 0]
    cdef const unsigned char* te = &terminated[0, 0]
    cdef const unsigned char* tr = &truncated[0, 0]
    cdef floating* o = &out[0, 0]
    cdef bint has_nv = has_next_values
    cdef Py_ssize_t b, nblocks, n0, n1
    with nogil:
        if N >= PARALLEL_MIN_N and T * N >= PARALLEL_MIN_ELEMENTS:
            nblocks = (N + PARALLEL_BLOCK - 1) // PARALLEL_BLOCK
            for b in prange(nblocks, schedule="static"):
                n0 = b * PARALLEL_BLOCK
                n1 = min(N, n0 + PARALLEL_BLOCK)
                _rtg_block(r, nv, has_nv, te, tr, o, T, N, n0, n1, g, False)
        else:
            _rtg_block(r, nv, has_nv, te, tr, o, T, N, 0, N, g, N <= COLUMN_ORDER_MAX_N)


def openmp_enabled():
    """True when the extension was compiled with OpenMP (threads over blocks of environments)."""
    return bool(MINIPG_OPENMP)
