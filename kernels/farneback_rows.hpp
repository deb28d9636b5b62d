// The per-row inner loops of the Farneback flow (farneback.cpp drives them). They are compiled
// twice: portably (four-lane vectors, which SSE2 and NEON both run well) and, on x86-64, with
// AVX2 (eight lanes and gathers), chosen at run time. Both give the same values: plain IEEE
// operations in the same order, no fused multiply-adds.
#pragma once
#include <cstddef>

namespace microexp {

struct FarnebackRows {
    // Vertical part of the polynomial expansion of row y of the w x h image I (rows padded to
    // a multiple of 8 floats): three column sums into c0 (g), c1 (x g, odd), c2 (x^2 g).
    void (*expansion_column)(const float* I, int w, int h, int y, int n, const float* g,
                             const float* xg, const float* xxg, float* c0, float* c1, float* c2);
    // Horizontal part: the five coefficients of row y, interleaved (y, x, y^2, x^2, xy) into
    // `out`. c0..c2 are padded by n replicated values on both sides; `b` is scratch (6 * w8).
    void (*expansion_row)(const float* c0, const float* c1, const float* c2, int w, int n,
                          const float* g, const float* xg, const float* xxg, const double* ig,
                          float* b, float* out);
    // The 2x2 system of every pixel of row y from the current flow: the reference polynomial
    // (R0, five planes of h x w) against the next image's (R1, interleaved, sampled
    // bilinearly at the displaced position). wx: per-column border weights; wy: this row's.
    // Writes the five planes of M (each h x w) at row y.
    void (*matrices_row)(const float* const* R0, const float* R1, int w, int h, int y, const float* flow,
                         const float* wx, float wy, float* const* M);
    // One step of the vertical box sums: v[i] += add[i] - sub[i] for n values (in double).
    void (*slide_column_sums)(double* v, const float* add, const float* sub, int n);
    // Box sums over the (2m+1)-wide window of one row of vertically summed matrices `vs`
    // (five planes of w doubles, borders replicated), then the solve: flow row (interleaved).
    // hs: scratch of 10 w doubles.
    void (*solve_row)(const double* vs, int w, int m, double scale, double* hs, float* flow);
};

const FarnebackRows& farneback_rows_generic();
#if defined(MICROEXP_X86_DISPATCH)
const FarnebackRows& farneback_rows_avx2();
#endif

}  // namespace microexp
