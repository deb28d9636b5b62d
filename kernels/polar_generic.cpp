// cartToPolar emulation for CPUs without FMA (OpenCV's SSE/baseline path multiplies and adds).
#if defined(__aarch64__)
// OpenCV's NEON intrinsics fuse multiply-add on 64-bit ARM.
#define MICROEXP_MAD(a, b, c) std::fma((a), (b), (c))
#define MICROEXP_MAD8(a, b, c) fma8((a), (b), (c))
#else
#define MICROEXP_MAD(a, b, c) ((a) * (b) + (c))
#define MICROEXP_MAD8(a, b, c) ((a) * (b) + (c))
#endif
#define MICROEXP_POLAR_FN polar_hue_mag_generic
#define MICROEXP_MINMAX_FN minmax_generic
#define MICROEXP_BGR_FN value_bgr_generic
#include "polar_impl.hpp"
