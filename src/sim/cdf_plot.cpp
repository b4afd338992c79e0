#include "sim/cdf_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace longctx {
namespace {

std::string escape_xml(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// Decade tick label: 0.001 → "1ms", 10 → "10s".
std::string decade_label(int e) {
  const double v = std::pow(10.0, e);
  if (e < 0) return fmt("%gms", v * 1e3);
  return fmt("%gs", v);
}

// Colour-blind-safe palette (Okabe–Ito).
const char* kColours[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"};

}  // namespace

std::string cdf_svg(const std::vector<CdfSeries>& series, const CdfPlotOptions& opt) {
  const double left = 70, right = 210, top = 40, bottom = 55;
  const double pw = opt.width - left - right, ph = opt.height - top - bottom;
  double lo = std::numeric_limits<double>::infinity(), hi = 0;
  for (const CdfSeries& s : series)
    for (double v : s.values)
      if (v > 0) lo = std::min(lo, v), hi = std::max(hi, v);
  if (!(hi > 0)) lo = 1e-3, hi = 1;
  int e_lo = static_cast<int>(std::floor(std::log10(lo))), e_hi = static_cast<int>(std::ceil(std::log10(hi)));
  if (e_hi <= e_lo) e_hi = e_lo + 1;
  const double x_min = std::pow(10.0, e_lo);
  auto x_of = [&](double v) {
    const double lv = std::log10(std::max(v, x_min));
    return left + pw * (lv - e_lo) / (e_hi - e_lo);
  };
  auto y_of = [&](double f) { return top + ph * (1.0 - f); };

  std::string svg;
  svg += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  svg += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(opt.width) + "\" height=\"" +
         std::to_string(opt.height) + "\" viewBox=\"0 0 " + std::to_string(opt.width) + " " +
         std::to_string(opt.height) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg += "<text x=\"" + fmt("%.1f", left + pw / 2) + "\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">" +
         escape_xml(opt.title) + "</text>\n";
  // Grid and ticks.
  for (int e = e_lo; e <= e_hi; ++e) {
    const double x = x_of(std::pow(10.0, e));
    svg += "<line x1=\"" + fmt("%.1f", x) + "\" y1=\"" + fmt("%.1f", top) + "\" x2=\"" + fmt("%.1f", x) +
           "\" y2=\"" + fmt("%.1f", top + ph) + "\" stroke=\"#ddd\"/>\n";
    svg += "<text x=\"" + fmt("%.1f", x) + "\" y=\"" + fmt("%.1f", top + ph + 16) +
           "\" text-anchor=\"middle\">" + decade_label(e) + "</text>\n";
  }
  for (int i = 0; i <= 4; ++i) {
    const double f = i / 4.0, y = y_of(f);
    svg += "<line x1=\"" + fmt("%.1f", left) + "\" y1=\"" + fmt("%.1f", y) + "\" x2=\"" + fmt("%.1f", left + pw) +
           "\" y2=\"" + fmt("%.1f", y) + "\" stroke=\"#ddd\"/>\n";
    svg += "<text x=\"" + fmt("%.1f", left - 6) + "\" y=\"" + fmt("%.1f", y + 4) + "\" text-anchor=\"end\">" +
           fmt("%.2f", f) + "</text>\n";
  }
  svg += "<rect x=\"" + fmt("%.1f", left) + "\" y=\"" + fmt("%.1f", top) + "\" width=\"" + fmt("%.1f", pw) +
         "\" height=\"" + fmt("%.1f", ph) + "\" fill=\"none\" stroke=\"#333\"/>\n";
  svg += "<text x=\"" + fmt("%.1f", left + pw / 2) + "\" y=\"" + fmt("%.1f", opt.height - 15.0) +
         "\" text-anchor=\"middle\">" + escape_xml(opt.x_label) + " (log scale)</text>\n";
  svg += "<text transform=\"translate(18," + fmt("%.1f", top + ph / 2) +
         ") rotate(-90)\" text-anchor=\"middle\">fraction of requests</text>\n";

  for (size_t i = 0; i < series.size(); ++i) {
    const CdfSeries& s = series[i];
    const size_t c = s.colour >= 0 ? static_cast<size_t>(s.colour) : i;
    const char* colour = kColours[c % (sizeof kColours / sizeof kColours[0])];
    const std::string dash = s.dashed ? " stroke-dasharray=\"6,4\"" : "";
    std::vector<double> v = s.values;
    std::sort(v.begin(), v.end());
    if (!v.empty()) {
      // Empirical CDF as steps: at the k-th smallest value it rises from (k-1)/n to k/n.
      // Thin long series to at most ~2000 points (the curve looks the same).
      const size_t n = v.size(), stride = std::max<size_t>(1, n / 2000);
      std::string pts = fmt("%.1f", x_of(v[0])) + "," + fmt("%.1f", y_of(0)) + " ";
      for (size_t k = 0; k < n; k += stride) {
        const size_t last = std::min(n - 1, k + stride - 1);
        pts += fmt("%.1f", x_of(v[k])) + "," + fmt("%.1f", y_of(static_cast<double>(k) / n)) + " ";
        pts += fmt("%.1f", x_of(v[last])) + "," + fmt("%.1f", y_of(static_cast<double>(last + 1) / n)) + " ";
      }
      svg += "<polyline fill=\"none\" stroke=\"" + std::string(colour) + "\" stroke-width=\"1.8\"" + dash +
             " points=\"" + pts + "\"/>\n";
    }
    const double ly = top + 10 + 18.0 * static_cast<double>(i), lx = left + pw + 12;
    svg += "<line x1=\"" + fmt("%.1f", lx) + "\" y1=\"" + fmt("%.1f", ly) + "\" x2=\"" + fmt("%.1f", lx + 24) +
           "\" y2=\"" + fmt("%.1f", ly) + "\" stroke=\"" + colour + "\" stroke-width=\"2\"" + dash + "/>\n";
    svg += "<text x=\"" + fmt("%.1f", lx + 30) + "\" y=\"" + fmt("%.1f", ly + 4) + "\">" + escape_xml(s.label) +
           (s.values.empty() ? " (none)" : "") + "</text>\n";
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace longctx
