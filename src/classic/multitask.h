#pragma once
// Multi-task regression with shared experts (Ma et al., KDD 2018, "Modeling Task Relationships in
// Multi-task Learning with Multi-gate Mixture-of-Experts") and its two baselines:
//   mmoe           E expert MLPs shared by the tasks, one softmax gate per task:
//                  tower t's input = sum_k g_tk(x) f_k(x), g_t = softmax(x Wg_t + bg_t)
//   omoe           the same with ONE gate shared by every task
//   shared_bottom  one MLP shared by every task feeding all towers (Caruana 1997)
// Every expert / bottom is d -> hidden, ReLU -> o (linear output); every tower o -> h_t, ReLU -> 1.
// Loss: mean over samples of the sum over tasks of the squared error,
//   L = (1/n) sum_i sum_t (yhat_it - y_it)^2,
// so a task's share of it is its mean squared error. Trained by Adam on mini-batches; the
// gradient is by hand (forward and backward side by side in multitask.cpp).
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "classic/expert.h"

namespace moe::classic {

enum class Architecture { mmoe, omoe, shared_bottom };

// "mmoe", "omoe", "shared_bottom"; moe::Error naming the known ones otherwise.
Architecture parse_architecture(const std::string& name);
std::string architecture_name(Architecture a);

struct MultiTaskConfig {
  Architecture architecture = Architecture::mmoe;
  int64_t inputs = 0;           // d
  int64_t tasks = 2;            // T: one regression target (a column of Y) per task
  int64_t experts = 8;          // E (mmoe, omoe)
  int64_t expert_hidden = 16;   // h_e (mmoe, omoe)
  int64_t bottom_hidden = 0;    // the shared bottom's hidden size (shared_bottom; sized by the
                                // caller to match the others' parameter count)
  int64_t outputs = 16;         // o: an expert's (or the bottom's) output, a tower's input
  int64_t tower_hidden = 8;     // h_t
  uint64_t seed = 1;            // initial weights
};

struct TrainConfig {
  double learning_rate = 1e-3;  // Adam
  double beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8;
  int64_t batch_size = 128;     // the last batch of an epoch may be smaller
  int epochs = 10;
  uint64_t seed = 1;            // the order of the samples in every epoch
  // Called after every epoch with its number (from 0) and training loss, e.g. to score a validation
  // set and keep the best parameters (the model is in its state after that epoch).
  std::function<void(int epoch, double loss)> on_epoch = nullptr;
};

class MultiTaskModel {
 public:
  // Weights: He normal (std sqrt(2 / fan_in)) into ReLUs, Glorot normal (std sqrt(2 / (fan_in +
  // fan_out))) into the linear outputs and the gates, biases 0; all from cfg.seed.
  // moe::Error on a size that is not positive.
  explicit MultiTaskModel(MultiTaskConfig cfg);

  Mat forward(const Mat& X) const;                   // X [n, d] -> [n, T]
  Mat gates(const Mat& X) const;                     // [n, G * E]: gate g's weights in columns g*E..; G = T (mmoe) or 1
  double loss(const Mat& X, const Mat& Y) const;     // Y [n, T]; L above
  // dL/d(every parameter), under the names of parameters().
  std::map<std::string, Mat> gradient(const Mat& X, const Mat& Y) const;

  // Named "experts.K.{w1,b1,w2,b2}", "gates.G.{w,b}" (mmoe: G = task; omoe: G = 0),
  // "bottom.{w1,b1,w2,b2}", "towers.T.{w1,b1,w2,b2}"; weights [in, out], biases [1, out].
  // set_parameters needs every name at its shape (moe::Error otherwise).
  std::map<std::string, Mat> parameters() const;
  void set_parameters(const std::map<std::string, Mat>& p);
  int64_t parameter_count() const;

  // Adam over shuffled mini-batches from the current parameters. Returns each epoch's training
  // loss: the mean of L over that epoch's batches weighted by their sizes (what the parameters
  // scored while they were being updated, as Keras reports it; no extra pass over the data).
  std::vector<double> train(const Mat& X, const Mat& Y, const TrainConfig& tc);

  const MultiTaskConfig& config() const { return cfg_; }

 private:
  struct Mlp {  // indices into params_: w1 [in, h], b1 [1, h], w2 [h, out], b2 [1, out]
    size_t w1, b1, w2, b2;
  };
  struct Gate {  // w [d, E], b [1, E]
    size_t w, b;
  };
  struct MlpPass {
    Mat A, H, O;  // pre-activation [n, h], ReLU(A), output [n, out]
  };
  struct Pass {
    std::vector<MlpPass> experts;  // E (or the single bottom)
    std::vector<Mat> gates;        // per gate: softmax weights [n, E]
    std::vector<Mat> tower_in;     // per task: [n, o]
    std::vector<MlpPass> towers;   // per task: O [n, 1]
  };

  Mlp add_mlp(const std::string& prefix, int64_t in, int64_t hidden, int64_t out);
  MlpPass mlp_forward(const Mlp& m, const Mat& X) const;
  // Adds this MLP's weight gradients to grads, and sets *dX = dL/dX unless dX is null (the experts'
  // input is the data: that product would be wasted).
  void mlp_backward(const Mlp& m, const MlpPass& pass, const Mat& X, const Mat& dO, std::vector<Mat>& grads,
                    Mat* dX) const;
  Pass run(const Mat& X) const;
  // dL/d params_ for the batch, and L.
  double backward(const Mat& X, const Mat& Y, std::vector<Mat>& grads) const;
  void check_inputs(const Mat& X) const;
  void check_targets(const Mat& X, const Mat& Y) const;
  size_t gate_of(int64_t task) const { return cfg_.architecture == Architecture::mmoe ? size_t(task) : 0; }

  MultiTaskConfig cfg_;
  std::vector<std::string> names_;
  std::vector<Mat> params_;
  std::vector<Mlp> experts_;  // mmoe / omoe: E; shared_bottom: the bottom alone
  std::vector<Gate> gates_;   // mmoe: T; omoe: 1; shared_bottom: none
  std::vector<Mlp> towers_;   // T
};

}  // namespace moe::classic
