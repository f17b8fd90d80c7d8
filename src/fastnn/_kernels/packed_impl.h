/* One dtype's packed kernel; packed.h includes this once per dtype, with
 * FNN_T (the element type), FNN_S (the name suffix), FNN_V (its SIMD vector),
 * FNN_VL (elements per vector) and the vector operations defined. */

#define FNN_CAT_(a, b) a##_##b
#define FNN_CAT(a, b) FNN_CAT_(a, b)
#define FNN_FN(name) FNN_CAT(name, FNN_S)

/* Width of the panels of a layer with n_out outputs. */
static inline ptrdiff_t FNN_FN(fnn_panel)(ptrdiff_t n_out)
{
    return n_out <= FNN_VL ? FNN_VL : 2 * FNN_VL;
}

/* Elements of a packed layer: its panels (n_in rows of the panel width
 * each), then its bias, zero-padded to a whole number of panels. */
static inline size_t FNN_FN(fnn_packed_size)(ptrdiff_t n_in, ptrdiff_t n_out)
{
    ptrdiff_t nr = FNN_FN(fnn_panel)(n_out);
    ptrdiff_t panels = (n_out + nr - 1) / nr;
    return (size_t)(panels * nr) * (size_t)(n_in + 1);
}

/* Packs panel p of W (n_out, n_in) into the packed layer P, and with panel
 * 0, b (n_out,): whole blocks of FNN_TB rows by FNN_TB columns are
 * transposed in registers (FNN_TRANSPOSE), the rest element by element. */
static void FNN_FN(fnn_pack_panel)(const FNN_T* W, const FNN_T* b, ptrdiff_t n_in,
                                   ptrdiff_t n_out, ptrdiff_t p, FNN_T* P)
{
    ptrdiff_t nr = FNN_FN(fnn_panel)(n_out);
    ptrdiff_t panels = (n_out + nr - 1) / nr;
    FNN_T* panel = P + p * nr * n_in;
    ptrdiff_t j0, k, i;
    for (j0 = 0; j0 < nr; j0 += FNN_TB) {
        ptrdiff_t row = p * nr + j0;  /* W's row for the block's first column */
        ptrdiff_t rows = n_out - row < FNN_TB ? n_out - row : FNN_TB;
        k = 0;
        if (rows == FNN_TB)
            for (; k + FNN_TB <= n_in; k += FNN_TB)
                FNN_TRANSPOSE(W + row * n_in + k, n_in, panel + k * nr + j0, nr);
        for (; k < n_in; k++)
            for (i = 0; i < FNN_TB; i++)
                panel[k * nr + j0 + i] = i < rows ? W[(row + i) * n_in + k] : 0;
    }
    if (p == 0) {
        FNN_T* bias = P + panels * nr * n_in;
        for (i = 0; i < panels * nr; i++)
            bias[i] = i < n_out ? b[i] : 0;
    }
}

/* Panels of a layer with n_out outputs. */
static inline ptrdiff_t FNN_FN(fnn_panels)(ptrdiff_t n_out)
{
    ptrdiff_t nr = FNN_FN(fnn_panel)(n_out);
    return (n_out + nr - 1) / nr;
}

/* Stores `rows` rows of a tile's first `cols` columns from the vectors
 * acc[r * nv .. r * nv + nv), with masked stores for a ragged last panel. */
static inline void FNN_FN(fnn_store)(const FNN_V* acc, int nv, int rows,
                                     ptrdiff_t cols, FNN_T* Y, ptrdiff_t ldy)
{
    int r, v;
    for (r = 0; r < rows; r++)
        for (v = 0; v < nv; v++) {
            ptrdiff_t c = cols - v * FNN_VL;
            if (c >= FNN_VL)
                FNN_STOREU(Y + r * ldy + v * FNN_VL, acc[r * nv + v]);
            else if (c > 0)
                FNN_STORE_FIRST(Y + r * ldy + v * FNN_VL, (int)c, acc[r * nv + v]);
        }
}

/* A FNN_MR_WIDE x (2 vectors) tile: Y = f(X W^T + b) for the panel Wp. */
static inline void FNN_FN(fnn_tile_wide)(const FNN_T* X, ptrdiff_t K,
                                         const FNN_T* Wp, const FNN_T* bp,
                                         int relu, int rows, ptrdiff_t cols,
                                         FNN_T* Y, ptrdiff_t ldy)
{
    FNN_V acc[2 * FNN_MR_WIDE];
    FNN_V b0 = FNN_LOADU(bp), b1 = FNN_LOADU(bp + FNN_VL);
    ptrdiff_t k;
    int r;
#pragma GCC unroll 16
    for (r = 0; r < FNN_MR_WIDE; r++) {
        acc[2 * r] = b0;
        acc[2 * r + 1] = b1;
    }
    for (k = 0; k < K; k++) {
        FNN_V w0 = FNN_LOADU(Wp + k * 2 * FNN_VL);
        FNN_V w1 = FNN_LOADU(Wp + k * 2 * FNN_VL + FNN_VL);
#pragma GCC unroll 16
        for (r = 0; r < FNN_MR_WIDE; r++) {
            FNN_V x = FNN_SET1(X[r * K + k]);
            acc[2 * r] = FNN_FMA(x, w0, acc[2 * r]);
            acc[2 * r + 1] = FNN_FMA(x, w1, acc[2 * r + 1]);
        }
    }
    if (relu) {
#pragma GCC unroll 16
        for (r = 0; r < 2 * FNN_MR_WIDE; r++)
            acc[r] = FNN_RELU(acc[r]);
    }
    FNN_FN(fnn_store)(acc, 2, rows, cols, Y, ldy);
}

/* A FNN_MR_NARROW x (1 vector) tile. */
static inline void FNN_FN(fnn_tile_narrow)(const FNN_T* X, ptrdiff_t K,
                                           const FNN_T* Wp, const FNN_T* bp,
                                           int relu, int rows, ptrdiff_t cols,
                                           FNN_T* Y, ptrdiff_t ldy)
{
    FNN_V acc[FNN_MR_NARROW];
    FNN_V b0 = FNN_LOADU(bp);
    ptrdiff_t k;
    int r;
#pragma GCC unroll 16
    for (r = 0; r < FNN_MR_NARROW; r++)
        acc[r] = b0;
    for (k = 0; k < K; k++) {
        FNN_V w0 = FNN_LOADU(Wp + k * FNN_VL);
#pragma GCC unroll 16
        for (r = 0; r < FNN_MR_NARROW; r++)
            acc[r] = FNN_FMA(FNN_SET1(X[r * K + k]), w0, acc[r]);
    }
    if (relu) {
#pragma GCC unroll 16
        for (r = 0; r < FNN_MR_NARROW; r++)
            acc[r] = FNN_RELU(acc[r]);
    }
    FNN_FN(fnn_store)(acc, 1, rows, cols, Y, ldy);
}

/* Y (n, n_out) = X (n, n_in) W^T + b, then max(., 0) if relu, from the
 * packed layer P. pad: scratch of FNN_MR_MAX * n_in elements, for the last
 * rows when n is not a whole number of tiles. */
static void FNN_FN(fnn_packed_dense)(const FNN_T* X, ptrdiff_t n, ptrdiff_t n_in,
                                     const FNN_T* P, ptrdiff_t n_out, int relu,
                                     FNN_T* Y, FNN_T* pad)
{
    ptrdiff_t nr = FNN_FN(fnn_panel)(n_out);
    ptrdiff_t panels = (n_out + nr - 1) / nr;
    int mr = nr == FNN_VL ? FNN_MR_NARROW : FNN_MR_WIDE;
    ptrdiff_t full = n - n % mr, p, r;
    int tail = (int)(n - full);
    const FNN_T* bias = P + panels * nr * n_in;
    if (tail) {
        /* the tile reads mr rows: the last ones come from a zeroed copy */
        memcpy(pad, X + full * n_in, (size_t)(tail * n_in) * sizeof(FNN_T));
        memset(pad + tail * n_in, 0, (size_t)((mr - tail) * n_in) * sizeof(FNN_T));
    }
    for (p = 0; p < panels; p++) {
        const FNN_T* Wp = P + p * nr * n_in;
        const FNN_T* bp = bias + p * nr;
        ptrdiff_t cols = n_out - p * nr < nr ? n_out - p * nr : nr;
        FNN_T* Yp = Y + p * nr;
        if (mr == FNN_MR_WIDE) {
            for (r = 0; r < full; r += mr)
                FNN_FN(fnn_tile_wide)(X + r * n_in, n_in, Wp, bp, relu, mr,
                                      cols, Yp + r * n_out, n_out);
            if (tail)
                FNN_FN(fnn_tile_wide)(pad, n_in, Wp, bp, relu, tail, cols,
                                      Yp + full * n_out, n_out);
        } else {
            for (r = 0; r < full; r += mr)
                FNN_FN(fnn_tile_narrow)(X + r * n_in, n_in, Wp, bp, relu, mr,
                                        cols, Yp + r * n_out, n_out);
            if (tail)
                FNN_FN(fnn_tile_narrow)(pad, n_in, Wp, bp, relu, tail, cols,
                                        Yp + full * n_out, n_out);
        }
    }
}

#undef FNN_FN
#undef FNN_CAT
#undef FNN_CAT_
#undef FNN_T
#undef FNN_S
#undef FNN_V
#undef FNN_VL
#undef FNN_LOADU
#undef FNN_STOREU
#undef FNN_SET1
#undef FNN_FMA
#undef FNN_RELU
#undef FNN_TB
#undef FNN_STORE_FIRST
#undef FNN_TRANSPOSE
