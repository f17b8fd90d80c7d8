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

#if defined(__AVX512F__)
#define FNN_T float
#define FNN_S f32
#define FNN_V __m512
#define FNN_VL 16
#define FNN_LOADU _mm512_loadu_ps
#define FNN_STOREU _mm512_storeu_ps
#define FNN_SET1 _mm512_set1_ps
#define FNN_FMA _mm512_fmadd_ps
#define FNN_MAX _mm512_max_ps
#define FNN_ZERO _mm512_setzero_ps
#include "packed_impl.h"
#define FNN_T double
#define FNN_S f64
#define FNN_V __m512d
#define FNN_VL 8
#define FNN_LOADU _mm512_loadu_pd
#define FNN_STOREU _mm512_storeu_pd
#define FNN_SET1 _mm512_set1_pd
#define FNN_FMA _mm512_fmadd_pd
#define FNN_MAX _mm512_max_pd
#define FNN_ZERO _mm512_setzero_pd
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
#define FNN_MAX _mm256_max_ps
#define FNN_ZERO _mm256_setzero_ps
#include "packed_impl.h"
#define FNN_T double
#define FNN_S f64
#define FNN_V __m256d
#define FNN_VL 4
#define FNN_LOADU _mm256_loadu_pd
#define FNN_STOREU _mm256_storeu_pd
#define FNN_SET1 _mm256_set1_pd
#define FNN_FMA _mm256_fmadd_pd
#define FNN_MAX _mm256_max_pd
#define FNN_ZERO _mm256_setzero_pd
#include "packed_impl.h"
#endif

#else  /* no packed kernel: stubs, never called (the stack checks FNN_PACKED) */

static inline size_t fnn_packed_size_f32(ptrdiff_t n_in, ptrdiff_t n_out) { return 0; }
static inline size_t fnn_packed_size_f64(ptrdiff_t n_in, ptrdiff_t n_out) { return 0; }
static inline void fnn_pack_f32(const float* W, const float* b, ptrdiff_t n_in,
                                ptrdiff_t n_out, float* P) {}
static inline void fnn_pack_f64(const double* W, const double* b, ptrdiff_t n_in,
                                ptrdiff_t n_out, double* P) {}
static inline void fnn_packed_dense_f32(const float* X, ptrdiff_t n, ptrdiff_t n_in,
                                        const float* P, ptrdiff_t n_out, int relu,
                                        float* Y, float* pad) {}
static inline void fnn_packed_dense_f64(const double* X, ptrdiff_t n, ptrdiff_t n_in,
                                        const double* P, ptrdiff_t n_out, int relu,
                                        double* Y, double* pad) {}

#endif  /* FNN_PACKED */
#endif  /* FASTNN_PACKED_H */
