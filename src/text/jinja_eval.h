#pragma once
// The interpreter of the chat-template Jinja subset: renders a parsed template (jinja_parser.h)
// with a set of variables, as @huggingface/jinja (the reference renderer) does: its scoping (a
// {% for %} has its own scope; {% if %} does not; namespace() attributes outlive both), its
// filters, tests and string methods, and its errors: whatever the reference refuses (an unknown
// filter or test, an operator on the wrong types, calling something that is not a function,
// raise_exception('...')) is a moe::Error here, naming the template position.
//
// Filters: safe, tojson (indent, ensure_ascii, sort_keys, separators), string, length, first,
// last, list, reverse, sort (reverse, case_sensitive, attribute), unique, join, default (value,
// boolean), items, trim, upper, lower, title, capitalize, indent (width, first, blank), replace,
// int, float, abs, bool, selectattr / rejectattr (attribute[, test[, value]]), map (attribute=,
// default=), and a mapping's get / keys / values / dictsort.
// Tests: defined, undefined, none, string, number, integer, boolean, true, false, mapping,
// iterable, sequence, callable, odd, even, lower, upper, eq / equalto.
// Methods: strings' startswith, endswith, split, strip, lstrip, rstrip (the three strip all
// whitespace, ignoring an argument, as the reference does), replace, upper, lower, title,
// capitalize and .length; mappings' get, items, keys, values, dictsort; lists' .length.
// Globals: true/false/none (and True/False/None), namespace(), range(), raise_exception(),
// strftime_now().
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "text/jinja_parser.h"
#include "text/jinja_value.h"

namespace moe::text::jinja {

// Bounds that keep a hostile template from exhausting time, memory or the stack; each is an error
// naming the position where it was crossed.
struct RenderLimits {
  uint64_t max_steps = 20'000'000;          // statements and expressions evaluated
  size_t max_string_bytes = 64u << 20;      // the output, and any one string
  size_t max_list_items = 1'000'000;        // any one list (range(), list concatenation)
  int max_call_depth = 64;                  // macros calling macros
  int max_nesting = 1000;                   // statements and expressions being evaluated, one inside another
};

// variables: the template's variables in order. A name given twice, or a built-in's name (true,
// false, none, True, False, None, namespace, range, raise_exception, strftime_now) is an error.
std::string render(const TemplateSource& src, const Node& program,
                   const std::vector<std::pair<std::string, Value>>& variables, const RenderLimits& limits = {});

}  // namespace moe::text::jinja
