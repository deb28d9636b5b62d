// cartToPolar emulation for x86-64 CPUs with AVX2+FMA, where OpenCV dispatches its fused path.
// This file alone is compiled with -mavx2 -mfma; it is only called after a CPU check.
#include <immintrin.h>
#define MICROEXP_MAD(a, b, c) std::fma((a), (b), (c))
#define MICROEXP_MAD8(a, b, c) ((f32x8)_mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(c)))
#define MICROEXP_POLAR_FN polar_hue_mag_fma
#define MICROEXP_MINMAX_FN minmax_fma
#define MICROEXP_BGR_FN value_bgr_fma
#include "polar_impl.hpp"
