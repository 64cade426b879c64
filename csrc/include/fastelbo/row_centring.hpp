// Where a mixture family takes its moments, and which rows share an expansion point. Both are the
// family's concern (the Gaussian families expand runs of rows about a home component's point; every
// family moves its moments to reference points the caller chose), so they are given to the family
// with its parameters, and the generic pass (mixture_pass.hpp) knows rows, weights and outputs only.
#pragma once

#include <cstdint>

namespace fastelbo {

struct RowCentring {
    const double* reference = nullptr;   // [K, D] the points moments are taken about (with moments)
    const std::int64_t* home = nullptr;  // [N] each row's home component (expansion families), optional
};

}  // namespace fastelbo
