#include "engine/stop_checker.h"

#include <gtest/gtest.h>

namespace longctx {
namespace {

TEST(StopChecker, CatchesAStopStringSpanningDeltasAndNeverEmitsPartOfIt) {
  StopChecker s({"STOP"}, false);
  std::string emitted;
  for (const char* d : {"Hello S", "T", "O", "P and more"}) {
    auto hit = s.append(d);
    emitted += s.take_ready();
    if (hit) {
      EXPECT_EQ(*hit, "STOP");
      break;
    }
    EXPECT_EQ(emitted.find('S', 5), std::string::npos) << "held-back prefix leaked: " << emitted;
  }
  EXPECT_EQ(emitted, "Hello ");
  EXPECT_EQ(s.text(), "Hello ");
}

TEST(StopChecker, ReleasesAFalseStartOnceItCannotMatch) {
  StopChecker s({"STOP"}, false);
  EXPECT_FALSE(s.append("ST"));
  EXPECT_EQ(s.take_ready(), "");
  EXPECT_FALSE(s.append("ART"));
  EXPECT_EQ(s.take_ready(), "START");
}

TEST(StopChecker, IncludeStopStringKeepsIt) {
  StopChecker s({"\n\n", "END"}, true);
  EXPECT_FALSE(s.append("a\n"));
  auto hit = s.append("\nb");
  ASSERT_TRUE(hit);
  EXPECT_EQ(*hit, "\n\n");
  EXPECT_EQ(s.take_ready(), "a\n\n");
}

TEST(StopChecker, EarliestStopStringWins) {
  StopChecker s({"cd", "bcde"}, false);
  auto hit = s.append("abcdef");
  ASSERT_TRUE(hit);
  EXPECT_EQ(*hit, "bcde");
  EXPECT_EQ(s.take_ready(), "a");
}

TEST(StopChecker, FlushReleasesHeldTextAtTheEnd) {
  StopChecker s({"STOP"}, false);
  EXPECT_FALSE(s.append("ends with ST"));
  EXPECT_EQ(s.take_ready(), "ends with ");
  s.flush();
  EXPECT_EQ(s.take_ready(), "ST");
}

TEST(StopChecker, NoStopStringsEmitsEverything) {
  StopChecker s({}, false);
  EXPECT_FALSE(s.append("abc"));
  EXPECT_EQ(s.take_ready(), "abc");
}

}  // namespace
}  // namespace longctx
