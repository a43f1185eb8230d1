#include "classic/expert.h"

#include <cmath>
#include <map>

#include "classic/linear_expert.h"
#include "classic/mlp_expert.h"
#include "classic/softmax_expert.h"
#include "classic/tree_expert.h"
#include "core/error.h"

namespace moe::classic {
namespace {
// The built-in kinds, one line each (named here rather than self-registered from their files: a
// static library drops object files that nothing references).
std::map<std::string, ExpertFactory>& registry() {
  static std::map<std::string, ExpertFactory> r = {
      {"linear", make_linear_expert},
      {"logistic", make_softmax_expert},
      {"mlp", make_mlp_expert},
      {"tree", make_tree_expert},
  };
  return r;
}
}  // namespace

void register_expert(const std::string& kind, ExpertFactory factory) { registry()[kind] = std::move(factory); }

std::vector<std::string> expert_kinds() {
  std::vector<std::string> out;
  for (const auto& [k, f] : registry()) out.push_back(k);
  return out;
}

std::unique_ptr<Expert> make_expert(const std::string& kind, const ExpertSpec& spec) {
  auto it = registry().find(kind);
  if (it == registry().end()) {
    std::string known;
    for (const auto& k : expert_kinds()) known += (known.empty() ? "" : ", ") + k;
    throw Error("[classic] unknown expert kind '" + kind + "' (known: " + known + ")");
  }
  if (spec.inputs <= 0 || spec.outputs <= 0)
    throw Error("[classic] expert '" + kind + "' needs positive input and output sizes");
  return it->second(spec);
}

double numeric_option(const ExpertSpec& spec, const std::string& kind, const std::string& key, double fallback) {
  if (spec.options.is_null()) return fallback;
  if (!spec.options.is_object()) throw Error("[classic] options of expert '" + kind + "' must be a JSON object");
  auto it = spec.options.find(key);
  if (it == spec.options.end()) return fallback;
  if (!it->is_number()) throw Error("[classic] option '" + key + "' of expert '" + kind + "' must be a number");
  return it->get<double>();
}

int64_t integer_option(const ExpertSpec& spec, const std::string& kind, const std::string& key, int64_t fallback, int64_t lo, int64_t hi) {
  const double v = numeric_option(spec, kind, key, double(fallback));
  if (!(v >= double(lo) && v <= double(hi)) || v != std::floor(v))
    throw Error("[classic] option '" + key + "' of expert '" + kind + "' must be a whole number in [" + std::to_string(lo) + ", " +
                std::to_string(hi) + "]");
  return int64_t(v);
}

const Mat& parameter(const std::map<std::string, Mat>& p, const std::string& name, int64_t rows, int64_t cols) {
  auto it = p.find(name);
  if (it == p.end()) throw Error("[classic] parameter '" + name + "' is missing");
  if (it->second.rows() != rows || it->second.cols() != cols)
    throw Error("[classic] parameter '" + name + "' is " + std::to_string(it->second.rows()) + " x " +
                std::to_string(it->second.cols()) + ", expected " + std::to_string(rows) + " x " + std::to_string(cols));
  if (!it->second.allFinite()) throw Error("[classic] parameter '" + name + "' holds NaN or Inf");
  return it->second;
}

Vec Expert::flat_parameters() const { throw Error("[classic] expert kind '" + kind() + "' is not differentiable (train with EM)"); }
int64_t Expert::flat_size() const { return flat_parameters().size(); }
void Expert::set_flat_parameters(const Vec&) { flat_parameters(); }
Vec Expert::flat_gradient(const Mat&, const Mat&, const Vec&) const { return flat_parameters(); }

Mat with_bias(const Mat& X) {
  Mat out(X.rows(), X.cols() + 1);
  out.col(0).setOnes();
  out.rightCols(X.cols()) = X;
  return out;
}

}  // namespace moe::classic
