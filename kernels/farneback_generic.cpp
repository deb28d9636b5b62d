// The Farneback row loops for any CPU (four-lane vectors: SSE2, NEON).
#define MICROEXP_FB_NS fb_generic
#define MICROEXP_FB_LANES 4
#define MICROEXP_FB_GETTER farneback_rows_generic
#include "farneback_rows_impl.hpp"
