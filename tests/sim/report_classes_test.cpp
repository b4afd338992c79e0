// simulate --classes: parsing NAME:LO-HI lists (and their errors) and summarising a
// result into those classes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sim/report.h"

namespace longctx {
namespace {

TEST(ReportClasses, ParsesRangesWithAndWithoutAnUpperBound) {
  auto c = parse_classes("short:0-32768,long:32768-");
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  ASSERT_EQ(c->size(), 2u);
  EXPECT_EQ((*c)[0].name, "short");
  EXPECT_EQ((*c)[0].min_tokens, 0);
  EXPECT_EQ((*c)[0].max_tokens, 32768);
  EXPECT_EQ((*c)[1].name, "long");
  EXPECT_EQ((*c)[1].min_tokens, 32768);
  EXPECT_EQ((*c)[1].max_tokens, -1);
}

TEST(ReportClasses, RejectsMalformedSpecsWithTheItemNamed) {
  struct Case {
    std::string spec, expect;
  };
  const std::vector<Case> cases = {
      {"", "empty"},
      {"short", "expected NAME:LO-HI"},
      {":0-10", "name is empty"},
      {"a:10", "range LO-HI"},
      {"a:x-10", "LO must be a non-negative integer"},
      {"a:-10", "LO must be a non-negative integer"},
      {"a:0-1k", "HI must be a non-negative integer"},
      {"a:10-10", "must be above LO"},
      {"a:0-10,a:10-20", "used twice"},
      {"a:0-100,b:50-", "overlaps class 'a'"},
      {"a:50-,b:0-60", "overlaps class 'a'"},
      {"all:0-", "reserved"},
      {"a:0-10,", "expected NAME:LO-HI"},
  };
  for (const Case& c : cases) {
    auto r = parse_classes(c.spec);
    ASSERT_FALSE(r.is_ok()) << "'" << c.spec << "' was accepted";
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos)
        << "'" << c.spec << "': " << r.status().message();
  }
}

SimRequest finished(int64_t prompt, double ttft) {
  SimRequest q;
  q.prompt_tokens = prompt;
  q.output_tokens = 1;
  q.first_token_s = ttft;
  q.finish_s = ttft;
  return q;
}

TEST(ReportClasses, SummarizesIntoTheGivenClassesThenAll) {
  SimResult r;
  r.duration_s = 10;
  r.requests = {finished(100, 1), finished(5000, 2), finished(40000, 3), finished(2000000, 4)};
  SimRequest rejected;
  rejected.prompt_tokens = 6000;
  rejected.rejected = true;
  r.requests.push_back(rejected);
  // 1K-4K holds nothing; 100 tokens falls in no class and counts only in "all".
  auto classes = parse_classes("tiny:1000-4096,mid:4096-1048576,huge:1048576-");
  ASSERT_TRUE(classes.is_ok());
  const auto s = summarize(r, *classes);
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0].name, "tiny");
  EXPECT_EQ(s[0].count, 0);
  EXPECT_EQ(s[1].name, "mid");
  EXPECT_EQ(s[1].count, 2);
  EXPECT_EQ(s[1].rejected, 1);
  EXPECT_DOUBLE_EQ(s[1].ttft_p50, 2.5);
  EXPECT_EQ(s[2].name, "huge");
  EXPECT_EQ(s[2].count, 1);
  EXPECT_DOUBLE_EQ(s[2].ttft_p50, 4);
  EXPECT_EQ(s[3].name, "all");
  EXPECT_EQ(s[3].count, 4);
  EXPECT_EQ(s[3].rejected, 1);
}

TEST(ReportClasses, DefaultIsShortAndLongAtTheThreshold) {
  SimResult r;
  r.duration_s = 1;
  r.requests = {finished(32767, 1), finished(32768, 2)};
  const auto s = summarize(r, default_classes(32768));
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].name, "short");
  EXPECT_EQ(s[0].count, 1);
  EXPECT_EQ(s[1].name, "long");
  EXPECT_EQ(s[1].count, 1);
}

}  // namespace
}  // namespace longctx
