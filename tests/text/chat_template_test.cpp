// ChatTemplate against transformers: the golden chats of tests/data/tokenizer_golden.json
// (rendered by transformers' apply_chat_template), and tool-call / reasoning / kwargs
// cases whose expected text was rendered by Python jinja2 3.1.6 set up exactly as
// transformers sets it up (sandbox, trim_blocks, lstrip_blocks, loopcontrols, its tojson,
// raise_exception and strftime_now globals) with each tokenizer's own chat_template.
#include "text/chat_template.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>

namespace longctx {
namespace {

const std::filesystem::path kTokenizers = LONGCTX_TOKENIZERS_DIR;

nlohmann::ordered_json read_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  return nlohmann::ordered_json::parse(in);
}

ChatTemplate load(const std::string& name) {
  auto t = ChatTemplate::load(kTokenizers / name);
  if (!t.is_ok()) throw StatusError(t.status());
  return std::move(t).value();
}

TEST(ChatTemplateGolden, AllTokenizerChatsRenderByteExactly) {
  const auto golden = read_json(std::filesystem::path(LONGCTX_TEST_DATA_DIR) / "tokenizer_golden.json");
  int checked = 0;
  for (const char* name : {"qwen3", "llama3_1", "deepseek_v3"}) {
    SCOPED_TRACE(name);
    const ChatTemplate chat = load(name);
    ASSERT_TRUE(golden.contains(name));
    for (const auto& c : golden[name]["chat"]) {
      auto out = chat.render(c["messages"], true, nlohmann::ordered_json::object());
      ASSERT_TRUE(out.is_ok()) << out.status().to_string();
      EXPECT_EQ(*out, c["rendered"].get<std::string>()) << "messages: " << c["messages"].dump();
      ++checked;
    }
  }
  EXPECT_GE(checked, 6);
}

// Inputs and jinja2-rendered outputs (see the file comment).
constexpr const char* kReference = R"J(
{
 "inputs": {
  "qwen_tools_msgs": [
   {
    "role": "system",
    "content": "You are helpful."
   },
   {
    "role": "user",
    "content": "Weather in Z\u00fcrich?"
   },
   {
    "role": "assistant",
    "content": "",
    "tool_calls": [
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": {
        "city": "Z\u00fcrich",
        "unit": "C"
       }
      }
     },
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": "{\"city\": \"Bern\"}"
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": "{\"temp\": 21}"
   },
   {
    "role": "tool",
    "content": "{\"temp\": 19}"
   },
   {
    "role": "assistant",
    "content": "<think>\nIt is warm.\n</think>\n\nIt is 21 \u00b0C."
   },
   {
    "role": "user",
    "content": "Thanks"
   }
  ],
  "weather_tool": {
   "type": "function",
   "function": {
    "name": "get_weather",
    "description": "Weather <now> & 'later'",
    "parameters": {
     "type": "object",
     "properties": {
      "city": {
       "type": "string",
       "description": "City, e.g. Z\u00fcrich"
      }
     },
     "required": [
      "city"
     ]
    }
   }
  },
  "qwen_reasoning_msgs": [
   {
    "role": "user",
    "content": "2+2?"
   },
   {
    "role": "assistant",
    "content": "4",
    "reasoning_content": "Add them."
   },
   {
    "role": "user",
    "content": "3+3?"
   },
   {
    "role": "assistant",
    "content": "<think>\nsum\n</think>\n\n6"
   }
  ],
  "ds_tool_msgs": [
   {
    "role": "system",
    "content": "S1"
   },
   {
    "role": "system",
    "content": "S2"
   },
   {
    "role": "user",
    "content": "Weather?"
   },
   {
    "role": "assistant",
    "content": null,
    "tool_calls": [
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": "{\"city\": \"Paris\"}"
      }
     },
     {
      "type": "function",
      "function": {
       "name": "get_time",
       "arguments": "{}"
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": "sunny"
   },
   {
    "role": "tool",
    "content": "noon"
   },
   {
    "role": "assistant",
    "content": "Sunny at noon."
   },
   {
    "role": "user",
    "content": "ok"
   }
  ]
 },
 "out": {
  "qwen3_tools": "<|im_start|>system\nYou are helpful.\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Weather <now> & 'later'\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"description\": \"City, e.g. Z\u00fcrich\"}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nWeather in Z\u00fcrich?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Z\u00fcrich\", \"unit\": \"C\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Bern\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n{\"temp\": 21}\n</tool_response>\n<tool_response>\n{\"temp\": 19}\n</tool_response><|im_end|>\n<|im_start|>assistant\nIt is 21 \u00b0C.<|im_end|>\n<|im_start|>user\nThanks<|im_end|>\n<|im_start|>assistant\n",
  "qwen3_reasoning": "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\n3+3?<|im_end|>\n<|im_start|>assistant\n<think>\nsum\n</think>\n\n6<|im_end|>\n<|im_start|>assistant\n",
  "qwen3_no_thinking": "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
  "qwen3_no_generation_prompt": "<|im_start|>user\nhi<|im_end|>\n",
  "deepseek_tools": "<\uff5cbegin\u2581of\u2581sentence\uff5c>S1\n\nS2<\uff5cUser\uff5c>Weather?<\uff5cAssistant\uff5c><\uff5ctool\u2581calls\u2581begin\uff5c><\uff5ctool\u2581call\u2581begin\uff5c>function<\uff5ctool\u2581sep\uff5c>get_weather\n```json\n{\"city\": \"Paris\"}\n```<\uff5ctool\u2581call\u2581end\uff5c>\n<\uff5ctool\u2581call\u2581begin\uff5c>function<\uff5ctool\u2581sep\uff5c>get_time\n```json\n{}\n```<\uff5ctool\u2581call\u2581end\uff5c><\uff5ctool\u2581calls\u2581end\uff5c><\uff5cend\u2581of\u2581sentence\uff5c><\uff5ctool\u2581outputs\u2581begin\uff5c><\uff5ctool\u2581output\u2581begin\uff5c>sunny<\uff5ctool\u2581output\u2581end\uff5c>\n<\uff5ctool\u2581output\u2581begin\uff5c>noon<\uff5ctool\u2581output\u2581end\uff5c><\uff5ctool\u2581outputs\u2581end\uff5c>Sunny at noon.<\uff5cend\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>ok<\uff5cAssistant\uff5c>",
  "llama_trim": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\npadded<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
 }
})J";

class ChatTemplateReference : public ::testing::Test {
 protected:
  const nlohmann::ordered_json ref = nlohmann::ordered_json::parse(kReference);
  const nlohmann::ordered_json& in(const char* key) const { return ref["inputs"][key]; }
  std::string expected(const char* key) const { return ref["out"][key].get<std::string>(); }
};

TEST_F(ChatTemplateReference, Qwen3ToolsAndToolCalls) {
  // Tool schemas and object-valued arguments go through tojson; ordered_json keeps the
  // caller's key order as Python dicts do.
  nlohmann::ordered_json extra = {{"tools", nlohmann::ordered_json::array({in("weather_tool")})}};
  auto out = load("qwen3").render(in("qwen_tools_msgs"), true, extra);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(*out, expected("qwen3_tools"));
}

TEST_F(ChatTemplateReference, Qwen3ReasoningContent) {
  auto out = load("qwen3").render(in("qwen_reasoning_msgs"), true, nlohmann::ordered_json::object());
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(*out, expected("qwen3_reasoning"));
}

TEST_F(ChatTemplateReference, Qwen3EnableThinkingFalseAndNoGenerationPrompt) {
  const ChatTemplate chat = load("qwen3");
  const nlohmann::json hi = nlohmann::json::array({{{"role", "user"}, {"content", "hi"}}});
  auto no_think = chat.render(hi, true, {{"enable_thinking", false}});
  ASSERT_TRUE(no_think.is_ok()) << no_think.status().to_string();
  EXPECT_EQ(*no_think, expected("qwen3_no_thinking"));
  auto no_prompt = chat.render(hi, false);
  ASSERT_TRUE(no_prompt.is_ok());
  EXPECT_EQ(*no_prompt, expected("qwen3_no_generation_prompt"));
}

TEST_F(ChatTemplateReference, DeepseekV3ToolCallsAndOutputs) {
  auto out = load("deepseek_v3").render(in("ds_tool_msgs"), true, nlohmann::ordered_json::object());
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(*out, expected("deepseek_tools"));
}

TEST_F(ChatTemplateReference, Llama31TrimsContent) {
  const std::vector<ChatMessage> messages = {{"system", "  padded  \n", {}}, {"user", "x", {}}};
  auto out = load("llama3_1").render(messages);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(*out, expected("llama_trim"));
}

TEST(ChatTemplate, NonStringContentFailsAsInTransformers) {
  // Qwen3's template calls content.startswith(); jinja2 raises "'list object' has no
  // attribute 'startswith'" for list-of-parts content, and so must we (not crash).
  const nlohmann::json messages =
      nlohmann::json::parse(R"([{"role": "user", "content": [{"type": "text", "text": "hi"}]}])");
  auto out = load("qwen3").render(messages);
  ASSERT_FALSE(out.is_ok());
  EXPECT_NE(out.status().message().find("'list object' has no attribute 'startswith'"), std::string::npos)
      << out.status().message();
  EXPECT_NE(out.status().message().find("tokenizer_config.json"), std::string::npos)
      << out.status().message();
}

TEST(ChatTemplate, RaiseExceptionMessageSurfaced) {
  auto chat = ChatTemplate::from_source(
      "{% for m in messages %}{% if m.role not in ['user', 'assistant'] %}"
      "{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{{ m.content }}{% "
      "endfor %}",
      nlohmann::json::object());
  ASSERT_TRUE(chat.is_ok()) << chat.status().to_string();
  auto out = chat->render(nlohmann::json::parse(R"([{"role": "tool", "content": "x"}])"));
  ASSERT_FALSE(out.is_ok());
  EXPECT_NE(out.status().message().find("Only user and assistant roles are supported!"), std::string::npos)
      << out.status().message();
}

TEST(ChatTemplate, ContextVariablesAsTransformersPassesThem) {
  auto chat = ChatTemplate::from_source(
      "{{ bos_token }}|{{ eos_token }}|{{ pad_token is defined }}|{{ tools is none }}|{{ documents is none "
      "}}|"
      "{{ add_generation_prompt }}|{{ extra }}|{{ additional_special_tokens | join(',') }}",
      {{"bos_token", "<s>"},
       {"eos_token", {{"content", "</s>"}, {"lstrip", false}}},
       {"pad_token", nullptr},
       {"additional_special_tokens", {"<a>", {{"content", "<b>"}}}}});
  ASSERT_TRUE(chat.is_ok()) << chat.status().to_string();
  auto out = chat->render(nlohmann::json::array(), false, {{"extra", 7}});
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(*out, "<s>|</s>|False|True|True|False|7|<a>,<b>");
}

TEST(ChatTemplate, StrftimeNow) {
  auto chat = ChatTemplate::from_source("{{ strftime_now('%Y-%m-%d') }}", nlohmann::json::object());
  ASSERT_TRUE(chat.is_ok());
  auto out = chat->render(nlohmann::json::array());
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_TRUE(std::regex_match(*out, std::regex(R"(\d{4}-\d{2}-\d{2})"))) << *out;
}

class ChatTemplateLoad : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() /
        ("longctx_chat_template_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
         "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void write(const std::string& file, const std::string& text) { std::ofstream(dir_ / file) << text; }
  std::filesystem::path dir_;
};

TEST_F(ChatTemplateLoad, MissingFileNamesIt) {
  auto t = ChatTemplate::load(dir_);
  ASSERT_FALSE(t.is_ok());
  EXPECT_EQ(t.status().code(), StatusCode::kNotFound);
  EXPECT_NE(t.status().message().find("tokenizer_config.json"), std::string::npos) << t.status().message();
}

TEST_F(ChatTemplateLoad, MissingFieldNamesIt) {
  write("tokenizer_config.json", R"({"bos_token": "<s>"})");
  auto t = ChatTemplate::load(dir_);
  ASSERT_FALSE(t.is_ok());
  EXPECT_NE(t.status().message().find("no 'chat_template' field"), std::string::npos) << t.status().message();
}

TEST_F(ChatTemplateLoad, NamedTemplateListPicksDefault) {
  write("tokenizer_config.json",
        R"({"eos_token": "</s>", "chat_template": [{"name": "tool_use", "template": "T"},
            {"name": "default", "template": "{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}"}]})");
  auto t = ChatTemplate::load(dir_);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  auto out = t->render(nlohmann::json::parse(R"([{"role": "user", "content": "a"}])"));
  ASSERT_TRUE(out.is_ok());
  EXPECT_EQ(*out, "a</s>");
}

TEST_F(ChatTemplateLoad, SyntaxErrorNamesFileAndLine) {
  write("tokenizer_config.json", R"({"chat_template": "ok\n{% if %}"})");
  auto t = ChatTemplate::load(dir_);
  ASSERT_FALSE(t.is_ok());
  EXPECT_NE(t.status().message().find("tokenizer_config.json"), std::string::npos) << t.status().message();
  EXPECT_NE(t.status().message().find("line 2"), std::string::npos) << t.status().message();
}

TEST_F(ChatTemplateLoad, ChatTemplateJinjaFileTakesPrecedence) {
  write("tokenizer_config.json", R"({"chat_template": "from config"})");
  write("chat_template.jinja", "from file\n");
  auto t = ChatTemplate::load(dir_);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  auto out = t->render(nlohmann::json::array());
  ASSERT_TRUE(out.is_ok());
  EXPECT_EQ(*out, "from file");
}

}  // namespace
}  // namespace longctx
