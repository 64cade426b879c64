// a * b + c rounded as the vectorised loops round it: fused (one rounding) where the target has FMA
// instructions, where the compiler contracts every vectorised `s += x * y` into one, and as a
// product then a sum where it has none. Scalar loops whose products the compiler may or may not
// fuse (it depends on how it schedules them, and differed between the int32 and int64 index
// instantiations of one kernel) call this instead, so that their sums are the same bits in every
// instantiation and equal the vectorised loops' sums of the same terms.
#pragma once

#include <cmath>

namespace fastelbo {

inline double multiply_add(double a, double b, double c) {
#if defined(__FMA__) || defined(__AVX512F__)
    return std::fma(a, b, c);
#else
    return a * b + c;  // no FMA instruction, so nothing to contract into
#endif
}

}  // namespace fastelbo
