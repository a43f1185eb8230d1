#pragma once
// The element types of checkpoints: f32, and the 16-bit f16 and bf16 that published models ship in.
#include <cstddef>
#include <cstdint>
#include <string>

namespace moe {

enum class DType { F32, F16, BF16 };
size_t dtype_size(DType t);
std::string dtype_name(DType t);  // the safetensors spelling: "F32", "F16", "BF16"

// Exact widening conversions, and narrowing with round-to-nearest-even (NaN stays NaN).
float bf16_to_f32(uint16_t h);
float f16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);
uint16_t f32_to_f16(float f);

}  // namespace moe
