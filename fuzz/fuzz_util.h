#pragma once
// Shared by the fuzz targets: the readers under test take paths, so each input is written to a
// per-process scratch directory first (tmpfs-fast enough: ~10^4 executions per second).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

namespace moe::fuzz {

inline const std::string& scratch_dir() {
  static const std::string d = [] {
    const std::string p = std::filesystem::temp_directory_path().string() + "/moe-fuzz." + std::to_string(::getpid());
    std::filesystem::create_directories(p);
    return p;
  }();
  return d;
}

inline std::string write_input(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = scratch_dir() + "/" + name;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) __builtin_trap();
  if (size && std::fwrite(data, 1, size, f) != size) __builtin_trap();
  std::fclose(f);
  return path;
}

}  // namespace moe::fuzz
