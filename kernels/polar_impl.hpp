// Body of the flow -> (hue, magnitude) pass, included by polar_generic.cpp and polar_fma.cpp.
// It reproduces OpenCV's cartToPolar(angleInDegrees=true) vector path, whose polynomial
// uses fused multiply-adds on CPUs that have them, and then the seed's `(ang / 2).astype(uint8)`.
// The includer defines MICROEXP_MAD(a, b, c) and MICROEXP_MAD8 on eight lanes (fused or not)
// and the function names.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace microexp {

void MICROEXP_POLAR_FN(const float* flow, std::ptrdiff_t row_stride, int rows, int cols,
                       std::uint8_t* hue, float* mag) {
    const float p1 = 0.9997878412794807f * (float)(180 / M_PI);
    const float p3 = -0.3258083974640975f * (float)(180 / M_PI);
    const float p5 = 0.1555786518463281f * (float)(180 / M_PI);
    const float p7 = -0.04432655554792128f * (float)(180 / M_PI);
    const float eps = (float)DBL_EPSILON;
    for (int r = 0; r < rows; ++r) {
        const float* f = flow + r * row_stride;
        std::uint8_t* h = hue + (std::ptrdiff_t)r * cols;
        float* m = mag + (std::ptrdiff_t)r * cols;
        for (int i = 0; i < cols; ++i) {
            const float x = f[2 * i], y = f[2 * i + 1];
            m[i] = std::sqrt(MICROEXP_MAD(x, x, y * y));
            const float ax = std::fabs(x), ay = std::fabs(y);
            const float lo = ax < ay ? ax : ay, hi = ax < ay ? ay : ax;  // minps/maxps, vectorisable
            const float c = lo / (hi + eps);
            const float cc = c * c;
            const float a0 = MICROEXP_MAD(MICROEXP_MAD(MICROEXP_MAD(cc, p7, p5), cc, p3), cc, p1) * c;
            // Branch-free selects (the compiler turns them into blends and vectorises the loop).
            const float a1 = ax >= ay ? a0 : 90.f - a0;
            const float a2 = x < 0 ? 180.f - a1 : a1;
            const float a = y < 0 ? 360.f - a2 : a2;
            h[i] = (std::uint8_t)(int)(a / 2.f);  // numpy astype(uint8) truncates
        }
    }
}

}  // namespace microexp

namespace microexp {
namespace {

// Eight lanes with GCC/Clang vector extensions: plain IEEE operations, lane by lane, so the
// arithmetic is exactly that of the scalar formula, while the compiler emits SIMD for it.
typedef float f32x8 __attribute__((vector_size(32)));
typedef std::int32_t i32x8 __attribute__((vector_size(32)));
typedef std::uint8_t u8x8 __attribute__((vector_size(8)));

inline f32x8 load8(const float* p) {
    f32x8 v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
// Widening bytes and narrowing back: AVX2 has single instructions for these, which GCC does not
// find by itself from the generic form.
inline f32x8 load8(const std::uint8_t* p) {
#if defined(__AVX2__)
    const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    return (f32x8)_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
#else
    u8x8 v;
    std::memcpy(&v, p, sizeof v);
    return __builtin_convertvector(v, f32x8);
#endif
}
inline i32x8 trunc_to_int(f32x8 x) { return __builtin_convertvector(x, i32x8); }
inline f32x8 to_float(i32x8 x) { return __builtin_convertvector(x, f32x8); }
inline i32x8 clamp_u8(i32x8 x) {
    const i32x8 zero = {}, top = zero + 255;
    x = x < zero ? zero : x;
    return x > top ? top : x;
}
inline f32x8 fma8(f32x8 a, f32x8 b, f32x8 c) {  // lane by lane, for targets without _mm256
    f32x8 r;
    for (int j = 0; j < 8; ++j) r[j] = std::fma(a[j], b[j], c[j]);
    return r;
}
inline void store8(std::uint8_t* p, i32x8 x) {  // x already in [0, 255]
#if defined(__AVX2__)
    const __m256i w = (__m256i)x;
    const __m128i words = _mm_packus_epi32(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packus_epi16(words, words));
#else
    const u8x8 v = __builtin_convertvector(x, u8x8);
    std::memcpy(p, &v, sizeof v);
#endif
}

}  // namespace

// Smallest and largest value of a plane (no NaN: the caller rejected or zeroed them).
void MICROEXP_MINMAX_FN(const float* x, std::ptrdiff_t n, float* lo, float* hi) {
    float l = x[0], h = x[0];
    std::ptrdiff_t i = 0;
    if (n >= 8) {
        f32x8 l8 = load8(x), h8 = l8;
        for (; i + 8 <= n; i += 8) {
            const f32x8 v = load8(x + i);
            l8 = v < l8 ? v : l8;
            h8 = v > h8 ? v : h8;
        }
        for (int j = 0; j < 8; ++j) l = std::min(l, l8[j]), h = std::max(h, h8[j]);
    }
    for (; i < n; ++i) l = std::min(l, x[i]), h = std::max(h, x[i]);
    *lo = l, *hi = h;
}

// The seed's V channel and OpenCV's 8-bit HSV->BGR, per pixel, into three planes.
// V: cv2.normalize(NORM_MINMAX) on float32 (x * scale + shift, fused where OpenCV's convertTo
// fuses), then `.astype(uint8)`, which truncates.
// BGR: OpenCV converts the first `vector_cols` pixels of each row (a multiple of 8) with its
// vector path, whose float formula is reproduced here (truncating to 8 bit; S is 255, so
// s = 255 * (1/255) = 1 exactly; float -> int -> float is trunc for 0 <= h <= 6); the other
// pixels of the row go through its rounding scalar loop, tabulated in `tail_lut` as
// [hue * 256 + V] -> (B, G, R).
void MICROEXP_BGR_FN(const std::uint8_t* hue, const float* mag, int rows, int cols,
                     int vector_cols, float scale, float shift, const std::uint8_t (*tail_lut)[3],
                     std::uint8_t* b_out, std::uint8_t* g_out, std::uint8_t* r_out) {
    const float hscale = 6.0f / 180, inv255 = 1.0f / 255.0f, s = 255.f * inv255;
    const f32x8 scale8 = f32x8{} + scale, shift8 = f32x8{} + shift;
    for (int row = 0; row < rows; ++row) {
        const std::ptrdiff_t start = (std::ptrdiff_t)row * cols;
        for (std::ptrdiff_t i = start; i < start + vector_cols; i += 8) {
            const f32x8 v = to_float(clamp_u8(trunc_to_int(
                                MICROEXP_MAD8(load8(mag + i), scale8, shift8)))) * inv255;
            f32x8 h = load8(hue + i) * hscale;
            const f32x8 pre = to_float(trunc_to_int(h));
            h = h - pre;
            const f32x8 t0 = v, t1 = v * (1.f - s), t2 = v * (1.f - s * h),
                        t3 = v * (1.f - s * (1.f - h));
            const i32x8 sector = trunc_to_int(pre - to_float(trunc_to_int(pre * (1.0f / 6.0f))) * 6.0f);
            // Which of t0..t3 each channel takes in each sector.
            f32x8 b = t1;
            b = sector == 2 ? t3 : b;
            b = (sector == 3) | (sector == 4) ? t0 : b;
            b = sector == 5 ? t2 : b;
            f32x8 g = t1;
            g = sector == 0 ? t3 : g;
            g = (sector == 1) | (sector == 2) ? t0 : g;
            g = sector == 3 ? t2 : g;
            f32x8 r = t0;
            r = sector == 1 ? t2 : r;
            r = (sector == 2) | (sector == 3) ? t1 : r;
            r = sector == 4 ? t3 : r;
            store8(b_out + i, clamp_u8(trunc_to_int(b * 255.0f)));
            store8(g_out + i, clamp_u8(trunc_to_int(g * 255.0f)));
            store8(r_out + i, clamp_u8(trunc_to_int(r * 255.0f)));
        }
        for (std::ptrdiff_t i = start + vector_cols; i < start + cols; ++i) {
            int vi = (int)MICROEXP_MAD(mag[i], scale, shift);
            vi = std::clamp(vi, 0, 255);
            const std::uint8_t* px = tail_lut[hue[i] * 256 + vi];
            b_out[i] = px[0], g_out[i] = px[1], r_out[i] = px[2];
        }
    }
}

}  // namespace microexp
