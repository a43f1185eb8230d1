#pragma once
// The built-in behaviour of the Jinja subset's values, as the reference renderer (@huggingface/jinja,
// JavaScript) has it: string and mapping methods, comparisons, attribute paths, slices, number
// parsing. Kept apart from the interpreter (jinja_eval.cpp), which calls these.
#include <string>
#include <string_view>
#include <vector>

#include "text/jinja_value.h"

namespace moe::text::jinja {

[[noreturn]] void raise(const std::string& msg);  // a FunctionError: the caller adds the position

// JavaScript's toUpperCase / toLowerCase (full Unicode case mapping, root locale).
std::string js_upper(std::string_view s);
std::string js_lower(std::string_view s);
std::string js_title(const std::string& s);       // s.replace(/\b\w/g, c => c.toUpperCase())
std::string js_capitalize(const std::string& s);  // the first UTF-16 unit upper-cased
std::vector<std::string> code_points(const std::string& s);
// parseInt(s, 10) and parseFloat(s): the longest numeric prefix after leading whitespace.
double js_parse_int(std::string_view s);
double js_parse_float(std::string_view s);

// A stable merge sort that stays in bounds whatever the comparison does (it may throw).
template <class Less>
void merge_sort(std::vector<Value>& v, Less less) {
  if (v.size() < 2) return;
  std::vector<Value> tmp(v.size());
  for (size_t width = 1; width < v.size(); width *= 2) {
    for (size_t lo = 0; lo < v.size(); lo += 2 * width) {
      const size_t mid = std::min(lo + width, v.size()), hi = std::min(lo + 2 * width, v.size());
      size_t i = lo, j = mid, k = lo;
      while (i < mid && j < hi) tmp[k++] = less(v[j], v[i]) ? v[j++] : v[i++];
      while (i < mid) tmp[k++] = v[i++];
      while (j < hi) tmp[k++] = v[j++];
    }
    v.swap(tmp);
  }
}

// The reference's compareRuntimeValues: none with none, numbers (and booleans) with numbers,
// strings with strings (lower-cased unless case_sensitive); anything else is an error.
int compare_values(const Value& a, const Value& b, bool case_sensitive);
Value attribute_path(const Value& item, const std::string& path);  // "a.b.0" through mappings, lists
Value key_value_pairs(const Object& o);
Value object_keys(const Object& o);
const Value* positional_or_keyword(const CallArgs& a, size_t i, std::string_view name);
bool bool_arg(const CallArgs& a, size_t i, std::string_view name, bool dflt);
// A mapping's methods (also its filters): get, items, keys, values, dictsort; none when unknown.
Value mapping_method(const Value& obj, const std::string& name);
// A string's methods (and .length); none when unknown.
Value string_method(const std::string& s, const std::string& name);
// slice(array, start, stop, step) over n items: the indices taken.
std::vector<size_t> slice_indices(size_t n, const Value& start_v, const Value& stop_v, const Value& step_v);

}  // namespace moe::text::jinja
