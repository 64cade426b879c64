// The additive sufficient statistics of one E-step pass over a mixture of factor analysers.
//
// With posteriors q_n(c, z) = q_nc N(z; m_nc, Sigma_c) (Sigma_c the same for every n), the closed-form
// M-step of the augmented loadings [W_c, mu_c] and of the noise Psi_c needs, per component, sums over
// rows of q_nc times x~, x~^2, m x~^T, m and m m^T, where x~ = x - r_c is the row about the caller's
// reference point r_c (an explicit argument of the pass) and m = m_nc is the posterior mean of z:
//   nk[c]   = sum_n w_n q_nc
//   sx[c]   = sum_n w_n q_nc x~_n                 [K, D]
//   sxx[c]  = sum_n w_n q_nc x~_n^2 (elementwise)  [K, D]      (only the diagonal of the scatter)
//   szx[c]  = sum_n w_n q_nc m_nc x~_n^T          [K, H, D]
//   sz[c]   = sum_n w_n q_nc m_nc                 [K, H]
//   szz[c]  = sum_n w_n q_nc m_nc m_nc^T          [K, H, H]
// plus the ELBO terms sum_n w_n, sum_n w_n log p(x_n) and sum_n w_n H[q_n(c)]. All of it is
// O(D H) per point and component (no D x D scatter). Totals are float64.
#pragma once

#include "fastelbo/types.hpp"

namespace fastelbo {

struct FactorAnalyserSums {
    double sum_weight = 0, sum_log_norm = 0, sum_entropy = 0;
    Vector<double> nk;
    RowMatrix<double> sx, sxx;  // [K, D]
    RowMatrix<double> szx;      // [K * H, D]: component c's block is rows c H .. c H + H - 1
    RowMatrix<double> sz;       // [K, H]
    RowMatrix<double> szz;      // [K * H, H]

    // Moments are sized only if `with_moments`; nk always is.
    FactorAnalyserSums(Index K, Index D, Index H, bool with_moments)
        : nk(Vector<double>::Zero(K)),
          sx(RowMatrix<double>::Zero(with_moments ? K : 0, D)),
          sxx(RowMatrix<double>::Zero(with_moments ? K : 0, D)),
          szx(RowMatrix<double>::Zero(with_moments ? K * H : 0, D)),
          sz(RowMatrix<double>::Zero(with_moments ? K : 0, H)),
          szz(RowMatrix<double>::Zero(with_moments ? K * H : 0, H)) {}

    void set_zero() {
        sum_weight = sum_log_norm = sum_entropy = 0;
        nk.setZero();
        sx.setZero();
        sxx.setZero();
        szx.setZero();
        sz.setZero();
        szz.setZero();
    }

    void merge(const FactorAnalyserSums& block) {
        sum_weight += block.sum_weight;
        sum_log_norm += block.sum_log_norm;
        sum_entropy += block.sum_entropy;
        nk += block.nk;
        sx += block.sx;
        sxx += block.sxx;
        szx += block.szx;
        sz += block.sz;
        szz += block.szz;
    }
};

// The layout for the mixture pass (see mixture_pass.hpp).
struct FactorAnalyserSumsLayout {
    using Statistics = FactorAnalyserSums;

    Index K, D, H;

    Statistics make(bool with_moments) const { return Statistics(K, D, H, with_moments); }
    Statistics make_empty() const { return Statistics(0, D, H, false); }
    double partial_size() const { return static_cast<double>(K) * (1 + 2 * D + H * D + H + H * H); }
    void finish(Statistics&) const {}
};

}  // namespace fastelbo
