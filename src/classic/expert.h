#pragma once
// The classic mixture's experts (Jacobs, Jordan, Nowlan & Hinton 1991): any model that can be fitted
// on weighted samples, predict, and score a sample by its log-likelihood. Kinds are registered by
// name (linear_expert.cpp, softmax_expert.cpp, ...), so a user adds one with register_expert().
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <Eigen/Dense>
#include <nlohmann/json.hpp>

namespace moe::classic {

// Small dense problems (samples x features): double precision, Eigen for the solves.
using Mat = Eigen::MatrixXd;
using Vec = Eigen::VectorXd;

enum class Task { regression, classification };

// Targets are a matrix Y [n, m]: regression m = 1 (the value); classification one-hot rows over m
// classes (soft rows, summing to 1, are allowed: the gate is fitted on posteriors that way).
class Expert {
 public:
  virtual ~Expert() = default;
  virtual std::string kind() const = 0;
  // Fits on X [n, d], Y [n, m] with sample weights w [n] >= 0 (the E-step's posteriors), starting
  // from the current parameters where the method is iterative. Must not decrease
  // sum_i w_i log p(y_i | x_i) - penalty() from the current parameters (EM's monotonicity).
  virtual void fit(const Mat& X, const Mat& Y, const Vec& w) = 0;
  // [n, m]: the mean (regression) or class probabilities (classification).
  virtual Mat predict(const Mat& X) const = 0;
  // [n]: log p(y_i | x_i).
  virtual Vec log_likelihood(const Mat& X, const Mat& Y) const = 0;
  // The regulariser the fit maximises against (subtracted from the weighted log-likelihood).
  virtual double penalty() const { return 0.0; }
  // The fitted parameters by name, for saving; set_parameters restores them (moe::Error on a
  // missing name or a wrong shape).
  virtual std::map<std::string, Mat> parameters() const = 0;
  virtual void set_parameters(const std::map<std::string, Mat>& p) = 0;
  // [n, m]: log of predict() for classifiers (the mixture's gates use it; kinds with logits override
  // it to stay finite where a probability underflows).
  virtual Mat log_predict(const Mat& X) const { return predict(X).array().log(); }

  // Differentiable kinds (needed by backpropagation; EM needs none of this): every parameter in one
  // vector, and the gradient of sum_i w_i log p(y_i | x_i) - penalty() with respect to it.
  virtual bool differentiable() const { return false; }
  virtual Vec flat_parameters() const;
  virtual int64_t flat_size() const;  // flat_parameters().size(), without the copy
  virtual void set_flat_parameters(const Vec& theta);
  virtual Vec flat_gradient(const Mat& X, const Mat& Y, const Vec& w) const;
};

// p[name], checked to be rows x cols; moe::Error naming what is wrong otherwise.
const Mat& parameter(const std::map<std::string, Mat>& p, const std::string& name, int64_t rows, int64_t cols);

struct ExpertSpec {
  Task task = Task::regression;
  int64_t inputs = 0;   // d
  int64_t outputs = 1;  // m
  nlohmann::json options = nlohmann::json::object();  // kind-specific, e.g. {"l2": 1e-3}
  uint64_t seed = 1;  // for kinds with a random start (an MLP's weights)
};
using ExpertFactory = std::function<std::unique_ptr<Expert>(const ExpertSpec&)>;

// Registers a kind (replacing one of the same name). Thread-compatible: register before use.
void register_expert(const std::string& kind, ExpertFactory factory);
// A new, unfitted expert of a registered kind; moe::Error naming the known kinds otherwise.
std::unique_ptr<Expert> make_expert(const std::string& kind, const ExpertSpec& spec);
std::vector<std::string> expert_kinds();

// A numeric option of spec.options (a JSON object or null), or fallback; moe::Error naming the kind
// and the key when it is not a number or options is not an object.
double numeric_option(const ExpertSpec& spec, const std::string& kind, const std::string& key, double fallback);
// The same for a whole number in [lo, hi] (converting an out-of-range double is undefined, so it is
// checked first); moe::Error naming the kind, the key and the range otherwise.
int64_t integer_option(const ExpertSpec& spec, const std::string& kind, const std::string& key, int64_t fallback, int64_t lo, int64_t hi);

// X with a leading column of ones: [n, d + 1].
Mat with_bias(const Mat& X);

}  // namespace moe::classic
