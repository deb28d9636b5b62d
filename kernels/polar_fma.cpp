// cartToPolar emulation for x86-64 CPUs with AVX2+FMA, where OpenCV dispatches its fused path.
// This file alone is compiled with -mavx2 -mfma; it is only called after a CPU check.
#define MICROEXP_MAD(a, b, c) std::fma((a), (b), (c))
#define MICROEXP_POLAR_FN polar_hue_mag_fma
#define MICROEXP_VALUE_FN value_channel_fma
#include "polar_impl.hpp"
