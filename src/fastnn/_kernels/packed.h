/* The inference GEMM of DenseStack: Y = f(X W^T + b) on row blocks, with the
 * weights packed once per call into panels of one or two SIMD vectors of
 * output units, k-major (the layout of ONNX Runtime's MLAS and of BLIS's
 * packed B). The tile kernel keeps an MR x panel block of Y in registers,
 * broadcasts X's elements straight from its rows (X is never packed), and
 * adds the bias and applies ReLU in registers before the one store.
 *
 * Why not the BLAS here: a BLAS GEMM packs X on every call and returns
 * before the bias, so a narrow network pays a packing pass, a bias and
 * activation pass and the threaded GEMM's wake and join per layer; on the
 * 64-32-10 and 784-128-10 networks that is a third of predict's time.
 * Training keeps the BLAS.
 *
 * Built only where the compiler targets hardware FMA (x86-64-v3 and up, or
 * a native build on such a CPU): FNN_PACKED is then 1. Every level that has
 * it computes the same bits: each output is
 *     fma(x[K-1], w[K-1], ... fma(x[0], w[0], b))
 * whatever the vector width, row or thread. Elsewhere the stack uses BLAS.
 */
#ifndef FASTNN_PACKED_H
#define FASTNN_PACKED_H

#include <stddef.h>
#include <string.h>

#if defined(__FMA__) && defined(__AVX2__)
#define FNN_PACKED 1
#include <immintrin.h>
#else
#define FNN_PACKED 0
#endif

/* Rows of a tile: MR_WIDE for two-vector panels, MR_NARROW for one-vector
 * panels (the outputs of a narrow layer fit one vector). */
#define FNN_MR_WIDE 6
#define FNN_MR_NARROW 12
#define FNN_MR_MAX 12

#if FNN_PACKED

/* dst[k * ldd + i] = src[i * ld + k] for i, k < 8 (float) or 4 (double):
 * a block of W's rows turned into the packed panel's columns. */
static inline void fnn_transpose_f32(const float* src, ptrdiff_t ld, float* dst,
                                     ptrdiff_t ldd)
{
    __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + ld),
           r2 = _mm256_loadu_ps(src + 2 * ld), r3 = _mm256_loadu_ps(src + 3 * ld),
           r4 = _mm256_loadu_ps(src + 4 * ld), r5 = _mm256_loadu_ps(src + 5 * ld),
           r6 = _mm256_loadu_ps(src + 6 * ld), r7 = _mm256_loadu_ps(src + 7 * ld);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1),
           t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3),
           t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
           t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)),
           s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)),
           s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)),
           s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2)),
           s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)),
           s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2)),
           s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)),
           s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    _mm256_storeu_ps(dst, _mm256_permute2f128_ps(s0, s4, 0x20));
    _mm256_storeu_ps(dst + ldd, _mm256_permute2f128_ps(s1, s5, 0x20));
    _mm256_storeu_ps(dst + 2 * ldd, _mm256_permute2f128_ps(s2, s6, 0x20));
    _mm256_storeu_ps(dst + 3 * ldd, _mm256_permute2f128_ps(s3, s7, 0x20));
    _mm256_storeu_ps(dst + 4 * ldd, _mm256_permute2f128_ps(s0, s4, 0x31));
    _mm256_storeu_ps(dst + 5 * ldd, _mm256_permute2f128_ps(s1, s5, 0x31));
    _mm256_storeu_ps(dst + 6 * ldd, _mm256_permute2f128_ps(s2, s6, 0x31));
    _mm256_storeu_ps(dst + 7 * ldd, _mm256_permute2f128_ps(s3, s7, 0x31));
}

static inline void fnn_transpose_f64(const double* src, ptrdiff_t ld, double* dst,
                                     ptrdiff_t ldd)
{
    __m256d r0 = _mm256_loadu_pd(src), r1 = _mm256_loadu_pd(src + ld),
            r2 = _mm256_loadu_pd(src + 2 * ld), r3 = _mm256_loadu_pd(src + 3 * ld);
    __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1),
            t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
    _mm256_storeu_pd(dst, _mm256_permute2f128_pd(t0, t2, 0x20));
    _mm256_storeu_pd(dst + ldd, _mm256_permute2f128_pd(t1, t3, 0x20));
    _mm256_storeu_pd(dst + 2 * ldd, _mm256_permute2f128_pd(t0, t2, 0x31));
    _mm256_storeu_pd(dst + 3 * ldd, _mm256_permute2f128_pd(t1, t3, 0x31));
}

/* Stores the first c (0 < c < the vector's length) elements of v at p. */
#if defined(__AVX512F__)
static inline void fnn_store_first_f32(float* p, int c, __m512 v)
{
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << c) - 1), v);
}
static inline void fnn_store_first_f64(double* p, int c, __m512d v)
{
    _mm512_mask_storeu_pd(p, (__mmask8)((1u << c) - 1), v);
}
#else
static inline void fnn_store_first_f32(float* p, int c, __m256 v)
{
    __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_maskstore_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(c), lane), v);
}
static inline void fnn_store_first_f64(double* p, int c, __m256d v)
{
    __m256i lane = _mm256_setr_epi64x(0, 1, 2, 3);
    _mm256_maskstore_pd(p, _mm256_cmpgt_epi64(_mm256_set1_epi64x(c), lane), v);
}
#endif

/* ReLU as act_forward computes it, 0 where z <= 0, else z (NaN stays). */
#if defined(__AVX512F__)
static inline __m512 fnn_relu_f32(__m512 z)
{
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_NLE_UQ), z);
}
static inline __m512d fnn_relu_f64(__m512d z)
{
    return _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(z, _mm512_setzero_pd(), _CMP_NLE_UQ), z);
}
#else
static inline __m256 fnn_relu_f32(__m256 z)
{
    return _mm256_andnot_ps(_mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_LE_OQ), z);
}
static inline __m256d fnn_relu_f64(__m256d z)
{
    return _mm256_andnot_pd(_mm256_cmp_pd(z, _mm256_setzero_pd(), _CMP_LE_OQ), z);
}
#endif

#if defined(__AVX512F__)
#define FNN_T float
#define FNN_S f32
#define FNN_V __m512
#define FNN_VL 16
#define FNN_LOADU _mm512_loadu_ps
#define FNN_STOREU _mm512_storeu_ps
#define FNN_SET1 _mm512_set1_ps
#define FNN_FMA _mm512_fmadd_ps
#define FNN_TB 8
#define FNN_TRANSPOSE fnn_transpose_f32
#define FNN_STORE_FIRST fnn_store_first_f32
#define FNN_RELU fnn_relu_f32
#include "packed_impl.h"
#define FNN_T double
#define FNN_S f64
#define FNN_V __m512d
#define FNN_VL 8
#define FNN_LOADU _mm512_loadu_pd
#define FNN_STOREU _mm512_storeu_pd
#define FNN_SET1 _mm512_set1_pd
#define FNN_FMA _mm512_fmadd_pd
#define FNN_TB 4
#define FNN_TRANSPOSE fnn_transpose_f64
#define FNN_STORE_FIRST fnn_store_first_f64
#define FNN_RELU fnn_relu_f64
#include "packed_impl.h"
#else
#define FNN_T float
#define FNN_S f32
#define FNN_V __m256
#define FNN_VL 8
#define FNN_LOADU _mm256_loadu_ps
#define FNN_STOREU _mm256_storeu_ps
#define FNN_SET1 _mm256_set1_ps
#define FNN_FMA _mm256_fmadd_ps
#define FNN_TB 8
#define FNN_TRANSPOSE fnn_transpose_f32
#define FNN_STORE_FIRST fnn_store_first_f32
#define FNN_RELU fnn_relu_f32
#include "packed_impl.h"
#define FNN_T double
#define FNN_S f64
#define FNN_V __m256d
#define FNN_VL 4
#define FNN_LOADU _mm256_loadu_pd
#define FNN_STOREU _mm256_storeu_pd
#define FNN_SET1 _mm256_set1_pd
#define FNN_FMA _mm256_fmadd_pd
#define FNN_TB 4
#define FNN_TRANSPOSE fnn_transpose_f64
#define FNN_STORE_FIRST fnn_store_first_f64
#define FNN_RELU fnn_relu_f64
#include "packed_impl.h"
#endif

#else  /* no packed kernel: stubs, never called (the stack checks FNN_PACKED) */

static inline size_t fnn_packed_size_f32(ptrdiff_t n_in, ptrdiff_t n_out) { return 0; }
static inline size_t fnn_packed_size_f64(ptrdiff_t n_in, ptrdiff_t n_out) { return 0; }
static inline ptrdiff_t fnn_panels_f32(ptrdiff_t n_out) { return 0; }
static inline ptrdiff_t fnn_panels_f64(ptrdiff_t n_out) { return 0; }
static inline void fnn_pack_panel_f32(const float* W, const float* b, ptrdiff_t n_in,
                                      ptrdiff_t n_out, ptrdiff_t p, float* P) {}
static inline void fnn_pack_panel_f64(const double* W, const double* b,
                                      ptrdiff_t n_in, ptrdiff_t n_out, ptrdiff_t p,
                                      double* P) {}
static inline void fnn_packed_dense_f32(const float* X, ptrdiff_t n, ptrdiff_t n_in,
                                        const float* P, ptrdiff_t n_out, int relu,
                                        float* Y, float* pad) {}
static inline void fnn_packed_dense_f64(const double* X, ptrdiff_t n, ptrdiff_t n_in,
                                        const double* P, ptrdiff_t n_out, int relu,
                                        double* Y, double* pad) {}

#endif  /* FNN_PACKED */
#endif  /* FASTNN_PACKED_H */
