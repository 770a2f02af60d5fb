"""Compiled kernels for the two backward recurrences of policy-gradient methods.

Shapes: every array is (T, N), time first, environments second, C-contiguous. Rewards, values
and next_values share one floating dtype (float32 or float64); terminated and truncated are
uint8 (0/1; a bool array viewed as uint8). The output array is allocated by the caller.

These functions trust minipg.returns to have validated dtypes, finiteness and gamma/lam; they
still check shapes themselves (raising ValueError, never asserting) because reading past the end
of a buffer is the one mistake that would crash the interpreter instead of raising.

One recurrence, two instances. Both quantities obey x_t = b_t + c_t x_{t+1}, with x_T = 0:

    GAE:           b_t = delta_t = r_t + gamma (1 - term_t) nv_t - v_t    c_t = gamma lam (1 - done_t)
    reward-to-go:  b_t = r_t + gamma boot_t nv_t                          c_t = gamma (1 - done_t)

where done_t = term_t or trunc_t, and boot_t = (1 - term_t) (done_t or t == T-1). The flags enter
as multiplications by 0 or 1, as in the equations, not as branches: that is what lets the
compiler turn the inner loops into SIMD code. Under IEEE arithmetic 0 * NaN is NaN, so with
check_finite=False a NaN can spread past an episode boundary; the NumPy reference does the same.

Two builds. setup.py compiles this file twice on x86-64: minipg._kernels for any x86-64 CPU
(SSE2) and minipg._kernels_avx2 with AVX2 and FMA, which minipg.returns uses when the CPU has
them. The code is the same; only GROUP_ORDER_MAX_N differs (the tables that chose it are in
benchmarks/README.md), and with FMA the compiler fuses some multiply-adds, so the two builds
agree to rounding, not bit for bit.

Loop order. The recurrence runs backwards in time and is independent across environments.
- Row order (t outer, backwards; n inner), for every N the two orders below do not take. The
  inner loop runs over one row of every array and the compiler vectorises it; x_{t+1} is the
  row just written, still in cache. Each row is walked in chunks of ROW_CHUNK_BYTES, top chunk first, so that the memory
  system sees every array read in one downward sweep. The hardware prefetcher follows a monotone
  stream; it does not follow "up one row, jump back two rows", which is what a plain ascending
  inner loop produces, and which costs 1.3-4.5x once a rollout no longer fits in the cache.
- Group order, for GROUP <= N <= GROUP_ORDER_MAX_N (15, or 31 in the AVX2 build): rows of 8 to
  31 elements are too short for row order, whose every row waits for the row below it to be
  stored and loaded again (a chain through memory of about 5 ns per row, whatever N is). Group order keeps x_{t+1} of GROUP = 8
  environments in registers and walks them down the whole block of rows, then takes the next 8
  (the last group overlaps the one before it when GROUP does not divide N: it recomputes the
  same numbers). It runs in two passes over a block of rows: first the coefficients b_t and c_t
  of every element into a small scratch buffer (a flat loop, no recurrence, which the compiler
  vectorises whatever N is), then x_t = b_t + c_t x_{t+1} on floating-point numbers only, which
  it vectorises across the group.
- Column order (n outer, t inner), for N <= COLUMN_ORDER_MAX_N: one scalar recursion per column.
  A row of one to four elements gives the vector loop nothing to do. A scalar recursion is bound
  by latency, since each x_t waits for the multiply and the add of x_{t+1}; substituting the
  recurrence into itself,
      x_t = (b_t + c_t b_{t+1}) + (c_t c_{t+1}) x_{t+2},
  leaves one multiply and one add on the chain per two steps, and the rest overlaps with it
  (1.5x faster). This reassociates the sums: results agree with the reference to rounding, not
  bit for bit. Rows are taken in blocks of COLUMN_BLOCK_ROWS so that the N passes over a block
  hit the cache and memory is swept once.
- Threads: opt-in (num_threads > 1), over blocks of environments, with OpenMP's prange. Off by
  default: on the 2-core machine two threads gained at most 1.7x, only on in-cache rollouts
  with N >= 1024 (a few tens of microseconds), were 1.5-6x slower on rollouts larger than the
  cache, and up to 100x slower when another process held the second core (a descheduled
  thread stalls the whole loop at its barrier). Without OpenMP prange is an ordinary loop.
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
    #if defined(__AVX2__) && defined(__FMA__)
    static const int MINIPG_AVX2 = 1;
    #else
    static const int MINIPG_AVX2 = 0;
    #endif
    /* Whether this CPU (and the operating system) can run AVX2 and FMA instructions. */
    static int minipg_cpu_has_avx2_fma(void) {
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    #else
        return 0;
    #endif
    }
    """
    const int MINIPG_OPENMP
    const int MINIPG_AVX2
    int minipg_cpu_has_avx2_fma() nogil

# Tuning, measured with best-of-k timings on the 2-core development machine (ns per element;
# the tables are in benchmarks/README.md).
# - Column order wins up to N = 4 for rollouts that fit in the cache (GAE float64, T*N = 64k:
#   N=2 1.0 vs 1.9 in row order, N=4 1.04 vs 1.26, N=6 1.26 vs 1.26, N=8 2.2 vs 1.1). For float64
#   rollouts larger than the cache rows win from N = 3 (N=4: 1.5-1.9 vs 1.3-1.4), but rollouts
#   with N <= 4 and more than 250k steps are rare; in-cache is the common case.
cdef Py_ssize_t COLUMN_ORDER_MAX_N = 4
# 4096 rows x 4 environments x 34 bytes = 560 kB: a block stays in the 2 MB L2 cache. Without
# blocks, column order at N = 4 and T*N = 1M-4M takes 2.5-3.4 ns instead of 1.5-1.9.
cdef Py_ssize_t COLUMN_BLOCK_ROWS = 4096
# Four cache lines. Same speed as whole rows in cache; outside it, GAE float64 (1024, 4096)
# 1.05 vs 1.4, (4096, 1024) 1.05 vs 2.2, (16384, 64) 0.85 vs 3.8. 512-byte chunks fall off a
# cliff (4 ns: long ascending runs train the prefetcher upwards); 128 bytes is a little slower.
cdef Py_ssize_t ROW_CHUNK_BYTES = 256
# Group order: GROUP environments advance together, from N = GROUP up to GROUP_ORDER_MAX_N.
# ns per element float32/float64, reward-to-go, T*N = 16k (benchmarks/README.md has the table):
#   baseline build  N = 8: rows 0.82/0.89, groups 0.49/0.63;  N = 16: rows 0.38/0.50, groups 0.46/0.62
#   AVX2 build      N = 8: rows 0.90/1.05, groups 0.30/0.44;  N = 31: rows 0.64/0.67, groups 0.28/0.46
#                   N = 32: rows 0.21/0.34, groups 0.25/0.42 (whole vectors again: rows win)
cdef enum:
    GROUP = 8
    COEFFICIENT_BLOCK = 1024     # elements of b and of c per pass: 16 kB of float64 scratch
cdef Py_ssize_t GROUP_ORDER_MAX_N = 31 if MINIPG_AVX2 else 15


# --------------------------------------------------------------------------------------------
# GAE:  delta_t = r_t + gamma (1 - term_t) nv_t - v_t,
#       A_t     = delta_t + gamma lam (1 - done_t) A_{t+1},   A_T = 0.
# --------------------------------------------------------------------------------------------

cdef inline void _gae_span(const floating* r, const floating* v, const floating* nv,
                           const unsigned char* term, const unsigned char* trunc, floating* out,
                           Py_ssize_t i, Py_ssize_t count, Py_ssize_t N,
                           floating gamma, floating gamma_lam) noexcept nogil:
    """A_t for `count` environments from flat index i = t * N + n on (t < T - 1): the loop the
    compiler vectorises. A_{t+1} of the same environment is N elements further on."""
    cdef Py_ssize_t k
    cdef const floating* A_next = out + i + N
    r += i; v += i; nv += i; term += i; trunc += i; out += i
    for k in range(count):
        out[k] = (r[k] + gamma * (1 - term[k]) * nv[k] - v[k]
                  + gamma_lam * (1 - (term[k] | trunc[k])) * A_next[k])


cdef void _gae_rows(const floating* r, const floating* v, const floating* nv,
                    const unsigned char* term, const unsigned char* trunc, floating* out,
                    Py_ssize_t T, Py_ssize_t N, Py_ssize_t n0, Py_ssize_t n1,
                    floating gamma, floating gamma_lam) noexcept nogil:
    """Environments [n0, n1) in row order: t backwards, each row in chunks, top chunk first."""
    cdef Py_ssize_t t, n, i, lo, hi
    cdef Py_ssize_t chunk = ROW_CHUNK_BYTES // sizeof(floating)
    for n in range(n0, n1):                        # A_T = 0, so A_{T-1} = delta_{T-1}
        i = (T - 1) * N + n
        out[i] = r[i] + gamma * (1 - term[i]) * nv[i] - v[i]
    if n1 - n0 <= chunk:                           # one chunk per row: no chunk loop, which
        for t in range(T - 2, -1, -1):             # measured 10-25% faster at N = 5 to 16
            _gae_span(r, v, nv, term, trunc, out, t * N + n0, n1 - n0, N, gamma, gamma_lam)
        return
    for t in range(T - 2, -1, -1):
        hi = n1
        while hi > n0:
            lo = max(n0, hi - chunk)
            _gae_span(r, v, nv, term, trunc, out, t * N + lo, hi - lo, N, gamma, gamma_lam)
            hi = lo


cdef void _gae_columns(const floating* r, const floating* v, const floating* nv,
                       const unsigned char* term, const unsigned char* trunc, floating* out,
                       Py_ssize_t T, Py_ssize_t N, floating gamma, floating gamma_lam) noexcept nogil:
    """One environment at a time, two time steps per iteration, in blocks of rows."""
    cdef Py_ssize_t t, n, i, j, lo, hi
    cdef floating A, delta0, delta1, c0, c1
    for n in range(N):                             # A_{T-1} = delta_{T-1}
        i = (T - 1) * N + n
        out[i] = r[i] + gamma * (1 - term[i]) * nv[i] - v[i]
    hi = T - 1                                     # rows hi and above are done
    while hi > 0:
        lo = max(0, hi - COLUMN_BLOCK_ROWS)
        for n in range(N):
            A = out[hi * N + n]                    # A_{t+1} for t = hi - 1
            t = hi - 1
            while t > lo:                          # rows t (flat index i) and t - 1 (j)
                i = t * N + n
                j = i - N
                delta1 = r[i] + gamma * (1 - term[i]) * nv[i] - v[i]
                c1 = gamma_lam * (1 - (term[i] | trunc[i]))
                delta0 = r[j] + gamma * (1 - term[j]) * nv[j] - v[j]
                c0 = gamma_lam * (1 - (term[j] | trunc[j]))
                out[i] = delta1 + c1 * A                        # A_t from A_{t+1}
                A = (delta0 + c0 * delta1) + (c0 * c1) * A      # A_{t-1} from A_{t+1}
                out[j] = A
                t -= 2
            if t == lo:                            # odd number of rows left: one more step
                i = t * N + n
                out[i] = (r[i] + gamma * (1 - term[i]) * nv[i] - v[i]
                          + gamma_lam * (1 - (term[i] | trunc[i])) * A)
        hi = lo


# --------------------------------------------------------------------------------------------
# Reward-to-go:  G_t = r_t + gamma ((1 - done_t) G_{t+1} + boot_t nv_t),   G_T = 0.
# At the last row the segment is cut, so boot_{T-1} = 1 - term; above it, boot_t = trunc_t (1 -
# term_t). nv == NULL stands for next_values=None: no bootstrap term at all.
# --------------------------------------------------------------------------------------------

cdef inline void _rtg_span(const floating* r, const floating* nv,
                           const unsigned char* term, const unsigned char* trunc, floating* out,
                           Py_ssize_t i, Py_ssize_t count, Py_ssize_t N,
                           floating gamma) noexcept nogil:
    """G_t for `count` environments from flat index i = t * N + n on (t < T - 1)."""
    cdef Py_ssize_t k
    cdef const floating* G_next = out + i + N
    r += i; term += i; trunc += i; out += i
    if nv != NULL:     # two loops, not a test per element: each of them vectorises
        nv += i
        # The casts keep the flag arithmetic in bytes, 16 to an SSE register, instead of the
        # 32-bit ints of C's promotion rules, 4 to a register: 10-20% faster in cache.
        for k in range(count):
            out[k] = r[k] + gamma * (<unsigned char>(1 - (term[k] | trunc[k])) * G_next[k]
                                     + <unsigned char>(trunc[k] & (1 - term[k])) * nv[k])
    else:
        for k in range(count):
            out[k] = r[k] + gamma * (1 - (term[k] | trunc[k])) * G_next[k]


cdef inline floating _rtg_last(const floating* r, const floating* nv, const unsigned char* term,
                               Py_ssize_t i, floating gamma) noexcept nogil:
    """G_{T-1} = r + gamma (1 - term) nv: the segment ends here, bootstrap unless terminal."""
    if nv == NULL:
        return r[i]
    return r[i] + gamma * (1 - term[i]) * nv[i]


cdef inline floating _rtg_b(const floating* r, const floating* nv, const unsigned char* term,
                            const unsigned char* trunc, Py_ssize_t i, floating gamma) noexcept nogil:
    """b_t = r_t + gamma trunc_t (1 - term_t) nv_t, for t < T - 1."""
    if nv == NULL:
        return r[i]
    return r[i] + gamma * (trunc[i] & (1 - term[i])) * nv[i]


cdef void _rtg_rows(const floating* r, const floating* nv,
                    const unsigned char* term, const unsigned char* trunc, floating* out,
                    Py_ssize_t T, Py_ssize_t N, Py_ssize_t n0, Py_ssize_t n1,
                    floating gamma) noexcept nogil:
    """Environments [n0, n1) in row order, as _gae_rows."""
    cdef Py_ssize_t t, n, lo, hi
    cdef Py_ssize_t chunk = ROW_CHUNK_BYTES // sizeof(floating)
    for n in range(n0, n1):
        out[(T - 1) * N + n] = _rtg_last(r, nv, term, (T - 1) * N + n, gamma)
    if n1 - n0 <= chunk:
        for t in range(T - 2, -1, -1):
            _rtg_span(r, nv, term, trunc, out, t * N + n0, n1 - n0, N, gamma)
        return
    for t in range(T - 2, -1, -1):
        hi = n1
        while hi > n0:
            lo = max(n0, hi - chunk)
            _rtg_span(r, nv, term, trunc, out, t * N + lo, hi - lo, N, gamma)
            hi = lo


cdef void _rtg_columns(const floating* r, const floating* nv,
                       const unsigned char* term, const unsigned char* trunc, floating* out,
                       Py_ssize_t T, Py_ssize_t N, floating gamma) noexcept nogil:
    """One environment at a time, two time steps per iteration, as _gae_columns."""
    cdef Py_ssize_t t, n, i, j, lo, hi
    cdef floating G, b0, b1, c0, c1
    for n in range(N):
        out[(T - 1) * N + n] = _rtg_last(r, nv, term, (T - 1) * N + n, gamma)
    hi = T - 1
    while hi > 0:
        lo = max(0, hi - COLUMN_BLOCK_ROWS)
        for n in range(N):
            G = out[hi * N + n]
            t = hi - 1
            while t > lo:
                i = t * N + n
                j = i - N
                b1 = _rtg_b(r, nv, term, trunc, i, gamma)
                c1 = gamma * (1 - (term[i] | trunc[i]))
                b0 = _rtg_b(r, nv, term, trunc, j, gamma)
                c0 = gamma * (1 - (term[j] | trunc[j]))
                out[i] = b1 + c1 * G
                G = (b0 + c0 * b1) + (c0 * c1) * G
                out[j] = G
                t -= 2
            if t == lo:
                i = t * N + n
                out[i] = (_rtg_b(r, nv, term, trunc, i, gamma)
                          + gamma * (1 - (term[i] | trunc[i])) * G)
        hi = lo


# --------------------------------------------------------------------------------------------
# Group order, one recurrence for both: x_t = b_t + c_t x_{t+1}. A block of rows at a time, from
# the bottom: the coefficients b_t, c_t of every element first (GAE: b = delta, c = gamma lam
# (1 - done); reward-to-go: b = r + gamma boot nv, c = gamma (1 - done)), then the recurrence.
# --------------------------------------------------------------------------------------------

cdef inline void _recurrence_group(const floating* b, const floating* c, floating* x,
                                   Py_ssize_t rows, Py_ssize_t N, bint below_is_zero) noexcept nogil:
    """x_t = b_t + c_t x_{t+1} for t = rows - 1 down to 0, for the GROUP environments whose row 0
    starts at b, c and x (row stride N). x_rows is row `rows` of x, or 0 below the last row."""
    cdef floating carry[GROUP]           # x_{t+1}: constant size, so it lives in registers
    cdef Py_ssize_t t, k
    for k in range(GROUP):
        carry[k] = 0 if below_is_zero else x[rows * N + k]
    for t in range(rows - 1, -1, -1):
        for k in range(GROUP):
            carry[k] = b[t * N + k] + c[t * N + k] * carry[k]
        for k in range(GROUP):           # all loads before any store: x might alias b or c as
            x[t * N + k] = carry[k]      # far as the compiler knows, and this lets it vectorise


cdef void _recurrence_groups(const floating* b, const floating* c, floating* x,
                             Py_ssize_t rows, Py_ssize_t N, bint below_is_zero) noexcept nogil:
    """All N >= GROUP environments of a block, GROUP at a time. When GROUP does not divide N the
    last group is the last GROUP environments: it overlaps the group before and recomputes the
    same numbers, which is cheaper than a second code path for the remainder."""
    cdef Py_ssize_t n, n0 = 0
    while n0 < N:
        n = min(n0, N - GROUP)
        _recurrence_group(b + n, c + n, x + n, rows, N, below_is_zero)
        n0 += GROUP


cdef void _gae_groups(const floating* r, const floating* v, const floating* nv,
                      const unsigned char* term, const unsigned char* trunc, floating* out,
                      Py_ssize_t T, Py_ssize_t N, floating gamma, floating gamma_lam) noexcept nogil:
    """GAE in group order: b_t = delta_t, c_t = gamma lam (1 - done_t)."""
    cdef floating b[COEFFICIENT_BLOCK]
    cdef floating c[COEFFICIENT_BLOCK]
    cdef Py_ssize_t k, lo, i0, count, hi = T
    while hi > 0:
        lo = max(0, hi - COEFFICIENT_BLOCK // N)
        i0 = lo * N
        count = (hi - lo) * N
        for k in range(count):
            b[k] = r[i0 + k] + gamma * (1 - term[i0 + k]) * nv[i0 + k] - v[i0 + k]
            c[k] = gamma_lam * (1 - (term[i0 + k] | trunc[i0 + k]))
        _recurrence_groups(b, c, out + i0, hi - lo, N, hi == T)
        hi = lo


cdef void _rtg_groups(const floating* r, const floating* nv,
                      const unsigned char* term, const unsigned char* trunc, floating* out,
                      Py_ssize_t T, Py_ssize_t N, floating gamma) noexcept nogil:
    """Reward-to-go in group order: b_t = r_t + gamma boot_t nv_t, c_t = gamma (1 - done_t)."""
    cdef floating b[COEFFICIENT_BLOCK]
    cdef floating c[COEFFICIENT_BLOCK]
    cdef Py_ssize_t k, n, lo, i0, count, hi = T
    while hi > 0:
        lo = max(0, hi - COEFFICIENT_BLOCK // N)
        i0 = lo * N
        count = (hi - lo) * N
        for k in range(count):
            b[k] = _rtg_b(r, nv, term, trunc, i0 + k, gamma)
            c[k] = gamma * (1 - (term[i0 + k] | trunc[i0 + k]))
        if hi == T:                      # the last row of the rollout: boot = 1 - term
            for n in range(N):
                b[count - N + n] = _rtg_last(r, nv, term, (T - 1) * N + n, gamma)
        _recurrence_groups(b, c, out + i0, hi - lo, N, hi == T)
        hi = lo


# --------------------------------------------------------------------------------------------
# Entry points: check shapes, pick the loop order, release the GIL.
# --------------------------------------------------------------------------------------------

cdef inline int _check_shape(object name, Py_ssize_t T, Py_ssize_t N, Py_ssize_t t2, Py_ssize_t n2) except -1:
    if t2 != T or n2 != N:
        raise ValueError(f"{name} has shape ({t2}, {n2}) but rewards has shape ({T}, {N})")
    return 0


cdef inline Py_ssize_t _thread_block(Py_ssize_t N, int num_threads, Py_ssize_t chunk) except -1:
    """Environments per thread: N split num_threads ways, rounded up to whole chunks."""
    if not 1 <= num_threads <= 256:    # OpenMP aborts the process if it cannot start a thread
        raise ValueError(f"num_threads must be between 1 and 256, got {num_threads}")
    cdef Py_ssize_t block = (N + num_threads - 1) // num_threads
    return (block + chunk - 1) // chunk * chunk


def gae(const floating[:, ::1] rewards not None, const floating[:, ::1] values not None,
        const floating[:, ::1] next_values not None, const unsigned char[:, ::1] terminated not None,
        const unsigned char[:, ::1] truncated not None, double gamma, double lam,
        floating[:, ::1] out not None, int num_threads=1):
    """Fill out (T, N) with GAE advantages. See minipg.returns.gae for the contract.

    num_threads > 1 splits the environments between OpenMP threads (row order only).
    """
    cdef Py_ssize_t T = rewards.shape[0], N = rewards.shape[1]
    _check_shape("values", T, N, values.shape[0], values.shape[1])
    _check_shape("next_values", T, N, next_values.shape[0], next_values.shape[1])
    _check_shape("terminated", T, N, terminated.shape[0], terminated.shape[1])
    _check_shape("truncated", T, N, truncated.shape[0], truncated.shape[1])
    _check_shape("out", T, N, out.shape[0], out.shape[1])
    cdef Py_ssize_t b, block = _thread_block(N, num_threads, ROW_CHUNK_BYTES // sizeof(floating))
    if T == 0 or N == 0:
        return
    cdef floating g = <floating>gamma, gl = <floating>(gamma * lam)
    cdef const floating* r = &rewards[0, 0]
    cdef const floating* v = &values[0, 0]
    cdef const floating* nv = &next_values[0, 0]
    cdef const unsigned char* te = &terminated[0, 0]
    cdef const unsigned char* tr = &truncated[0, 0]
    cdef floating* o = &out[0, 0]
    with nogil:
        if N <= COLUMN_ORDER_MAX_N:
            _gae_columns(r, v, nv, te, tr, o, T, N, g, gl)
        elif GROUP <= N <= GROUP_ORDER_MAX_N:
            _gae_groups(r, v, nv, te, tr, o, T, N, g, gl)
        elif num_threads > 1 and block < N:
            for b in prange((N + block - 1) // block, num_threads=num_threads, schedule="static"):
                _gae_rows(r, v, nv, te, tr, o, T, N, b * block, min(N, (b + 1) * block), g, gl)
        else:
            _gae_rows(r, v, nv, te, tr, o, T, N, 0, N, g, gl)


def reward_to_go(const floating[:, ::1] rewards not None, const floating[:, ::1] next_values not None,
                 bint has_next_values, const unsigned char[:, ::1] terminated not None,
                 const unsigned char[:, ::1] truncated not None, double gamma, floating[:, ::1] out not None,
                 int num_threads=1):
    """Fill out (T, N) with discounted reward-to-go. See minipg.returns.reward_to_go.

    When has_next_values is False, next_values is never read (pass rewards as a placeholder).
    num_threads > 1 splits the environments between OpenMP threads (row order only).
    """
    cdef Py_ssize_t T = rewards.shape[0], N = rewards.shape[1]
    if has_next_values:
        _check_shape("next_values", T, N, next_values.shape[0], next_values.shape[1])
    _check_shape("terminated", T, N, terminated.shape[0], terminated.shape[1])
    _check_shape("truncated", T, N, truncated.shape[0], truncated.shape[1])
    _check_shape("out", T, N, out.shape[0], out.shape[1])
    cdef Py_ssize_t b, block = _thread_block(N, num_threads, ROW_CHUNK_BYTES // sizeof(floating))
    if T == 0 or N == 0:
        return
    cdef floating g = <floating>gamma
    cdef const floating* r = &rewards[0, 0]
    cdef const floating* nv = &next_values[0, 0] if has_next_values else NULL
    cdef const unsigned char* te = &terminated[0, 0]
    cdef const unsigned char* tr = &truncated[0, 0]
    cdef floating* o = &out[0, 0]
    with nogil:
        if N <= COLUMN_ORDER_MAX_N:
            _rtg_columns(r, nv, te, tr, o, T, N, g)
        elif GROUP <= N <= GROUP_ORDER_MAX_N:
            _rtg_groups(r, nv, te, tr, o, T, N, g)
        elif num_threads > 1 and block < N:
            for b in prange((N + block - 1) // block, num_threads=num_threads, schedule="static"):
                _rtg_rows(r, nv, te, tr, o, T, N, b * block, min(N, (b + 1) * block), g)
        else:
            _rtg_rows(r, nv, te, tr, o, T, N, 0, N, g)


def openmp_enabled():
    """True when the extension was compiled with OpenMP (num_threads > 1 can use threads)."""
    return bool(MINIPG_OPENMP)


def instruction_set():
    """"avx2" when this module was compiled with AVX2 and FMA enabled, else "baseline"."""
    return "avx2" if MINIPG_AVX2 else "baseline"


def cpu_has_avx2():
    """True when the CPU and the operating system can run AVX2 and FMA instructions."""
    return bool(minipg_cpu_has_avx2_fma())
