#pragma once
// The remote expert bank's view of the swarm: an expert's servers from the DHT directory (least
// loaded first). A failed server's records are not dropped: they expire on their own (2T) and the
// ban list stops the calls meanwhile; dropping them made every failure cost each layer a blocking
// DHT lookup in the next step (8.7 s steps in the churn run of docs/decentralized.md).
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
  std::optional<std::map<int, std::vector<std::string>>> live_children(const std::string& prefix) override {
    std::map<int, std::vector<std::string>> out;
    for (const auto& [i, recs] : dir_.children(prefix)) {
      std::vector<std::string>& addrs = out[i];  // empty: a child that is itself a prefix
      for (const ExpertRecord& r : recs) addrs.push_back(r.address);
    }
    return out;
  }
  bool refresh(const std::string& prefix) override { return dir_.refresh_children(prefix); }

 private:
  ExpertDirectory& dir_;
};

}  // namespace moe::net
