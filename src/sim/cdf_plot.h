// TTFT (or any latency) CDFs as an SVG document, written by hand: no plotting library,
// no external tool. One polyline per series (the empirical CDF's steps), a log-scaled
// x axis with decade ticks (latencies span milliseconds to minutes), a legend.
#pragma once

#include <string>
#include <vector>

namespace longctx {

struct CdfSeries {
  std::string label;
  std::vector<double> values;  // samples; non-positive values are clamped to the axis minimum
  bool dashed = false;
  int colour = -1;  // palette index (e.g. one per policy, short and long alike); -1: the series' index
};

struct CdfPlotOptions {
  std::string title;
  std::string x_label = "TTFT (s)";
  int width = 760, height = 440;
};

// A complete SVG document. Series without samples appear in the legend only.
std::string cdf_svg(const std::vector<CdfSeries>& series, const CdfPlotOptions& opt);

}  // namespace longctx
