#include "classic/metrics.h"

#include "core/error.h"

namespace moe::classic {

double accuracy(const Mat& P, const Mat& Y) {
  MOE_ASSERT(P.rows() == Y.rows() && P.cols() == Y.cols() && P.rows() > 0);
  int64_t right = 0;
  for (int64_t i = 0; i < P.rows(); ++i) {
    Eigen::Index p, y;
    P.row(i).maxCoeff(&p);
    Y.row(i).maxCoeff(&y);
    right += p == y;
  }
  return double(right) / double(P.rows());
}

double mean_squared_error(const Mat& P, const Mat& Y) {
  MOE_ASSERT(P.rows() == Y.rows() && P.cols() == Y.cols() && P.rows() > 0);
  return (P - Y).squaredNorm() / double(P.size());
}

double r_squared(const Mat& P, const Mat& Y) {
  const double var = (Y.array() - Y.mean()).square().sum() / double(Y.size());
  return var > 0 ? 1.0 - mean_squared_error(P, Y) / var : 0.0;
}

}  // namespace moe::classic
