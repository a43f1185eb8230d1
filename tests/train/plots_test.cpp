// Training plots: SVG files are written from a metrics file, survive a line cut by a crash, and
// carry one heat-map panel per MoE layer.
#include "train/plots.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"

namespace moe {
namespace {

TEST(Plots, WritesLossAndExpertLoadSvg) {
  const std::string d = ::testing::TempDir() + "/moe_plots_" + std::to_string(::getpid());
  std::filesystem::create_directories(d);
  std::string m;
  for (int s = 1; s <= 30; ++s)
    m += "{\"step\":" + std::to_string(s) + ",\"nll\":" + std::to_string(5.0 - 0.1 * s) +
         (s % 10 == 0 ? ",\"val_loss\":" + std::to_string(5.2 - 0.1 * s) : std::string()) +
         ",\"expert_tokens\":[[10,20,30,40],[25,25,25,25]]}\n";
  m += "{\"step\":31,\"nll\":";  // cut by a crash
  atomic_write_file(d + "/metrics.jsonl", m);
  write_training_plots(d);
  const std::string loss = read_file(d + "/loss.svg"), load = read_file(d + "/expert_load.svg");
  EXPECT_NE(loss.find("<svg"), std::string::npos);
  EXPECT_NE(loss.find("validation"), std::string::npos);
  EXPECT_NE(load.find("layer 1"), std::string::npos);
  EXPECT_EQ(load.find("layer 2"), std::string::npos);
  EXPECT_THROW(write_training_plots(d + "/missing"), Error);
}

}  // namespace
}  // namespace moe
