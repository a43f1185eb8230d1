#pragma once
// The remote expert bank's view of the swarm: an expert's servers from the DHT directory (least
// loaded first); a server that failed a call makes the directory ask the DHT again next time.
#include "net/expert_directory.h"
#include "net/remote_expert_bank.h"

namespace moe::net {

class DirectoryLocator final : public ExpertLocator {
 public:
  explicit DirectoryLocator(ExpertDirectory& dir) : dir_(dir) {}
  std::vector<std::string> addresses(const std::string& uid) override {
    std::vector<std::string> out;
    for (const ExpertRecord& r : dir_.lookup(uid)) out.push_back(r.address);
    return out;
  }
  std::vector<std::vector<std::string>> addresses(const std::vector<std::string>& uids) override {
    std::vector<std::vector<std::string>> out;
    for (const auto& recs : dir_.lookup(uids)) {
      out.emplace_back();
      for (const ExpertRecord& r : recs) out.back().push_back(r.address);
    }
    return out;
  }
  std::optional<std::vector<int>> live_children(const std::string& prefix) override {
    std::vector<int> out;
    for (const auto& [i, recs] : dir_.children(prefix))
      if (!recs.empty()) out.push_back(i);
    return out;
  }
  void failed(const std::string& uid, const std::string&) override { dir_.forget(uid); }

 private:
  ExpertDirectory& dir_;
};

}  // namespace moe::net
