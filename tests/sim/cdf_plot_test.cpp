#include "sim/cdf_plot.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace longctx {
namespace {

// Every element closed in order (self-closing ones count as closed), one root <svg>.
// Returns "" when well-formed, else what broke.
std::string check_tags(const std::string& xml) {
  std::vector<std::string> stack;
  int roots = 0;
  for (size_t i = xml.find('<'); i != std::string::npos; i = xml.find('<', i + 1)) {
    const size_t end = xml.find('>', i);
    if (end == std::string::npos) return "unterminated tag at " + std::to_string(i);
    const std::string tag = xml.substr(i + 1, end - i - 1);
    if (tag.empty()) return "empty tag";
    if (tag[0] == '?') continue;  // the XML declaration
    if (tag.find('<') != std::string::npos) return "'<' inside a tag";
    if (tag[0] == '/') {
      if (stack.empty() || stack.back() != tag.substr(1)) return "mismatched </" + tag.substr(1) + ">";
      stack.pop_back();
      continue;
    }
    const std::string name = tag.substr(0, tag.find_first_of(" /"));
    if (stack.empty()) ++roots;
    if (tag.back() != '/') stack.push_back(name);
  }
  if (!stack.empty()) return "unclosed <" + stack.back() + ">";
  return roots == 1 ? "" : "expected one root element";
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t i = s.find(what); i != std::string::npos; i = s.find(what, i + 1)) ++n;
  return n;
}

TEST(CdfSvg, WellFormedWithOneCurvePerNonEmptySeries) {
  const std::vector<CdfSeries> series = {
      {"fcfs <short> & co", {0.01, 0.5, 2.0, 30.0}, false}, {"lrs long", {100.0, 200.0}, true}, {"none", {}, false}};
  const std::string svg = cdf_svg(series, {"TTFT \"CDF\"", "TTFT (s)", 700, 400});
  EXPECT_EQ(check_tags(svg), "");
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_EQ(count(svg, "<polyline"), 2u);
  EXPECT_EQ(count(svg, "stroke-dasharray"), 2u);  // the dashed curve and its legend line
  // Labels are escaped, decade ticks span the data (10ms .. 1000s).
  EXPECT_NE(svg.find("fcfs &lt;short&gt; &amp; co"), std::string::npos);
  EXPECT_NE(svg.find("TTFT &quot;CDF&quot;"), std::string::npos);
  EXPECT_NE(svg.find(">10ms<"), std::string::npos);
  EXPECT_NE(svg.find(">1000s<"), std::string::npos);
  EXPECT_NE(svg.find("none (none)"), std::string::npos);
}

TEST(CdfSvg, CurveEndsAtOneAndThinsLongSeries) {
  std::vector<double> v;
  for (int i = 1; i <= 100000; ++i) v.push_back(i * 1e-3);
  const std::string svg = cdf_svg({{"many", v, false}}, {});
  EXPECT_EQ(check_tags(svg), "");
  const size_t start = svg.find("points=\"");
  ASSERT_NE(start, std::string::npos);
  const std::string pts = svg.substr(start + 8, svg.find('"', start + 8) - start - 8);
  EXPECT_LT(count(pts, ","), 5000u);  // thinned from 200,000 points
  // The last point is at fraction 1: the top of the plot area (y = 40).
  const std::string last = pts.substr(pts.rfind(' ', pts.size() - 2) + 1);
  EXPECT_EQ(last.substr(last.find(',') + 1, 4), "40.0");
}

TEST(CdfSvg, EmptyPlotIsStillWellFormed) {
  EXPECT_EQ(check_tags(cdf_svg({}, {})), "");
}

}  // namespace
}  // namespace longctx

namespace longctx {
namespace {

TEST(CdfSvg, SeriesCanShareAColour) {
  const std::string svg =
      cdf_svg({{"a short", {1.0}, false, 2}, {"a long", {2.0}, true, 2}, {"b", {3.0}, false, -1}}, {});
  // Two curves and two legend lines in palette colour 2; "b" takes its own index (2) too.
  EXPECT_EQ(count(svg, "stroke=\"#009E73\""), 6u);
}

}  // namespace
}  // namespace longctx
