// Asking the caches for memory a loop will read soon, where the hardware prefetcher cannot guess it:
// rows that lie anywhere in a matrix, or columns known only from the data.
#pragma once

#include "fastelbo/types.hpp"

namespace fastelbo {

// Asks for the cache lines of the `count` elements from p (a no-op where the compiler offers no
// prefetch instruction). Prefetching never faults, so p may point anywhere.
template <class T>
inline void prefetch_elements(const T* p, Index count) {
#if defined(__GNUC__) || defined(__clang__)
    const char* bytes = reinterpret_cast<const char*>(p);
    const Index n_bytes = count * static_cast<Index>(sizeof(T));
    for (Index offset = 0; offset < n_bytes; offset += 64) __builtin_prefetch(bytes + offset);
#else
    (void)p;
    (void)count;
#endif
}

// Asks for the cache line of p for writing (a no-op as above): a scattered store then finds its
// line owned, where it would wait for it in the store queue.
template <class T>
inline void prefetch_for_writing(T* p) {
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(p, 1);
#else
    (void)p;
#endif
}

}  // namespace fastelbo
