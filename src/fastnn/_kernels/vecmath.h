/* Single-precision exp, expm1, log1p and tanh that a compiler can vectorize.
 *
 * libm's expf, tanhf and log1pf are opaque calls, so a loop that uses them
 * runs one element at a time (and libm's tanhf costs ~18 ns an element here).
 * These are straight-line inline code: range reduction, a minimax polynomial
 * and selects instead of branches, so gcc turns an activation loop that calls
 * them into SIMD code. Each is within 2 ulp of the correctly rounded result
 * over the float range (checked against float64 libm in
 * tests/kernels/test_activations.py); NaN propagates and overflow gives inf,
 * as libm does, but exp flushes results below the smallest normal float to 0.
 *
 * The polynomials are Cephes' single-precision ones (S. L. Moshier, "Methods
 * and Programs for Mathematical Functions", 1989): expf, logf and tanhf.
 * float64 keeps libm: its loops are not among the vectorized ones.
 */
#ifndef FASTNN_VECMATH_H
#define FASTNN_VECMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Inlined even where the compiler's cost model would not: a call left in a
 * loop keeps the whole loop scalar. */
#if defined(__GNUC__) || defined(__clang__)
#define FNN_INLINE static inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define FNN_INLINE static __forceinline
#else
#define FNN_INLINE static inline
#endif

FNN_INLINE float fnn_bits_to_float(int32_t i) {
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}

FNN_INLINE int32_t fnn_float_to_bits(float f) {
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i;
}

/* exp(hi + lo) = 2^n exp(r), n = round((hi + lo) / ln 2), |r| <= ln(2) / 2.
 * hi - n ln2_hi is exact (ln2_hi has 9 significant bits), so an argument
 * given as an unevaluated sum keeps the precision of both parts. */
FNN_INLINE float fnn_expf_hl(float hi, float lo) {
    float x = hi + lo;
    /* Outside [-104, 89] the result is 0 or inf anyway; clamping keeps n in
     * int range. NaN fails both comparisons and is passed through below. */
    int low = x < -104.0f, high = x > 89.0f;
    hi = low ? -104.0f : (high ? 89.0f : hi);
    lo = (low || high) ? 0.0f : lo;
    float xc = hi + lo;
    /* round to nearest by the 1.5 * 2^23 trick (SSE2 has no roundps) */
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    /* ln 2 = 0.693359375 - 2.12194440e-4 */
    float r = ((hi - n * 0.693359375f) + lo) + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    /* 2^n as two normal factors, so that n in [-150, 129] neither wraps the
     * exponent field nor loses the subnormal results */
    int32_t ni = (int32_t) n;
    int32_t n1 = ni / 2;
    int32_t n2 = ni - n1;
    float y = p * fnn_bits_to_float((n1 + 127) << 23)
                * fnn_bits_to_float((n2 + 127) << 23);
    /* Flush to zero below the smallest normal (x < -87.34): a subnormal
     * softmax probability spreads through the backward GEMMs, where every
     * subnormal operand costs a microcode assist (5x slower epochs seen). */
    y = y < 1.17549435e-38f ? 0.0f : y;
    return x != x ? x : y;
}

FNN_INLINE float fnn_expf(float x) {
    return fnn_expf_hl(x, 0.0f);
}

/* exp(x) - 1: a Taylor polynomial for |x| < 0.5 (no cancellation), else
 * exp(x) - 1, whose cancellation costs nothing there. */
FNN_INLINE float fnn_expm1f(float x) {
    float big = fnn_expf(x) - 1.0f;
    /* sum x^k / k!, k = 1..9: truncation error < 0.5^10 / 10! ~ 3e-10 */
    float p = 2.7557319224e-6f;
    p = p * x + 2.4801587302e-5f;
    p = p * x + 1.9841269841e-4f;
    p = p * x + 1.3888888889e-3f;
    p = p * x + 8.3333333333e-3f;
    p = p * x + 4.1666666667e-2f;
    p = p * x + 1.6666666667e-1f;
    p = p * x + 0.5f;
    float small = (p * x) * x + x;
    float ax = x < 0 ? -x : x;
    float y = ax < 0.5f ? small : big;
    return x == 0.0f ? x : y;  /* keeps the sign of -0 */
}

/* log(w) for w >= 1 (finite): w = 2^e m, m in [sqrt(1/2), sqrt(2)). */
FNN_INLINE float fnn_log_ge1(float w) {
    int32_t bits = fnn_float_to_bits(w);
    int32_t e = ((bits >> 23) & 0xff) - 127;
    float m = fnn_bits_to_float((bits & 0x007fffff) | 0x3f800000);  /* [1, 2) */
    int big = m > 1.41421356237f;
    m = big ? 0.5f * m : m;
    e = big ? e + 1 : e;
    float x = m - 1.0f;
    float z = x * x;
    float p = 7.0376836292e-2f;
    p = p * x - 1.1514610310e-1f;
    p = p * x + 1.1676998740e-1f;
    p = p * x - 1.2420140846e-1f;
    p = p * x + 1.4249322787e-1f;
    p = p * x - 1.6668057665e-1f;
    p = p * x + 2.0000714765e-1f;
    p = p * x - 2.4999993993e-1f;
    p = p * x + 3.3333331174e-1f;
    float fe = (float) e;
    float y = x * z * p;
    y = y + fe * -2.12194440e-4f;
    y = y - 0.5f * z;
    return x + y + fe * 0.693359375f;
}

/* log(1 + u) for u >= 0, exact for tiny u: log(w) u / (w - 1) with w = 1 + u
 * corrects the rounding of w (Goldberg, "What every computer scientist should
 * know about floating-point arithmetic", 1991, theorem 4). */
FNN_INLINE float fnn_log1pf(float u) {
    float w = 1.0f + u;
    float d = w - 1.0f;
    float y = fnn_log_ge1(w);
    float q = d == 0.0f ? 1.0f : d;
    y = d == 0.0f ? u : y * (u / q);
    y = w == INFINITY ? w : y;
    return u != u ? u : y;
}

/* tanh(x): an odd polynomial for |x| < 0.625, else 1 - 2 / (exp(2|x|) + 1)
 * with the sign of x; tanh saturates to +-1 where exp overflows. */
FNN_INLINE float fnn_tanhf(float x) {
    float ax = x < 0 ? -x : x;
    float z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    float small = p * z * x + x;
    float t = 1.0f - 2.0f / (fnn_expf(2.0f * ax) + 1.0f);
    float big = x < 0 ? -t : t;
    float y = ax < 0.625f ? small : big;
    return x == 0.0f ? x : y;  /* keeps the sign of -0 */
}

/* The standard normal CDF Phi(z) and density phi(z).
 *
 * |z| < 0.7: Phi = 1/2 + z A(z^2). Otherwise Q = Phi(-|z|) =
 * t exp(-z^2 / 2 + h(t)) with t = 1 / (1 + |z| / sqrt 8), and Phi = Q or 1 - Q
 * by the sign of z. A (degree 5) and h (degree 9, in t - 0.48) are
 * least-squares fits on Chebyshev nodes to scipy.special's ndtr and log_ndtr,
 * made for fastnn: relative error of the fits < 1e-8, of this float code
 * within 6 ulp of Phi (see tests/kernels/test_activations.py). -z^2 / 2 is
 * carried as an exact hi part and a small lo part, since a float z^2 alone
 * would be off by up to z^2 * 2^-24 in the exponent. */
typedef struct { float cdf, pdf; } fnn_normal;

FNN_INLINE fnn_normal fnn_normalf(float z) {
    float az = z < 0 ? -z : z;
    float s = z * z;
    float pa = -8.539504610e-06f;
    pa = pa * s + 1.149602649e-04f;
    pa = pa * s - 1.187214349e-03f;
    pa = pa * s + 9.973545022e-03f;
    pa = pa * s - 6.649037965e-02f;
    pa = pa * s + 3.989422804e-01f;
    float small = 0.5f + z * pa;
    float t = 1.0f / (1.0f + 0.35355339f * az);
    float u = t - 0.48f;
    float h = 2.554359345e-01f;
    h = h * u - 9.704816991e-02f;
    h = h * u - 2.793617576e-01f;
    h = h * u + 1.534749262e-01f;
    h = h * u + 2.659487759e-01f;
    h = h * u - 1.854242818e-01f;
    h = h * u - 3.614096277e-01f;
    h = h * u + 2.114814720e-01f;
    h = h * u + 1.337266569e+00f;
    h = h * u - 1.391768283e+00f;
    /* -z^2 / 2 = a + b: zh keeps the top 12 bits of |z|, so zh^2 is exact */
    float zh = fnn_bits_to_float(fnn_float_to_bits(az) & (int32_t) 0xfffff000);
    float zl = az - zh;
    float a = -0.5f * (zh * zh);
    float b = -0.5f * (zl * (az + zh));
    float q = t * fnn_expf_hl(a, b + h);
    float big = z > 0 ? 1.0f - q : q;
    float y = az < 0.7f ? small : big;
    float pdf = 0.398942280f * fnn_expf_hl(a, b);  /* exp(-z^2 / 2) / sqrt(2 pi) */
    /* Beyond |z| = 15 (Phi(-15) ~ 4e-51, 0 in float) the split of z^2 would
     * meet inf - inf; the limits are selected instead. (A clamp of z before
     * the arithmetic would be simpler, but it stops gcc 12 vectorizing.) */
    int far = az > 15.0f;
    fnn_normal r;
    r.cdf = z != z ? z : (far ? (z > 0 ? 1.0f : 0.0f) : y);
    r.pdf = far ? 0.0f : pdf;
    return r;
}

/* gelu(z) = z Phi(z) */
FNN_INLINE float fnn_geluf(float z) {
    return z * fnn_normalf(z).cdf;
}

/* gelu'(z) = Phi(z) + z phi(z) */
FNN_INLINE float fnn_gelu_gradf(float z) {
    fnn_normal r = fnn_normalf(z);
    return r.cdf + z * r.pdf;
}

#endif
