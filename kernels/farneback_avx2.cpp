// The Farneback row loops for x86-64 CPUs with AVX2. This file alone is compiled with -mavx2
// (and -mfma, which -ffp-contract=off keeps from changing any result); it is only called after
// a CPU check.
#define MICROEXP_FB_NS fb_avx2
#define MICROEXP_FB_LANES 8
#define MICROEXP_FB_GETTER farneback_rows_avx2
#include "farneback_rows_impl.hpp"
