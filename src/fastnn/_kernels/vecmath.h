/* Single-precision exp, expm1, log1p and tanh that a compiler can vectorize.
 *
 * libm's expf, tanhf and log1pf are opaque calls, so a loop that uses them
 * runs one element at a time (and libm's tanhf costs ~18 ns an element here).
 * These are straight-line inline code: range reduction, a minimax polynomial
 * and selects instead of branches, so gcc turns an activation loop that calls
 * them into SIMD code. Each is within 2 ulp of the correctly rounded result
 * over the float range (checked against float64 libm in
 * tests/kernels/test_activations.py); NaN propagates, overflow gives inf and
 * underflow 0 or a subnormal, as libm does.
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

static inline float fnn_bits_to_float(int32_t i) {
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}

static inline int32_t fnn_float_to_bits(float f) {
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i;
}

/* exp(x) = 2^n exp(r), n = round(x / ln 2), |r| <= ln(2) / 2. */
static inline float fnn_expf(float x) {
    /* Outside [-104, 89] the result is 0 or inf anyway; clamping keeps n in
     * int range. NaN fails both comparisons and is passed through below. */
    float xc = x < -104.0f ? -104.0f : (x > 89.0f ? 89.0f : x);
    /* round to nearest by the 1.5 * 2^23 trick (SSE2 has no roundps) */
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693359375f + n * 2.12194440e-4f;  /* ln 2 in two parts */
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
    return x != x ? x : y;
}

/* exp(x) - 1: a Taylor polynomial for |x| < 0.5 (no cancellation), else
 * exp(x) - 1, whose cancellation costs nothing there. */
static inline float fnn_expm1f(float x) {
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
static inline float fnn_log_ge1(float w) {
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
static inline float fnn_log1pf(float u) {
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
static inline float fnn_tanhf(float x) {
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

#endif
