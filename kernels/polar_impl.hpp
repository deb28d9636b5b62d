// Body of the flow -> (hue, magnitude) pass, included by polar_generic.cpp and polar_fma.cpp.
// It reproduces OpenCV's cartToPolar(angleInDegrees=true) vector path, whose polynomial
// uses fused multiply-adds on CPUs that have them, and then the seed's `(ang / 2).astype(uint8)`.
// The includer defines MICROEXP_MAD(a, b, c) (fused or not) and the two function names.
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>

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

// The seed's V channel: cv2.normalize(NORM_MINMAX) on float32 (x * scale + shift, fused where
// OpenCV's convertTo fuses), then `.astype(uint8)`, which truncates.
void MICROEXP_VALUE_FN(const float* mag, std::ptrdiff_t n, float scale, float shift,
                       std::uint8_t* value) {
    for (std::ptrdiff_t i = 0; i < n; ++i) {
        const int v = (int)MICROEXP_MAD(mag[i], scale, shift);
        value[i] = (std::uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

}  // namespace microexp
