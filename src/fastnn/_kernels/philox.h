/* Philox4x64-10 and the exact transforms of its words into uniform and
 * normal numbers, for nogil kernels.
 *
 * The stream these primitives serve (key from the seed, counter from epoch,
 * step, layer and block, which word feeds which number) is defined in the
 * docstring of fastnn._kernels.random; fastnn.reference.random is its NumPy
 * twin, which computes the same bits.
 *
 * Philox4x64-10 is the counter-based generator of Salmon, Moraes, Dror and
 * Shaw, "Parallel random numbers: as easy as 1, 2, 3" (SC 2011), with the
 * constants of Random123 and of numpy.random.Philox: the block function of a
 * 256-bit counter and a 128-bit key gives four 64-bit words, and
 * np.random.Philox(key=k, counter=c - 1).random_raw(4) gives the same four
 * for counter c (NumPy increments its counter before each block); the tests
 * check this.
 *
 * Normals use only +, -, *, / and sqrt, which IEEE 754 rounds correctly
 * everywhere, so that C and NumPy compute them bit for bit. (libm's log, sin
 * and cos, and NumPy's SIMD versions of them, may differ in the last bit.)
 * log, sin and cos are therefore written out here: fdlibm's log and its sin
 * and cos kernels on [0, pi/4], as in musl (Sun Microsystems, 1993: "Permission
 * to use, copy, modify, and distribute this software is freely granted,
 * provided that this notice is preserved"), each within 1 ulp, and evaluated
 * in exactly the order written here (setup.py builds with -ffp-contract=off, so
 * no multiply-add is fused, and without -ffast-math, so nothing is
 * reassociated). The twin evaluates the same expressions in the same order.
 */
#ifndef FASTNN_PHILOX_H
#define FASTNN_PHILOX_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define FNN_PHILOX_INLINE static inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define FNN_PHILOX_INLINE static __forceinline
#include <intrin.h>
#else
#define FNN_PHILOX_INLINE static inline
#endif

#define FNN_PHILOX_M0 0xD2E7470EE14C6C93ULL
#define FNN_PHILOX_M1 0xCA5A826395121157ULL
#define FNN_PHILOX_W0 0x9E3779B97F4A7C15ULL /* golden ratio */
#define FNN_PHILOX_W1 0xBB67AE8584CAA73BULL /* sqrt(3) - 1 */
#define FNN_PHILOX_2M53 (1.0 / 9007199254740992.0) /* 2^-53, exact */
#define FNN_PHILOX_2M24F (1.0f / 16777216.0f)     /* 2^-24, exact */

/* The 128-bit product a b = hi 2^64 + lo, from four 32 x 32 -> 64-bit
 * products: the portable fallback, always compiled so that it can be tested. */
FNN_PHILOX_INLINE uint64_t fnn_mulhilo64_limbs(uint64_t a, uint64_t b,
                                               uint64_t *hi) {
    uint64_t al = a & 0xFFFFFFFFULL, ah = a >> 32;
    uint64_t bl = b & 0xFFFFFFFFULL, bh = b >> 32;
    uint64_t ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
    uint64_t mid = (ll >> 32) + (lh & 0xFFFFFFFFULL) + (hl & 0xFFFFFFFFULL);
    *hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
    return a * b;
}

/* The same product from the compiler's 128-bit integer or intrinsic where
 * there is one. Define FNN_PHILOX_NO_INT128 to force the fallback. */
FNN_PHILOX_INLINE uint64_t fnn_mulhilo64(uint64_t a, uint64_t b, uint64_t *hi) {
#if defined(__SIZEOF_INT128__) && !defined(FNN_PHILOX_NO_INT128)
    unsigned __int128 p = (unsigned __int128) a * b;
    *hi = (uint64_t) (p >> 64);
    return (uint64_t) p;
#elif defined(_MSC_VER) && defined(_M_X64) && !defined(FNN_PHILOX_NO_INT128)
    return _umul128(a, b, hi);
#else
    return fnn_mulhilo64_limbs(a, b, hi);
#endif
}

/* One block: out = Philox4x64-10(ctr, key). Ten rounds; the key is bumped
 * by the Weyl constants W0, W1 between rounds. */
#define FNN_PHILOX_BLOCK(NAME, MUL)                                           \
    FNN_PHILOX_INLINE void NAME(const uint64_t ctr[4], const uint64_t key[2], \
                                uint64_t out[4]) {                            \
        uint64_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];          \
        uint64_t k0 = key[0], k1 = key[1], hi0, hi1, lo0, lo1;                \
        int r;                                                                \
        for (r = 0; r < 10; r++) {                                            \
            if (r > 0) {                                                      \
                k0 += FNN_PHILOX_W0;                                          \
                k1 += FNN_PHILOX_W1;                                          \
            }                                                                 \
            lo0 = MUL(FNN_PHILOX_M0, c0, &hi0);                               \
            lo1 = MUL(FNN_PHILOX_M1, c2, &hi1);                               \
            c0 = hi1 ^ c1 ^ k0;                                               \
            c1 = lo1;                                                         \
            c2 = hi0 ^ c3 ^ k1;                                               \
            c3 = lo0;                                                         \
        }                                                                     \
        out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;                   \
    }

FNN_PHILOX_BLOCK(fnn_philox4x64_10, fnn_mulhilo64)
FNN_PHILOX_BLOCK(fnn_philox4x64_10_limbs, fnn_mulhilo64_limbs)

/* A stream: the key and the counter words fixed for it (the definition is in
 * fastnn._kernels.random). Block b of the stream has the counter
 * (b, layer, step, epoch). */
typedef struct {
    uint64_t key[2];
    uint64_t layer, step, epoch;
} fnn_stream;

/* words[4 j + i] = word i of block first + j, for j < n_blocks. (Blocks in
 * one loop already overlap in the CPU's out-of-order window: 4 or 8 blocks
 * interleaved by hand measured slower, by register spills.) */
FNN_PHILOX_INLINE void fnn_stream_words(const fnn_stream *s, uint64_t first,
                                        int64_t n_blocks, uint64_t *words) {
    uint64_t ctr[4];
    int64_t j;
    ctr[1] = s->layer;
    ctr[2] = s->step;
    ctr[3] = s->epoch;
    for (j = 0; j < n_blocks; j++) {
        ctr[0] = first + (uint64_t) j;
        fnn_philox4x64_10(ctr, s->key, words + 4 * j);
    }
}

/* A double in [0, 1) from the top 53 bits of a word: (w >> 11) 2^-53. */
FNN_PHILOX_INLINE double fnn_uniform53(uint64_t w) {
    return (double) (int64_t) (w >> 11) * FNN_PHILOX_2M53;
}

/* A float in [0, 1) from the top 24 bits of a word: (w >> 40) 2^-24. */
FNN_PHILOX_INLINE float fnn_uniform24(uint64_t w) {
    return (float) (int32_t) (w >> 40) * FNN_PHILOX_2M24F;
}

FNN_PHILOX_INLINE uint64_t fnn_double_bits(double x) {
    uint64_t i;
    memcpy(&i, &x, sizeof i);
    return i;
}

FNN_PHILOX_INLINE double fnn_bits_double(uint64_t i) {
    double x;
    memcpy(&x, &i, sizeof x);
    return x;
}

/* log(x) for normal, positive, finite x (fdlibm's e_log.c as in musl):
 * x = 2^k (1 + f) with 1 + f in [sqrt(2)/2, sqrt(2)), log(1 + f) = f - hfsq
 * + s (hfsq + R(s^2)), s = f / (2 + f). */
FNN_PHILOX_INLINE double fnn_log_normal(double x) {
    const double ln2_hi = 6.93147180369123816490e-01;
    const double ln2_lo = 1.90821492927058770002e-10;
    const double Lg1 = 6.666666666666735130e-01;
    const double Lg2 = 3.999999999940941908e-01;
    const double Lg3 = 2.857142874366239149e-01;
    const double Lg4 = 2.222219843214978396e-01;
    const double Lg5 = 1.818357216161805012e-01;
    const double Lg6 = 1.531383769920937332e-01;
    const double Lg7 = 1.479819860511658591e-01;
    uint64_t bits = fnn_double_bits(x);
    uint64_t hx = (bits >> 32) + (0x3ff00000 - 0x3fe6a09e);
    int64_t k = (int64_t) (hx >> 20) - 0x3ff;
    hx = (hx & 0x000fffff) + 0x3fe6a09e;
    double m = fnn_bits_double((hx << 32) | (bits & 0xffffffffULL));
    double f = m - 1.0;
    double hfsq = 0.5 * f * f;
    double s = f / (2.0 + f);
    double z = s * s;
    double w = z * z;
    double t1 = w * (Lg2 + w * (Lg4 + w * Lg6));
    double t2 = z * (Lg1 + w * (Lg3 + w * (Lg5 + w * Lg7)));
    double R = t2 + t1;
    double dk = (double) k;
    return s * (hfsq + R) + dk * ln2_lo - hfsq + f + dk * ln2_hi;
}

/* sin(x) for |x| <= pi/4 (fdlibm's __kernel_sin with y = 0, as in musl). */
FNN_PHILOX_INLINE double fnn_sin_kernel(double x) {
    const double S1 = -1.66666666666666324348e-01;
    const double S2 = 8.33333333332248946124e-03;
    const double S3 = -1.98412698298579493134e-04;
    const double S4 = 2.75573137070700676789e-06;
    const double S5 = -2.50507602534068634195e-08;
    const double S6 = 1.58969099521155010221e-10;
    double z = x * x;
    double w = z * z;
    double r = S2 + z * (S3 + z * S4) + z * w * (S5 + z * S6);
    double v = z * x;
    return x + v * (S1 + z * r);
}

/* cos(x) for |x| <= pi/4 (fdlibm's __kernel_cos with y = 0, as in musl). */
FNN_PHILOX_INLINE double fnn_cos_kernel(double x) {
    const double C1 = 4.16666666666666019037e-02;
    const double C2 = -1.38888888888741095749e-03;
    const double C3 = 2.48015872894767294178e-05;
    const double C4 = -2.75573143513906633035e-07;
    const double C5 = 2.08757232129817482790e-09;
    const double C6 = -1.13596475577881948265e-11;
    double z = x * x;
    double w = z * z;
    double r = z * (C1 + z * (C2 + z * C3)) + w * w * (C4 + z * (C5 + z * C6));
    double hz = 0.5 * z;
    w = 1.0 - hz;
    return w + (((1.0 - w) - hz) + z * r);
}

/* Box-Muller on two words: z0 = r cos(theta), z1 = r sin(theta), with
 *   r = sqrt(-2 log(u)), u = ((w0 >> 11) + 1) 2^-53 in (0, 1] (never 0),
 *   theta = 2 pi (w1 >> 9) 2^-55 = (pi / 2) (q + t), q = w1 >> 62 the
 *   quadrant, t = ((w1 >> 9) mod 2^53) 2^-53 in [0, 1).
 * Within the quadrant, x = (pi / 2) t gives (cos, sin) = (cos x, sin x) for
 * t < 1/2, and x = (pi / 2) (1 - t) gives (sin x, cos x) otherwise, so that
 * x <= pi/4 (1 - t is exact); the quadrant then rotates (cos, sin) by q
 * quarter turns, which only swaps and negates. |z| <= sqrt(106 log 2) = 8.57. */
FNN_PHILOX_INLINE void fnn_normal_pair(uint64_t w0, uint64_t w1, double *z0,
                                       double *z1) {
    const double half_pi = 1.57079632679489661923;
    double u = (double) (int64_t) ((w0 >> 11) + 1) * FNN_PHILOX_2M53;
    double r = sqrt(-2.0 * fnn_log_normal(u));
    uint64_t q = w1 >> 62;
    double t = (double) (int64_t) ((w1 >> 9) & 0x1FFFFFFFFFFFFFULL) * FNN_PHILOX_2M53;
    int upper = t >= 0.5;
    double x = half_pi * (upper ? 1.0 - t : t);
    double sx = fnn_sin_kernel(x), cx = fnn_cos_kernel(x);
    double c = upper ? sx : cx;
    double s = upper ? cx : sx;
    /* rotate (c, s) by q quarter turns: (c, s), (-s, c), (-c, -s), (s, -c) */
    double cq = (q & 1) ? s : c;
    double sq = (q & 1) ? c : s;
    cq = (q == 1 || q == 2) ? -cq : cq;
    sq = (q >= 2) ? -sq : sq;
    *z0 = r * cq;
    *z1 = r * sq;
}

/* z[2 j], z[2 j + 1] = fnn_normal_pair(words[2 j], words[2 j + 1]). */
FNN_PHILOX_INLINE void fnn_normal_pairs(const uint64_t *words, int64_t n_pairs,
                                        double *z) {
    int64_t j;
    for (j = 0; j < n_pairs; j++) {
        fnn_normal_pair(words[2 * j], words[2 * j + 1], z + 2 * j, z + 2 * j + 1);
    }
}

#endif
