#pragma once
// Scores of predictions P against targets Y (both [n, m], as Mixture::predict and
// TabularEncoding::encode_targets give them).
#include "classic/expert.h"

namespace moe::classic {

double accuracy(const Mat& P, const Mat& Y);  // share of rows whose largest entries agree
double mean_squared_error(const Mat& P, const Mat& Y);
double r_squared(const Mat& P, const Mat& Y);  // 1 - MSE / variance of Y (0 when Y is constant)

}  // namespace moe::classic
