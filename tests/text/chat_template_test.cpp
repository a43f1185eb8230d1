// The chat-template interpreter (src/text/jinja_*.cpp, chat_template.cpp) on small templates with
// exact expected output: each construct, whitespace control, errors. The published templates are
// checked against the reference renderer by tests/cli/chat_template_oracle.sh.
#include <gtest/gtest.h>

#include <random>

#include "core/error.h"
#include "text/chat_template.h"

namespace moe::text {
namespace {

using json = nlohmann::ordered_json;

// Renders text with messages = [] plus the variables in vars.
std::string R(const std::string& text, const json& vars = json::object(), bool gen = false) {
  ChatTemplate t(text, "[chat_template] test");
  return t.render(vars.contains("messages") ? vars["messages"] : json::array(), gen, vars);
}

// The message of the moe::Error that rendering throws ("" when it renders).
std::string E(const std::string& text, const json& vars = json::object()) {
  try {
    R(text, vars);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ChatTemplate, TextAndExpressions) {
  EXPECT_EQ(R("Hello"), "Hello");
  EXPECT_EQ(R("{{ 'a' + 'b' }}"), "ab");
  EXPECT_EQ(R("{{ 1 + 2 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ 2 ** 10 }} {{ 1.5 * 2 }}"), "3 3.5 3 -4 1 1024 3.0");
  EXPECT_EQ(R("{{ x ~ 1 ~ true ~ none_yet }}", {{"x", "v"}}), "v1true");
  EXPECT_EQ(R("{{ 'x' if a else 'y' }}{{ 'z' if not a }}", {{"a", false}}), "yz");
  EXPECT_EQ(R("{{ a and b }} {{ a or b }} {{ not a }}", {{"a", 0}, {"b", 5}}), "0 5 true");
  EXPECT_EQ(R("{{ 1 < 2 }} {{ 2 <= 1 }} {{ 1 == 1.0 }} {{ 'a' != 'b' }} {{ '1' == 1 }}"), "true false true true true");
  EXPECT_EQ(R("{{ 'b' in 'abc' }} {{ 'k' in m }} {{ 2 in [1, 2] }} {{ 3 not in [1, 2] }}", {{"m", {{"k", 1}}}}), "true true true true");
  EXPECT_EQ(R("{{ [1, 'a', none, 2.5, true] }} {{ {'k': [1]} }}"), "[1, \"a\", null, 2.5, true] {\"k\": [1]}");
  EXPECT_EQ(R("{{ none }}{{ undefined_var }}|"), "|");
  EXPECT_EQ(R("{{ \"q\\\"\\n\\t\\u00e9\\x41\" }}"), "q\"\n\téA");
  EXPECT_EQ(R("{{ 'a' 'b' }}"), "ab");  // adjacent literals join
  EXPECT_EQ(R("{{ -x }} {{ +1 }} {{ - 2 }}", {{"x", 3}}), "-3 1 -2");
  EXPECT_EQ(R("{{ 0.1 + 0.2 }} {{ 1 / 3 }} {{ 10 ** 21 }} {{ 0.0000001 * 1 }}"), "0.30000000000000004 0.3333333333333333 1e+21 1e-7");
}

TEST(ChatTemplate, MembersIndexesSlices) {
  const json v = {{"m", {{"role", "user"}, {"content", "hi"}}}, {"l", {10, 20, 30, 40}}, {"s", "héllo👍"}};
  EXPECT_EQ(R("{{ m.role }} {{ m['content'] }} {{ m.missing is defined }}", v), "user hi false");
  EXPECT_EQ(R("{{ l[0] }} {{ l[-1] }} {{ l.1 }} {{ l[9] is defined }} {{ l.length }}", v), "10 40 20 false 4");
  EXPECT_EQ(R("{{ l[1:] }} {{ l[:2] }} {{ l[::-1] }} {{ l[1:3] }} {{ l[::2] }} {{ l[-2:] }}", v),
            "[20, 30, 40] [10, 20] [40, 30, 20, 10] [20, 30] [10, 30] [30, 40]");
  EXPECT_EQ(R("{{ s[1] }} {{ s[1:3] }} {{ s[::-1] }} {{ s|length }}", v), "é él 👍olléh 7");  // length: UTF-16 units
}

TEST(ChatTemplate, IfElifElse) {
  const std::string t = "{% if x == 1 %}one{% elif x == 2 %}two{% elif x == 3 %}three{% else %}many{% endif %}";
  EXPECT_EQ(R(t, {{"x", 1}}), "one");
  EXPECT_EQ(R(t, {{"x", 2}}), "two");
  EXPECT_EQ(R(t, {{"x", 3}}), "three");
  EXPECT_EQ(R(t, {{"x", 4}}), "many");
  EXPECT_EQ(R("{% if [] %}a{% endif %}{% if {} %}b{% endif %}{% if '' %}c{% endif %}{% if [0] %}d{% endif %}"), "d");
}

TEST(ChatTemplate, ForLoops) {
  const json v = {{"l", {"a", "b", "c"}}, {"m", {{"x", 1}, {"y", 2}}}};
  EXPECT_EQ(R("{% for i in l %}{{ loop.index0 }}{{ loop.index }}{{ i }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}", v),
            "01atruefalse3|12bfalsefalse3|23cfalsetrue3|");
  EXPECT_EQ(R("{% for i in l %}{{ loop.revindex0 }}{{ loop.previtem }}{{ loop.nextitem }},{% endfor %}", v), "2b,1ac,0b,");
  EXPECT_EQ(R("{% for k, v in m.items() %}{{ k }}={{ v }};{% endfor %}", v), "x=1;y=2;");
  EXPECT_EQ(R("{% for k in m %}{{ k }}{% endfor %}", v), "xy");
  EXPECT_EQ(R("{% for i in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(R("{% for i in range(5) if i is odd %}{{ i }}{{ loop.length }}{% endfor %}"), "1232");
  EXPECT_EQ(R("{% for i in range(10) %}{% if i == 3 %}{% break %}{% endif %}{% if i == 1 %}{% continue %}{% endif %}{{ i }}{% endfor %}"), "02");
  // As the reference: an iteration ending in break or continue adds none of its output.
  EXPECT_EQ(R("{% for i in [1, 2, 3] %}{{ i }}{% if i == 1 %}{% continue %}{% endif %}-{% if i == 3 %}{% break %}{% endif %}{% endfor %}"), "2-");
  EXPECT_EQ(R("{% for i in [1] %}{% break %}{% else %}else{% endfor %}"), "else");
  EXPECT_EQ(R("{% for i in l[::-1] %}{{ i }}{% endfor %}", v), "cba");
  EXPECT_EQ(R("{% for i in range(1, 7, 2) %}{{ i }}{% endfor %}{% for i in range(3, 0, -1) %}{{ i }}{% endfor %}"), "135321");
  // A loop's scope: set inside does not leak out; a namespace does.
  EXPECT_EQ(R("{% set x = 1 %}{% for i in l %}{% set x = 2 %}{% endfor %}{{ x }}", v), "1");
  EXPECT_EQ(R("{% set ns = namespace(x=1, y='a') %}{% for i in l %}{% set ns.x = ns.x + 1 %}{% endfor %}{{ ns.x }}{{ ns.y }}", v), "4a");
}

TEST(ChatTemplate, SetAndMacros) {
  EXPECT_EQ(R("{% set a, b = 1, 2 %}{{ a }}{{ b }}"), "12");
  EXPECT_EQ(R("{% set x %}in {{ 1 + 1 }}{% endset %}[{{ x }}]"), "[in 2]");
  EXPECT_EQ(R("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', punct='?') }}"),
            "Hi A! Hi B?");
  EXPECT_EQ(R("{% set ns = namespace() %}{% set ns.flag = true %}{{ ns.flag }}"), "true");
}

TEST(ChatTemplate, Filters) {
  const json v = {{"l", {3, 1, 2}}, {"s", "  Hello World  "}, {"m", {{"b", 1}, {"a", "x"}}}, {"objs", {{{"n", "a"}, {"k", 1}}, {{"n", "b"}}}}};
  EXPECT_EQ(R("{{ l|length }} {{ l|first }} {{ l|last }} {{ l|sort }} {{ l|reverse }} {{ l|join(',') }} {{ l|join }}", v),
            "3 3 2 [1, 2, 3] [2, 1, 3] 3,1,2 312");
  EXPECT_EQ(R("[{{ s|trim }}] [{{ s|upper }}] [{{ s|lower }}] [{{ 'ab cd'|title }}] [{{ 'ab CD'|capitalize }}]", v),
            "[Hello World] [  HELLO WORLD  ] [  hello world  ] [Ab Cd] [Ab CD]");
  EXPECT_EQ(R("{{ x|default('d') }} {{ ''|default('d') }} {{ ''|default('d', true) }} {{ 1|string }}{{ 1.0|string }}", v), "d  d 11.0");
  EXPECT_EQ(R("{{ m|tojson }} {{ m|items }} {{ m|length }} {{ m|dictsort }}", v),
            "{\"b\": 1, \"a\": \"x\"} [[\"b\", 1], [\"a\", \"x\"]] 2 [[\"a\", \"x\"], [\"b\", 1]]");
  EXPECT_EQ(R("{{ m|tojson(indent=2) }}", v), "{\n  \"b\": 1,\n  \"a\": \"x\"\n}");
  EXPECT_EQ(R("{{ 'é\"\\n'|tojson }} {{ 'é'|tojson(ensure_ascii=true) }} {{ m|tojson(sort_keys=true, separators=(',', ':')) }}", v),
            "\"é\\\"\\n\" \"\\u00e9\" {\"a\":\"x\",\"b\":1}");
  EXPECT_EQ(R("{{ objs|selectattr('k')|length }} {{ objs|rejectattr('k')|map(attribute='n')|join }} {{ objs|map(attribute='k', default=0) }}", v),
            "1 b [1, 0]");
  EXPECT_EQ(R("{{ '42'|int + 1 }} {{ 'x'|int }} {{ '2.5'|float }} {{ -3|abs }} {{ 'a\nb'|indent(2) }}"), "43 0 2.5 3 a\n  b");
  EXPECT_EQ(R("{{ 'aXbX'|replace('X', '-') }} {{ [1, 1, 2]|unique }}"), "a-b- [1, 2]");
}

TEST(ChatTemplate, Tests) {
  const json v = {{"s", "x"}, {"n", nullptr}, {"l", json::array()}, {"m", json::object()}, {"i", 3}, {"f", 1.5}};
  EXPECT_EQ(R("{{ s is string }}{{ n is none }}{{ l is iterable }}{{ m is mapping }}{{ s is iterable }}{{ m is iterable }}", v),
            "truetruetruetruetruefalse");
  EXPECT_EQ(R("{{ i is number }}{{ f is integer }}{{ i is odd }}{{ i is even }}{{ x is defined }}{{ x is undefined }}", v),
            "truefalsetruefalsefalsetrue");
  EXPECT_EQ(R("{{ true is boolean }}{{ false is false }}{{ s is not string }}{{ 'ab' is lower }}{{ 'AB' is upper }}", v),
            "truetruefalsetruetrue");
}

TEST(ChatTemplate, StringMethods) {
  EXPECT_EQ(R("{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith('bc') }}{{ 'abc'.startswith(('x', 'a')) }}"), "truetruetrue");
  EXPECT_EQ(R("{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a,b,c'.split(',', 1) }}"),
            "[\"a\", \"b\", \"\", \"c\"] [\"a\", \"b\"] [\"a\", \"b,c\"]");
  // strip/lstrip/rstrip strip all whitespace, whatever their argument (as the reference does).
  EXPECT_EQ(R("[{{ ' \\n x \\n '.strip() }}][{{ '\\n x'.lstrip('\\n') }}][{{ 'x \\n'.rstrip('\\n') }}]"), "[x][x][x]");
  EXPECT_EQ(R("{{ 'a-b'.replace('-', '+') }} {{ 'ab'.replace('', '.') }} {{ 'aaa'.replace('a', 'b', 2) }} {{ 'ÄÖ'.lower() }}{{ 'straße'.upper() }}"),
            "a+b .a.b. bba äöSTRASSE");
  EXPECT_EQ(R("{{ m.get('a') }} {{ m.get('z', 'd') }} {{ m.get('z') }} {{ m.keys() }} {{ m.values() }}", {{"m", {{"a", 1}}}}),
            "1 d  [\"a\"] [1]");
}

TEST(ChatTemplate, WhitespaceControl) {
  EXPECT_EQ(R("a  {{- 'b' -}}  c"), "abc");
  EXPECT_EQ(R("a \n {%- if true -%} \n b {%- endif %}"), "ab");
  EXPECT_EQ(R("a {#- comment -#} b"), "ab");
  // trim_blocks: the newline after a block tag goes; lstrip_blocks: the indentation before it.
  EXPECT_EQ(R("{% if true %}\nx\n{% endif %}\ny"), "x\ny");
  EXPECT_EQ(R("  {% if true %}\n  x\n  {% endif %}\n"), "  x\n");
  EXPECT_EQ(R("{{ 'x' }}\n{# c #}\ny\n"), "x\ny");  // the template's last newline is dropped
  EXPECT_EQ(R("a\n  {{ 'b' }}\n"), "a\n  b");       // not for {{ }}
}

TEST(ChatTemplate, RaiseException) {
  const std::string msg = E("x{{ raise_exception('Roles must alternate') }}");
  EXPECT_NE(msg.find("[chat_template] test: line 1, column 5: the template raised an error: Roles must alternate"), std::string::npos) << msg;
}

TEST(ChatTemplate, ErrorsNameThePosition) {
  auto expect_error = [](const std::string& text, const std::string& part) {
    const std::string msg = E(text);
    EXPECT_NE(msg.find(part), std::string::npos) << "template: " << text << "\nerror: " << msg;
  };
  expect_error("{% if x %}", "line 1, column 1: '{% if %}' is not closed");
  expect_error("a\n{% for x in y %}{% endif %}", "line 2, column 17: unknown or unexpected statement '{% endif %}'");
  expect_error("a\n{% for x in y %}", "line 2, column 1: '{% for %}' is not closed");
  expect_error("{{ x | frobnicate }}", "unknown filter 'frobnicate'");
  expect_error("{{ 1 is frob }}", "unknown test 'frob'");
  expect_error("{% call foo() %}{% endcall %}", "'{% call %}' is not supported");
  expect_error("{% filter upper %}x{% endfilter %}", "'{% filter %}' is not supported");
  expect_error("{{ 'abc }}", "unterminated string literal");
  expect_error("{{ 'a\\q' }}", "unknown escape");
  expect_error("{# never closed", "missing end of comment tag");
  expect_error("{{ x y }}", "expected '}}'");
  expect_error("{{ 1 + none }}", "on a none value");
  expect_error("{{ [1] - 1 }}", "operator '-' does not apply to a list and an integer");
  expect_error("{{ foo() }}", "cannot call 'foo': it is undefined");
  expect_error("{{ 'a'.nosuch() }}", "cannot call '.nosuch': it is undefined");
  expect_error("{% for x in 5 %}{% endfor %}", "{% for %} expects a list or a mapping, not an integer");
  expect_error("{% set x.y = 1 %}", "needs a namespace()");
  expect_error("{% break %}", "outside a loop");
  expect_error("{{ (1, 2)|tojson }}", "a tuple cannot be converted to JSON");
  expect_error("{{ x @ y }}", "unexpected character '@'");
  expect_error("{% endfor %}", "unknown or unexpected statement '{% endfor %}'");
  std::string deep = "{{ ";
  deep.append(500, '(').append("1").append(500, ')').append(" }}");
  expect_error(deep, "nests deeper than");
  expect_error("{% for i in range(100000000) %}{% endfor %}", "range() of more than");
  expect_error("{% set ns = namespace(s='xx') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", "a string longer than");
  expect_error("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "more than 64 deep");
}

TEST(ChatTemplate, LoadsTokenizerConfig) {
  const json cfg = {{"chat_template", {{{"name", "tool_use"}, {"template", "T"}}, {{"name", "default"}, {"template", "{{ bos_token }}D{{ eos_token }}"}}}},
                    {"bos_token", {{"__type", "AddedToken"}, {"content", "<s>"}}},
                    {"eos_token", "</s>"}};
  const ChatTemplate t = ChatTemplate::from_config(cfg, "cfg.json");
  EXPECT_EQ(t.render(json::array(), false), "<s>D</s>");
  EXPECT_EQ(t.special_token("eos_token"), "</s>");
  try {
    ChatTemplate::from_config(json{{"eos_token", "x"}}, "cfg.json");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "[chat_template] cfg.json: chat_template: missing (this tokenizer has no chat template)");
  }
  try {
    ChatTemplate::from_config(json{{"chat_template", "a\n{{ x | }}"}}, "cfg.json");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("[chat_template] cfg.json: chat_template: line 2, column 8: expected the name of a filter", 0), 0u) << e.what();
  }
}

// Random and truncated templates: each either renders or throws moe::Error, never crashes.
TEST(ChatTemplate, RandomAndTruncatedTemplatesNeverCrash) {
  const std::vector<std::string> seeds = {
      "{%- for message in messages[::-1] %}{%- set index = (messages|length - 1) - loop.index0 %}{{ index }}{% endfor %}",
      "{% set ns = namespace(a=1) %}{% if ns.a is defined and not ns.b %}{{ ns.a ~ 'x' }}{% elif 1 %}y{% else %}z{% endif %}",
      "{{ bos_token }}{% for m in messages %}{{ m['role'] + ': ' + m.content|trim }}{{ '\\n' if not loop.last }}{% endfor %}",
      "{% macro f(a, b=2) %}{{ a * b }}{% endmacro %}{{ f(3) }}{{ [1,2,3][1:]|join(', ') }}{{ {'a': 1}|tojson(indent=2) }}",
      "{%- if x.content.split('</think>')[-1].lstrip('\\n') in ['a', 'b'] -%}{# c #}{{ raise_exception('no') }}{%- endif -%}",
  };
  const json vars = {{"messages", {{{"role", "user"}, {"content", "hi </think> x"}}, {{"role", "assistant"}, {"content", "b"}}}},
                     {"x", {{"content", "a</think>\nb"}}}};
  std::mt19937 rng(1234);
  const std::string alphabet = "{}%#-+~|.,:()[]'\"\\ \n\tabcxyz01ifsetforendinnotis=<>*/";
  int rendered = 0, errors = 0;
  auto attempt = [&](const std::string& t) {
    try {
      R(t, vars);
      ++rendered;
    } catch (const Error&) {
      ++errors;
    }
  };
  for (const std::string& s : seeds) {
    for (size_t n = 0; n <= s.size(); ++n) attempt(s.substr(0, n));  // every truncation
    for (int k = 0; k < 300; ++k) {                                 // random edits
      std::string t = s;
      const int edits = 1 + int(rng() % 4);
      for (int e = 0; e < edits && !t.empty(); ++e) {
        const size_t at = rng() % t.size();
        switch (rng() % 3) {
          case 0: t.erase(at, 1 + rng() % 3); break;
          case 1: t.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
          default: t[at] = alphabet[rng() % alphabet.size()];
        }
      }
      attempt(t);
    }
  }
  for (int k = 0; k < 2000; ++k) {  // random strings over the template alphabet
    std::string t;
    const size_t len = rng() % 40;
    for (size_t i = 0; i < len; ++i) t += alphabet[rng() % alphabet.size()];
    attempt(t);
  }
  EXPECT_GT(rendered, 100);
  EXPECT_GT(errors, 100);
}

}  // namespace
}  // namespace moe::text
