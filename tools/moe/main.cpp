// moe: train, evaluate, sample and inspect sparse Mixture-of-Experts language models.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <thread>

#include "commands.h"
#include "core/error.h"
#include "core/stop_signals.h"
#include "dist/communicator.h"
#include "terminal.h"

namespace {

// An error under mpirun: rank 0 reports it; another rank reports its own only if the job is still
// alive a moment later (rank 0 failing the same way ends the job first), so a mistake every rank
// makes prints one line. Then the process leaves without MPI_Finalize, which would wait for ranks
// that may be blocked in a collective: mpirun sees the exit and ends the job.
int fail(int code, const std::string& msg) {
  const moe::dist::Communicator w = moe::dist::Communicator::world();
  if (w.size() > 1 && w.rank() != 0) std::this_thread::sleep_for(std::chrono::seconds(2));
  if (w.size() > 1 && w.rank() != 0) std::fprintf(stderr, "moe: error: rank %d: %s\n", w.rank(), msg.c_str());
  else std::fprintf(stderr, "moe: error: %s\n", msg.c_str());
  std::fflush(stderr);
  std::fflush(stdout);
  if (w.size() > 1) std::_Exit(code);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    moe::route_stop_signals();  // before any thread starts: see core/stop_signals.h
    moe::dist::init_world(&argc, &argv);
  } catch (const moe::Error& e) {
    std::fprintf(stderr, "moe: error: %s\n", e.what());
    return 1;
  }
  if (moe::dist::Communicator::world().rank() != 0) {
    moe::cli::ProgressLine::set_quiet(true);
    if (!std::freopen("/dev/null", "w", stdout)) return 1;
  }
  CLI::App app{"moe: a sparse Mixture-of-Experts engine (train, eval, generate, info, experts, grow, bench, serve-experts, swarm-status, fit, predict, tokenize, chat, serve)", "moe"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "moe 0.1.0");
  // name -> runner: a new command is one entry here plus its file.
  const std::vector<std::pair<std::string, moe::cli::Runner>> commands = {
      {"train", moe::cli::add_train(app)},       {"eval", moe::cli::add_eval(app)},
      {"generate", moe::cli::add_generate(app)}, {"info", moe::cli::add_info(app)},
      {"bench", moe::cli::add_bench(app)},       {"experts", moe::cli::add_experts(app)},
      {"grow", moe::cli::add_grow(app)},         {"serve-experts", moe::cli::add_serve_experts(app)},
      {"swarm-status", moe::cli::add_swarm_status(app)}, {"fit", moe::cli::add_fit(app)},
      {"predict", moe::cli::add_predict(app)},   {"tokenize", moe::cli::add_tokenize(app)},
      {"chat", moe::cli::add_chat(app)},         {"serve", moe::cli::add_serve(app)}};
  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands({})) known = known || sub->get_name() == argv[1];
    if (!known) {
      std::fprintf(stderr, "moe: error: unknown command '%s' (commands: train, eval, generate, info, experts, grow, bench, serve-experts, swarm-status, fit, predict, tokenize, chat, serve)\n", argv[1]);
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return fail(2, std::string(e.what()) + " (see 'moe --help')");
  }
  try {
    for (const auto& [name, run] : commands)
      if (app.got_subcommand(name)) return run();
  } catch (const moe::Error& e) {
    return fail(1, e.what());
  } catch (const std::bad_alloc&) {
    return fail(1, "out of memory");
  } catch (const std::exception& e) {
    return fail(1, e.what());
  }
  return 2;
}
