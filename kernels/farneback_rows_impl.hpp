// Body of the Farneback row loops, included by farneback_generic.cpp (MICROEXP_FB_LANES 4) and
// farneback_avx2.cpp (8, compiled with -mavx2). The includer names the namespace
// (MICROEXP_FB_NS) and the getter (MICROEXP_FB_GETTER).
#include <algorithm>
#include <cstring>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "farneback_rows.hpp"

namespace microexp {
namespace MICROEXP_FB_NS {
namespace {

constexpr int L = MICROEXP_FB_LANES;
typedef float fvec __attribute__((vector_size(4 * MICROEXP_FB_LANES)));

inline fvec load(const float* p) {
    fvec v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
inline void store(float* p, fvec v) { std::memcpy(p, &v, sizeof v); }

void expansion_column(const float* I, int w, int h, int y, int n, const float* g, const float* xg,
                      const float* xxg, float* c0, float* c1, float* c2) {
    const float* mid = I + (std::ptrdiff_t)y * w;
    for (int x = 0; x < w; x += L) {
        fvec s0 = load(mid + x) * g[0], s1 = {}, s2 = {};
        for (int k = 1; k <= n; ++k) {
            const fvec up = load(I + (std::ptrdiff_t)std::max(y - k, 0) * w + x);
            const fvec dn = load(I + (std::ptrdiff_t)std::min(y + k, h - 1) * w + x);
            const fvec sum = up + dn;
            s0 += g[k] * sum;
            s1 += xg[k] * (dn - up);
            s2 += xxg[k] * sum;
        }
        store(c0 + x, s0);
        store(c1 + x, s1);
        store(c2 + x, s2);
    }
}

void expansion_row(const float* c0, const float* c1, const float* c2, int w, int n, const float* g,
                   const float* xg, const float* xxg, const double* ig, float* b, float* out) {
    const int W = (w + 7) & ~7;
    for (int x = 0; x < w; x += L) {
        fvec b1 = load(c0 + x) * g[0], b3 = load(c1 + x) * g[0], b5 = load(c2 + x) * g[0];
        fvec b2 = {}, b4 = {}, b6 = {};
        for (int k = 1; k <= n; ++k) {
            const fvec r0 = load(c0 + x + k), l0 = load(c0 + x - k);
            const fvec r1 = load(c1 + x + k), l1 = load(c1 + x - k);
            const fvec s0 = r0 + l0;
            b1 += s0 * g[k];
            b4 += s0 * xxg[k];
            b2 += (r0 - l0) * xg[k];
            b3 += (r1 + l1) * g[k];
            b6 += (r1 - l1) * xg[k];
            b5 += (load(c2 + x + k) + load(c2 + x - k)) * g[k];
        }
        store(b + x, b1);
        store(b + W + x, b2);
        store(b + 2 * W + x, b3);
        store(b + 3 * W + x, b4);
        store(b + 4 * W + x, b5);
        store(b + 5 * W + x, b6);
    }
    const float i11 = (float)ig[0], i03 = (float)ig[1], i33 = (float)ig[2], i55 = (float)ig[3];
    for (int x = 0; x < w; ++x) {
        const float b1 = b[x], b2 = b[W + x], b3 = b[2 * W + x], b4 = b[3 * W + x];
        const float b5 = b[4 * W + x], b6 = b[5 * W + x];
        out[x * 5 + 0] = b3 * i11;
        out[x * 5 + 1] = b2 * i11;
        out[x * 5 + 2] = b1 * i03 + b5 * i33;
        out[x * 5 + 3] = b1 * i03 + b4 * i33;
        out[x * 5 + 4] = b6 * i55;
    }
}

inline int floor_int(float v) {  // |v| is far below INT_MAX here; no libm call before SSE4.1
    const int i = (int)v;
    return i - (v < (float)i);
}

// One pixel of matrices_row; also the tail of the vector loop.
inline void matrices_pixel(const float* const* R0, const float* R1, int w, int h, int x, int y,
                           std::ptrdiff_t i, float dx, float dy, float s, float* const* M) {
    const std::ptrdiff_t step = (std::ptrdiff_t)w * 5;
    float fx = x + dx, fy = y + dy;
    const int x1 = floor_int(fx), y1 = floor_int(fy);
    fx -= x1;
    fy -= y1;
    float r2, r3, r4, r5, r6;
    if ((unsigned)x1 < (unsigned)(w - 1) && (unsigned)y1 < (unsigned)(h - 1)) {
        const float a00 = (1.f - fx) * (1.f - fy), a01 = fx * (1.f - fy);
        const float a10 = (1.f - fx) * fy, a11 = fx * fy;
        const float* p = R1 + y1 * step + x1 * 5;
        const float* q = p + step;
        r2 = a00 * p[0] + a01 * p[5] + a10 * q[0] + a11 * q[5];
        r3 = a00 * p[1] + a01 * p[6] + a10 * q[1] + a11 * q[6];
        r4 = a00 * p[2] + a01 * p[7] + a10 * q[2] + a11 * q[7];
        r5 = a00 * p[3] + a01 * p[8] + a10 * q[3] + a11 * q[8];
        r6 = a00 * p[4] + a01 * p[9] + a10 * q[4] + a11 * q[9];
        r4 = (R0[2][i] + r4) * 0.5f;
        r5 = (R0[3][i] + r5) * 0.5f;
        r6 = (R0[4][i] + r6) * 0.25f;
    } else {  // displaced outside the image: the reference polynomial alone
        r2 = r3 = 0.f;
        r4 = R0[2][i];
        r5 = R0[3][i];
        r6 = R0[4][i] * 0.5f;
    }
    r2 = (R0[0][i] - r2) * 0.5f;
    r3 = (R0[1][i] - r3) * 0.5f;
    r2 += r4 * dy + r6 * dx;
    r3 += r6 * dy + r5 * dx;
    r2 *= s, r3 *= s, r4 *= s, r5 *= s, r6 *= s;  // s == 1 away from the borders
    M[0][i] = r4 * r4 + r6 * r6;
    M[1][i] = (r4 + r5) * r6;
    M[2][i] = r5 * r5 + r6 * r6;
    M[3][i] = r4 * r2 + r6 * r3;
    M[4][i] = r6 * r2 + r5 * r3;
}

#if defined(__AVX2__)
// Lanes 0..4 of eight vectors, transposed: r[c] lane j = v[j] lane c.
inline void transpose_first5(const __m256* v, __m256* r) {
    const __m256 a0 = _mm256_unpacklo_ps(v[0], v[1]), a1 = _mm256_unpackhi_ps(v[0], v[1]);
    const __m256 a2 = _mm256_unpacklo_ps(v[2], v[3]), a3 = _mm256_unpackhi_ps(v[2], v[3]);
    const __m256 a4 = _mm256_unpacklo_ps(v[4], v[5]), a5 = _mm256_unpackhi_ps(v[4], v[5]);
    const __m256 a6 = _mm256_unpacklo_ps(v[6], v[7]), a7 = _mm256_unpackhi_ps(v[6], v[7]);
    // b*: lanes (c, c) of pixel pairs; the low 128 bits hold coefficients 0..3, the high 4..7.
    const __m256 b0 = _mm256_shuffle_ps(a0, a2, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 b1 = _mm256_shuffle_ps(a0, a2, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 b2 = _mm256_shuffle_ps(a1, a3, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 b3 = _mm256_shuffle_ps(a1, a3, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 b4 = _mm256_shuffle_ps(a4, a6, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 b5 = _mm256_shuffle_ps(a4, a6, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 b6 = _mm256_shuffle_ps(a5, a7, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 b7 = _mm256_shuffle_ps(a5, a7, _MM_SHUFFLE(3, 2, 3, 2));
    r[0] = _mm256_permute2f128_ps(b0, b4, 0x20);
    r[1] = _mm256_permute2f128_ps(b1, b5, 0x20);
    r[2] = _mm256_permute2f128_ps(b2, b6, 0x20);
    r[3] = _mm256_permute2f128_ps(b3, b7, 0x20);
    r[4] = _mm256_permute2f128_ps(b0, b4, 0x31);
}
#endif

void matrices_row(const float* const* R0, const float* R1, int w, int h, int y, const float* flow,
                  const float* wx, float wy, float* const* M) {
    const std::ptrdiff_t row = (std::ptrdiff_t)y * w;
    int x = 0;
#if defined(__AVX2__)
    // Eight pixels at a time. Each pixel's bilinear sample of the five interleaved R1
    // coefficients is one 8-lane blend of four unaligned loads (lanes 0..4 used; R1 carries 8
    // floats of slack for the overreach), and an 8x8 transpose turns the eight pixels' blends
    // into per-coefficient vectors. Gathers would fetch the same 160 floats one by one. The
    // in-image test becomes a blend; the arithmetic is matrices_pixel's, lane by lane.
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256 one = _mm256_set1_ps(1.f), half = _mm256_set1_ps(0.5f), quarter = _mm256_set1_ps(0.25f);
    const __m256 fy0 = _mm256_set1_ps((float)y);
    const __m256i wlim = _mm256_set1_epi32(w - 1), hlim = _mm256_set1_epi32(h - 1);
    const __m256i wv = _mm256_set1_epi32(w), five = _mm256_set1_epi32(5);
    const int step = w * 5;
    alignas(32) float w00[8], w01[8], w10[8], w11[8];
    alignas(32) int offset[8];
    for (; x + 8 <= w; x += 8) {
        const __m256 f0 = _mm256_loadu_ps(flow + 2 * x), f1 = _mm256_loadu_ps(flow + 2 * x + 8);
        const __m256 t0 = _mm256_permute2f128_ps(f0, f1, 0x20), t1 = _mm256_permute2f128_ps(f0, f1, 0x31);
        const __m256 dx = _mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(2, 0, 2, 0));
        const __m256 dy = _mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 1, 3, 1));
        const __m256i xi = _mm256_add_epi32(_mm256_set1_epi32(x), lane);
        __m256 fx = _mm256_add_ps(_mm256_cvtepi32_ps(xi), dx), fy = _mm256_add_ps(fy0, dy);
        const __m256 x1f = _mm256_floor_ps(fx), y1f = _mm256_floor_ps(fy);
        const __m256i x1 = _mm256_cvttps_epi32(x1f), y1 = _mm256_cvttps_epi32(y1f);
        fx = _mm256_sub_ps(fx, x1f);
        fy = _mm256_sub_ps(fy, y1f);
        // 0 <= x1 < w - 1 and 0 <= y1 < h - 1; pixels outside read R1's first cells instead.
        const __m256i inside = _mm256_and_si256(
            _mm256_and_si256(_mm256_cmpgt_epi32(x1, _mm256_set1_epi32(-1)), _mm256_cmpgt_epi32(wlim, x1)),
            _mm256_and_si256(_mm256_cmpgt_epi32(y1, _mm256_set1_epi32(-1)), _mm256_cmpgt_epi32(hlim, y1)));
        _mm256_store_si256(reinterpret_cast<__m256i*>(offset), _mm256_and_si256(
            _mm256_mullo_epi32(_mm256_add_epi32(_mm256_mullo_epi32(y1, wv), x1), five), inside));
        const __m256 in = _mm256_castsi256_ps(inside);
        const __m256 gx = _mm256_sub_ps(one, fx), gy = _mm256_sub_ps(one, fy);
        _mm256_store_ps(w00, _mm256_mul_ps(gx, gy));
        _mm256_store_ps(w01, _mm256_mul_ps(fx, gy));
        _mm256_store_ps(w10, _mm256_mul_ps(gx, fy));
        _mm256_store_ps(w11, _mm256_mul_ps(fx, fy));
        __m256 px[8];
        for (int j = 0; j < 8; ++j) {
            const float* p = R1 + offset[j];
            const float* q = p + step;
            __m256 v = _mm256_mul_ps(_mm256_broadcast_ss(w00 + j), _mm256_loadu_ps(p));
            v = _mm256_add_ps(v, _mm256_mul_ps(_mm256_broadcast_ss(w01 + j), _mm256_loadu_ps(p + 5)));
            v = _mm256_add_ps(v, _mm256_mul_ps(_mm256_broadcast_ss(w10 + j), _mm256_loadu_ps(q)));
            px[j] = _mm256_add_ps(v, _mm256_mul_ps(_mm256_broadcast_ss(w11 + j), _mm256_loadu_ps(q + 5)));
        }
        __m256 r[5];
        transpose_first5(px, r);
        const __m256 A0 = _mm256_loadu_ps(R0[0] + row + x), A1 = _mm256_loadu_ps(R0[1] + row + x);
        const __m256 A2 = _mm256_loadu_ps(R0[2] + row + x), A3 = _mm256_loadu_ps(R0[3] + row + x);
        const __m256 A4 = _mm256_loadu_ps(R0[4] + row + x);
        __m256 r2 = _mm256_and_ps(r[0], in), r3 = _mm256_and_ps(r[1], in);
        __m256 r4 = _mm256_blendv_ps(A2, _mm256_mul_ps(_mm256_add_ps(A2, r[2]), half), in);
        __m256 r5 = _mm256_blendv_ps(A3, _mm256_mul_ps(_mm256_add_ps(A3, r[3]), half), in);
        __m256 r6 = _mm256_blendv_ps(_mm256_mul_ps(A4, half), _mm256_mul_ps(_mm256_add_ps(A4, r[4]), quarter), in);
        r2 = _mm256_mul_ps(_mm256_sub_ps(A0, r2), half);
        r3 = _mm256_mul_ps(_mm256_sub_ps(A1, r3), half);
        r2 = _mm256_add_ps(r2, _mm256_add_ps(_mm256_mul_ps(r4, dy), _mm256_mul_ps(r6, dx)));
        r3 = _mm256_add_ps(r3, _mm256_add_ps(_mm256_mul_ps(r6, dy), _mm256_mul_ps(r5, dx)));
        const __m256 s = _mm256_mul_ps(_mm256_loadu_ps(wx + x), _mm256_set1_ps(wy));
        r2 = _mm256_mul_ps(r2, s), r3 = _mm256_mul_ps(r3, s), r4 = _mm256_mul_ps(r4, s);
        r5 = _mm256_mul_ps(r5, s), r6 = _mm256_mul_ps(r6, s);
        _mm256_storeu_ps(M[0] + row + x, _mm256_add_ps(_mm256_mul_ps(r4, r4), _mm256_mul_ps(r6, r6)));
        _mm256_storeu_ps(M[1] + row + x, _mm256_mul_ps(_mm256_add_ps(r4, r5), r6));
        _mm256_storeu_ps(M[2] + row + x, _mm256_add_ps(_mm256_mul_ps(r5, r5), _mm256_mul_ps(r6, r6)));
        _mm256_storeu_ps(M[3] + row + x, _mm256_add_ps(_mm256_mul_ps(r4, r2), _mm256_mul_ps(r6, r3)));
        _mm256_storeu_ps(M[4] + row + x, _mm256_add_ps(_mm256_mul_ps(r6, r2), _mm256_mul_ps(r5, r3)));
    }
#endif
    for (; x < w; ++x)
        matrices_pixel(R0, R1, w, h, x, y, row + x, flow[2 * x], flow[2 * x + 1], wx[x] * wy, M);
}

typedef double dvec __attribute__((vector_size(32)));

void slide_column_sums(double* v, const float* add, const float* sub, int n) {
    for (int i = 0; i < n; ++i) v[i] += (double)add[i] - (double)sub[i];
}

inline dvec load_d(const double* p) {
    dvec v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

void solve_row(const double* vs, int w, int m, double scale, double* hs, float* flow) {
    // Box sums along the row, edges replicated: hs[x] = sum of v[clamp(j)] for j in
    // [x - m, x + m], i.e. the sum at x - 1 plus d[x] = v[clamp(x + m)] - v[clamp(x - m - 1)].
    // Four sums of a channel advance at once (hs[x..x+3] from hs[x-4..x-1] and four
    // differences each) and the five channels side by side, so that the running sums are
    // five independent vector chains rather than one add per pixel. `d` lives in hs's tail.
    double* d = hs + 5 * (std::ptrdiff_t)w;
    auto at = [w](const double* v, int j) { return v[std::min(std::max(j, 0), w - 1)]; };
    const int lo = std::min(m + 1, w), hi = std::max(lo, w - m);  // no clamping in [lo, hi)
    const int head = std::min(w, 4);
    double first[5][4] = {};
    for (int c = 0; c < 5; ++c) {
        const double* v = vs + (std::ptrdiff_t)c * w;
        double* dc = d + (std::ptrdiff_t)c * w;
        for (int x = 0; x < lo; ++x) dc[x] = at(v, x + m) - at(v, x - m - 1);
        for (int x = lo; x < hi; ++x) dc[x] = v[x + m] - v[x - m - 1];
        for (int x = hi; x < w; ++x) dc[x] = at(v, x + m) - at(v, x - m - 1);
        double acc = 0;  // the window sum at x = -1
        for (int j = -m - 1; j <= m - 1; ++j) acc += at(v, j);
        for (int x = 0; x < head; ++x) first[c][x] = hs[c * w + x] = acc += dc[x];
    }
    // Five named accumulators so that they stay in registers.
    dvec s0 = load_d(first[0]), s1 = load_d(first[1]), s2 = load_d(first[2]);
    dvec s3 = load_d(first[3]), s4 = load_d(first[4]);
    const double *d0 = d, *d1 = d + w, *d2 = d + 2 * w, *d3 = d + 3 * w, *d4 = d + 4 * w;
    auto advance = [](dvec s, const double* dc) {
        return s + (((load_d(dc - 3) + load_d(dc - 2)) + load_d(dc - 1)) + load_d(dc));
    };
    int x = head;
    for (; x + 4 <= w; x += 4) {
        s0 = advance(s0, d0 + x), s1 = advance(s1, d1 + x), s2 = advance(s2, d2 + x);
        s3 = advance(s3, d3 + x), s4 = advance(s4, d4 + x);
        std::memcpy(hs + x, &s0, sizeof s0);
        std::memcpy(hs + w + x, &s1, sizeof s1);
        std::memcpy(hs + 2 * w + x, &s2, sizeof s2);
        std::memcpy(hs + 3 * w + x, &s3, sizeof s3);
        std::memcpy(hs + 4 * w + x, &s4, sizeof s4);
    }
    for (; x < w; ++x)
        for (int c = 0; c < 5; ++c) hs[c * w + x] = hs[c * w + x - 1] + d[c * w + x];
    const double* __restrict G11 = hs;
    const double* __restrict G12 = hs + w;
    const double* __restrict G22 = hs + 2 * w;
    const double* __restrict H1 = hs + 3 * w;
    const double* __restrict H2 = hs + 4 * w;
    for (int x = 0; x < w; ++x) {
        const double g11 = G11[x] * scale, g12 = G12[x] * scale, g22 = G22[x] * scale;
        const double h1 = H1[x] * scale, h2 = H2[x] * scale;
        const double idet = 1.0 / (g11 * g22 - g12 * g12 + 1e-3);  // OpenCV's regulariser
        flow[2 * x] = (float)((g11 * h2 - g12 * h1) * idet);
        flow[2 * x + 1] = (float)((g22 * h1 - g12 * h2) * idet);
    }
}

}  // namespace
}  // namespace MICROEXP_FB_NS

const FarnebackRows& MICROEXP_FB_GETTER() {
    namespace k = MICROEXP_FB_NS;
    static const FarnebackRows rows{k::expansion_column, k::expansion_row, k::matrices_row,
                                  k::slide_column_sums, k::solve_row};
    return rows;
}

}  // namespace microexp
