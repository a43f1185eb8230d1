// GoogleTest main of the distributed tests: run as one process (a single rank) or under mpirun,
// where every rank runs every test and rank 0 prints. The exit code is the worst over all ranks.
#include <gtest/gtest.h>

#include "dist/communicator.h"

int main(int argc, char** argv) {
  moe::dist::init_world(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  const moe::dist::Communicator world = moe::dist::Communicator::world();
  if (world.rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int rc = RUN_ALL_TESTS();
  return int(world.max(rc));
}
