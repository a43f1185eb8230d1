// Training: the loss falls on a small corpus, and --resume reproduces an uninterrupted run exactly.
#include "train/trainer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "io/atomic_file.h"
#include "train/schedule.h"
#include "../test_util.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

ModelConfig tiny() {
  ModelConfig c = test::tiny_moe_config();
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.router_z_loss_coef = 0.001f;
  return c;
}

// tiny() with 3 layers, of which `layers` are PEER layers of N experts (2 heads x top-4, key dim 8).
ModelConfig tiny_peer(int64_t N, std::vector<int> layers) {
  ModelConfig c = tiny();
  c.num_hidden_layers = 3;
  c.ffn_type = "peer";
  c.peer_num_experts = N;
  c.peer_heads = 2;
  c.peer_top_k = 4;
  c.peer_key_dim = 8;
  c.peer_layers = std::move(layers);
  c.validate("test");
  return c;
}

std::string make_corpus(const std::string& dir) {
  fs::create_directories(dir);
  std::string text;
  for (int i = 0; i < 200; ++i) text += "the quick brown fox jumps over the lazy dog " + std::to_string(i % 7) + "\n";
  atomic_write_file(dir + "/a.txt", text);
  return dir + "/a.txt";
}

std::string tmpdir(const std::string& name) {
  const std::string d = test::fresh_dir("train_" + name);
  fs::remove_all(d);  // the trainer creates its output directories itself
  return d;
}

TEST(Trainer, LossFalls) {
  const std::string dir = tmpdir("falls");
  TextCorpus corpus = TextCorpus::load({make_corpus(dir + "/data")});
  auto model = std::make_unique<DecoderLM>(tiny());
  model->init_weights(0);
  TrainConfig tc{.steps = 60, .batch_size = 8, .context = 32, .lr = 1e-2f, .eval_every = 0, .save_every = 0, .out_dir = dir + "/out"};
  Trainer t(tc, std::move(model), corpus);
  std::vector<double> losses;
  t.run([&](const StepReport& r) { losses.push_back(r.nll); });
  ASSERT_EQ(losses.size(), 60u);
  const double first = (losses[0] + losses[1] + losses[2]) / 3, last = (losses[57] + losses[58] + losses[59]) / 3;
  EXPECT_NEAR(first, std::log(256.0), 0.5);  // starts near uniform over bytes
  EXPECT_LT(last, first * 0.5) << "first " << first << " last " << last;
  EXPECT_TRUE(fs::exists(dir + "/out/model.safetensors"));
  EXPECT_TRUE(fs::exists(trainer_state_path(dir + "/out", 60)));
}

// Trains 12 steps in one go and as 5 + a resumed 7: the losses must match bit for bit.
void expect_resume_reproduces(const std::string& name, const ModelConfig& mc) {
  const std::string dir = tmpdir(name);
  TextCorpus corpus = TextCorpus::load({make_corpus(dir + "/data")});
  TrainConfig tc{.steps = 12, .batch_size = 4, .context = 16, .lr = 5e-3f, .eval_every = 6, .save_every = 0, .out_dir = ""};
  auto run = [&](const std::string& out, int64_t stop_after, bool resume) {
    TrainConfig c = tc;
    c.out_dir = out;
    c.stop_after = stop_after;
    std::unique_ptr<Trainer> t;
    if (resume) {
      t = Trainer::resume(c, corpus);
    } else {
      auto m = std::make_unique<DecoderLM>(mc);
      m->init_weights(c.seed);
      t = std::make_unique<Trainer>(c, std::move(m), corpus);
    }
    std::vector<double> losses;
    t->run([&](const StepReport& r) { losses.push_back(r.loss); });
    return losses;
  };
  const auto full = run(dir + "/full", 0, false);
  const auto first = run(dir + "/split", 5, false);
  ASSERT_EQ(first.size(), 5u);
  const auto rest = run(dir + "/split", 0, true);
  ASSERT_EQ(rest.size(), 7u);
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(first[i], full[i]) << "step " << i + 1;
  for (size_t i = 0; i < 7; ++i) EXPECT_EQ(rest[i], full[5 + i]) << "step " << i + 6;
  // The metrics file holds each step once.
  std::ifstream in(dir + "/split/metrics.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) ++lines;
  EXPECT_EQ(lines, 12);
}

TEST(Trainer, ResumeReproducesUninterruptedRun) { expect_resume_reproduces("resume", tiny()); }

// Noisy top-k gating draws new noise after every step: a resumed run draws the noise of the steps
// it continues with, not the first steps' again.
TEST(Trainer, ResumeReproducesUninterruptedRunWithNoisyGating) {
  ModelConfig c = tiny();
  c.router = "noisy_topk";
  expect_resume_reproduces("resume_noisy", c);
}

// PEER: the lazy-Adam moments of the row-sparse expert tables, the sub-keys' scaled rate and the
// batch-norm running statistics all survive a save and resume.
TEST(Trainer, ResumeReproducesUninterruptedRunWithPEER) {
  const ModelConfig c = tiny_peer(1024, {1});
  ASSERT_TRUE(c.peer_batch_norm);
  expect_resume_reproduces("resume_peer", c);
}

// Validation steps report each PEER layer's retrieval statistics (and log them); other steps do not.
TEST(Trainer, ValidationReportsPEERUsage) {
  const std::string dir = tmpdir("peer_usage");
  TextCorpus corpus = TextCorpus::load({make_corpus(dir + "/data")});
  auto model = std::make_unique<DecoderLM>(tiny_peer(256, {0, 2}));
  model->init_weights(0);
  TrainConfig tc{.steps = 4, .batch_size = 4, .context = 16, .eval_every = 2, .save_every = 0, .out_dir = dir + "/out"};
  Trainer t(tc, std::move(model), corpus);
  std::vector<StepReport> reps;
  t.run([&](const StepReport& r) { reps.push_back(r); });
  ASSERT_EQ(reps.size(), 4u);
  for (const StepReport& r : reps) {
    if (!r.has_val) {
      EXPECT_TRUE(r.peer_layers.empty()) << r.step;
      continue;
    }
    EXPECT_EQ(r.peer_layers, (std::vector<int>{0, 2}));
    ASSERT_EQ(r.peer_fraction_used.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
      EXPECT_GT(r.peer_fraction_used[i], 0.0);
      EXPECT_LE(r.peer_fraction_used[i], 1.0);
      EXPECT_GE(r.peer_kl_from_uniform[i], 0.0);
      EXPECT_LE(r.peer_kl_from_uniform[i], std::log(256.0) + 1e-9);  // KL from uniform <= log N
      EXPECT_GE(r.peer_head_overlap[i], 0.0);
      EXPECT_LE(r.peer_head_overlap[i], 1.0);
    }
  }
  EXPECT_TRUE(reps[1].has_val && reps[3].has_val && !reps[0].has_val);
  // Step 4's figures are those of the final weights on the validation text, nothing more.
  const std::vector<PEERUsage> again = t.validate().peer_usage;
  ASSERT_EQ(again.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(again[i].fraction_used(), reps[3].peer_fraction_used[i]);
    EXPECT_EQ(again[i].kl_from_uniform(), reps[3].peer_kl_from_uniform[i]);
    EXPECT_EQ(again[i].head_overlap(), reps[3].peer_head_overlap[i]);
  }
  std::ifstream in(dir + "/out/metrics.jsonl");
  std::string line;
  int with_usage = 0;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("peer_fraction_used")) {
      ++with_usage;
      EXPECT_TRUE(j.contains("val_loss"));
      EXPECT_EQ(j["peer_layers"], nlohmann::json({0, 2}));
    }
  }
  EXPECT_EQ(with_usage, 2);
}

TEST(Trainer, StopFlagSavesACheckpoint) {
  const std::string dir = tmpdir("stop");
  TextCorpus corpus = TextCorpus::load({make_corpus(dir + "/data")});
  auto model = std::make_unique<DecoderLM>(tiny());
  model->init_weights(0);
  TrainConfig tc{.steps = 50, .batch_size = 2, .context = 8, .eval_every = 0, .save_every = 0, .out_dir = dir + "/out"};
  Trainer t(tc, std::move(model), corpus);
  std::atomic<bool> stop{false};
  const int64_t end = t.run([&](const StepReport& r) { if (r.step == 3) stop = true; }, &stop);
  EXPECT_EQ(end, 3);
  EXPECT_TRUE(fs::exists(trainer_state_path(dir + "/out", 3)));
}

TEST(Schedule, WarmupThenCosine) {
  LRSchedule s{.max_lr = 1.0f, .min_lr = 0.1f, .warmup_steps = 10, .total_steps = 110};
  EXPECT_FLOAT_EQ(s.at(1), 0.1f);
  EXPECT_FLOAT_EQ(s.at(10), 1.0f);
  EXPECT_NEAR(s.at(60), 0.55f, 1e-6);
  EXPECT_NEAR(s.at(110), 0.1f, 1e-6);
}

TEST(AdamW, FirstStepMatchesHandComputation) {
  Param p("w", {2});
  p.w[0] = 1.0f, p.w[1] = -2.0f;
  p.g[0] = 0.5f, p.g[1] = -0.25f;
  AdamW opt({&p}, {.weight_decay = 0.1f});
  opt.step(0.01f);
  // Bias-corrected first step: update = lr * g / (|g| + eps) = lr * sign(g); decay w *= 1 - lr*wd.
  EXPECT_NEAR(p.w[0], 1.0f * (1 - 0.001f) - 0.01f, 1e-6);
  EXPECT_NEAR(p.w[1], -2.0f * (1 - 0.001f) + 0.01f, 1e-6);
}

TEST(AdamW, LrScaleMultipliesTheStepNotTheDecay) {
  Param p("w", {1}), q("w", {1});
  p.w[0] = q.w[0] = 1.0f;
  p.g[0] = q.g[0] = 0.5f;
  q.lr_scale = 0.25f;
  AdamW opt({&p, &q}, {.weight_decay = 0.1f});
  opt.step(0.01f);
  EXPECT_NEAR(p.w[0], 1.0f * (1 - 0.001f) - 0.01f, 1e-6);
  EXPECT_NEAR(q.w[0], 1.0f * (1 - 0.001f) - 0.0025f, 1e-6);
}

TEST(TextCorpus, SplitsEveryFileAndSkipsIndexFiles) {
  const std::string dir = tmpdir("corpus");
  fs::create_directories(dir + "/sub");
  atomic_write_file(dir + "/a", std::string(100, 'a'));
  atomic_write_file(dir + "/a.dat", std::string(10, '\0'));
  atomic_write_file(dir + "/sub/b", std::string(200, 'b'));
  fs::create_symlink(dir + "/a", dir + "/a.u8");
  TextCorpus c = TextCorpus::load({dir}, {.val_fraction = 0.1});
  EXPECT_EQ(c.files().size(), 2u);
  EXPECT_EQ(c.train(), std::string(90, 'a') + std::string(180, 'b'));
  EXPECT_EQ(c.val(), std::string(10, 'a') + std::string(20, 'b'));
  EXPECT_THROW(TextCorpus::load({dir + "/missing"}), Error);
}

TEST(EvalWindows, ConsecutiveNonOverlappingLastShorter) {
  auto w = eval_windows(10, 4);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[2], (std::pair<int64_t, int64_t>{8, 2}));
}

TEST(AdamW, RowSparseParametersUpdateOnlyTheirRows) {
  // Lazy Adam: the rows with a gradient take exactly the dense update; the others do not move.
  Param dense("d", {4, 3}), sparse("s", {4, 3});
  sparse.row_sparse = true;
  sparse.zero_grad();
  for (int i = 0; i < 12; ++i) dense.w[i] = sparse.w[i] = 0.1f * float(i) - 0.5f;
  const float gr[6] = {0.5f, -1.0f, 0.25f, 2.0f, -0.5f, 1.0f};  // rows 1 and 3
  sparse.add_row_grads({1, 3}, gr);
  for (int c = 0; c < 3; ++c) dense.g[3 + c] = gr[c], dense.g[9 + c] = gr[3 + c];
  const Tensor w0 = sparse.w;
  AdamW a({&dense}, {.weight_decay = 0.0f}), b({&sparse}, {.weight_decay = 0.0f});
  a.step(0.01f);
  b.step(0.01f);
  for (int i = 0; i < 12; ++i) {
    const bool touched = (i / 3 == 1) || (i / 3 == 3);
    if (touched) EXPECT_FLOAT_EQ(sparse.w[i], dense.w[i]) << i;
    else EXPECT_EQ(sparse.w[i], w0[i]) << i;
  }
  // The gradient norm counts the sparse rows once.
  double sq = 0;
  for (float g : gr) sq += double(g) * g;
  EXPECT_NEAR(clip_grad_norm({&sparse}, 0.0), std::sqrt(sq), 1e-6);
  sparse.zero_grad();
  EXPECT_TRUE(sparse.rows.empty());
  EXPECT_EQ(sparse.g.numel(), 0);
}

TEST(AdamW, RowSparseMomentsSkipTheStepsThatDoNotTouchTheirRow) {
  // SparseAdam semantics: row 0 has gradients at steps 1 and 3 only; at step 3 its moments are step
  // 1's moments updated once (not decayed through step 2), with bias correction by the global step.
  Param p("s", {2, 1});
  p.row_sparse = true;
  p.w[0] = 1.0f, p.w[1] = -1.0f;
  AdamW opt({&p}, {.beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.0f});
  const float lr = 0.1f, g1 = 0.5f, g2 = 2.0f, g3 = -1.0f;
  auto step = [&](int64_t row, float g) {
    p.zero_grad();
    p.add_row_grads({row}, &g);
    opt.step(lr);
  };
  step(0, g1);
  step(1, g2);
  const float w_after_2 = p.w[0];
  step(0, g3);
  double m = 0, v = 0, w = 1.0;
  for (auto [t, g] : {std::pair{1, double(g1)}, std::pair{3, double(g3)}}) {
    m = 0.9 * m + 0.1 * g;
    v = 0.95 * v + 0.05 * g * g;
    w -= lr * (m / (1 - std::pow(0.9, t))) / (std::sqrt(v / (1 - std::pow(0.95, t))) + 1e-8);
    if (t == 1) {
      EXPECT_NEAR(w_after_2, w, 1e-6);  // step 2 left row 0 alone
    }
  }
  EXPECT_NEAR(p.w[0], w, 1e-6);
}

}  // namespace
}  // namespace moe
