// moe: train, evaluate, sample and inspect sparse Mixture-of-Experts language models.
#include <cstdio>
#include <exception>

#include "commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"moe: a sparse Mixture-of-Experts engine (train, eval, generate, info, experts, grow, bench)", "moe"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "moe 0.1.0");
  moe::cli::Runner train = moe::cli::add_train(app);
  moe::cli::Runner eval = moe::cli::add_eval(app);
  moe::cli::Runner generate = moe::cli::add_generate(app);
  moe::cli::Runner info = moe::cli::add_info(app);
  moe::cli::Runner bench = moe::cli::add_bench(app);
  moe::cli::Runner experts = moe::cli::add_experts(app);
  moe::cli::Runner grow = moe::cli::add_grow(app);
  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands({})) known = known || sub->get_name() == argv[1];
    if (!known) {
      std::fprintf(stderr, "moe: error: unknown command '%s' (commands: train, eval, generate, info, experts, grow, bench)\n", argv[1]);
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
    std::fprintf(stderr, "moe: error: %s (see 'moe --help')\n", e.what());
    return 2;
  }
  try {
    if (app.got_subcommand("train")) return train();
    if (app.got_subcommand("eval")) return eval();
    if (app.got_subcommand("generate")) return generate();
    if (app.got_subcommand("info")) return info();
    if (app.got_subcommand("bench")) return bench();
    if (app.got_subcommand("experts")) return experts();
    if (app.got_subcommand("grow")) return grow();
  } catch (const moe::Error& e) {
    std::fprintf(stderr, "moe: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "moe: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moe: error: %s\n", e.what());
    return 1;
  }
  return 2;
}
