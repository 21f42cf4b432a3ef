#include "server/core/monitor/calibration.h"

#include <algorithm>
#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include "server/core/base/stable_file.h"
#include "server/core/monitor/unit_moments.h"

namespace selu::core {
namespace {

constexpr std::string_view kBlanks = " \t";
constexpr size_t kMaxQuotedChars = 40;

std::string_view Trim(std::string_view s) {
  const size_t begin = s.find_first_not_of(kBlanks);
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(kBlanks) - begin + 1);
}

// A field as it appears in a message: printable, and not a whole line long.
std::string Quoted(std::string_view field) {
  std::string out = "'";
  for (size_t i = 0; i < field.size() && i < kMaxQuotedChars; ++i) {
    const unsigned char c = static_cast<unsigned char>(field[i]);
    out += c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?';
  }
  if (field.size() > kMaxQuotedChars) out += "...";
  return out + "'";
}

enum class FieldProblem { kNone, kEmpty, kNotNumber, kNotFinite, kOutOfRange };

// Parses one trimmed field. from_chars is locale-independent but takes no
// leading '+', which spreadsheets and printf("%+g") write.
FieldProblem ParseField(std::string_view field, float* value) {
  if (field.empty()) return FieldProblem::kEmpty;
  std::string_view number = field;
  if (number.front() == '+') {
    number.remove_prefix(1);
    if (number.empty() || number.front() == '-' || number.front() == '+') {
      return FieldProblem::kNotNumber;
    }
  }
  const char* end = number.data() + number.size();
  double v = 0;
  const auto [ptr, ec] = std::from_chars(number.data(), end, v);
  if (ptr != end || (ec != std::errc() && ec != std::errc::result_out_of_range)) {
    return FieldProblem::kNotNumber;
  }
  if (ec == std::errc::result_out_of_range) {
    // from_chars reports underflow like overflow; strtod tells them apart.
    v = std::strtod(std::string(number).c_str(), nullptr);
    if (std::abs(v) > 1.0) return FieldProblem::kOutOfRange;
  }
  if (!std::isfinite(v)) return FieldProblem::kNotFinite;
  if (std::abs(v) > double(FLT_MAX)) return FieldProblem::kOutOfRange;
  *value = static_cast<float>(v);
  return FieldProblem::kNone;
}

std::string FieldProblemText(FieldProblem problem, std::string_view field) {
  switch (problem) {
    case FieldProblem::kNone:
      break;
    case FieldProblem::kEmpty:
      return "empty field";
    case FieldProblem::kNotNumber:
      return Quoted(field) + " is not a number";
    case FieldProblem::kNotFinite:
      return Quoted(field) + " is not finite";
    case FieldProblem::kOutOfRange:
      return Quoted(field) + " is out of the float32 range";
  }
  return "";
}

// Calls `visit(field, field_number)` for each trimmed field of `line` until
// it returns false; allocates nothing.
template <typename Visit>
void ForEachField(std::string_view line, Visit&& visit) {
  int64_t number = 1;
  while (true) {
    const size_t comma = line.find(',');
    if (!visit(Trim(line.substr(0, comma)), number) || comma == std::string_view::npos) return;
    line.remove_prefix(comma + 1);
    ++number;
  }
}

// A header names its columns: no field is a number. (One text field among
// numbers is a typo in the first sample, answered with its line and column,
// not a header to skip silently.)
bool IsHeader(std::string_view line) {
  bool header = true;
  ForEachField(line, [&](std::string_view field, int64_t) {
    float ignored = 0;
    header = ParseField(field, &ignored) == FieldProblem::kNotNumber;
    return header;
  });
  return header;
}

std::string FieldCount(int64_t n) { return std::to_string(n) + (n == 1 ? " field" : " fields"); }

class CsvError {
 public:
  explicit CsvError(const std::string& path) : path_(path) {}
  Status At(int64_t line, const std::string& what) const {
    return InvalidArgumentError(path_ + ":" + std::to_string(line) + ": " + what);
  }
  Status At(int64_t line, int64_t field, const std::string& what) const {
    return InvalidArgumentError(path_ + ":" + std::to_string(line) + ":" + std::to_string(field) +
                                ": " + what);
  }

 private:
  const std::string& path_;
};

// Sees every tensor of the calibration's Run() calls.
class CalibrationObserver final : public LayerObserver {
 public:
  explicit CalibrationObserver(const ModelSpec& spec) {
    tensors.emplace_back(spec.input_features);
    for (const ObservedLayer& l : ObservedLayers(spec)) tensors.emplace_back(l.features);
  }
  void OnInput(const float* input, int64_t rows, int64_t) override { tensors[0].Add(input, rows); }
  void OnLayer(int layer, const float* output, int64_t rows, int64_t) override {
    tensors[static_cast<size_t>(layer) + 1].Add(output, rows);
  }

  std::vector<UnitMoments> tensors;  // [0] the input, [1 + k] dense layer k
};

bool AllFinite(const TensorStats& t) {
  const auto finite = [](double v) { return std::isfinite(v); };
  return finite(t.mean) && finite(t.variance) &&
         std::all_of(t.unit_mean.begin(), t.unit_mean.end(), finite) &&
         std::all_of(t.unit_variance.begin(), t.unit_variance.end(), finite);
}

}  // namespace

StatusOr<FeatureRows> ReadFeatureCsv(const std::string& path, int64_t features) {
  if (features < 1) return InvalidArgumentError("a model takes at least one feature");
  auto bytes = ReadStableFile(path, kMaxFeatureCsvBytes);
  if (!bytes.ok()) return bytes.status();
  std::string_view text = *bytes;
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // a UTF-8 byte order mark

  const CsvError error(path);
  FeatureRows out;
  out.features = features;
  int64_t line_number = 0;
  int64_t first_blank = 0;  // a blank line so far, allowed only if nothing follows it
  while (!text.empty()) {
    ++line_number;
    const size_t newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (Trim(line).empty()) {
      if (first_blank == 0) first_blank = line_number;
      continue;
    }
    if (first_blank != 0) return error.At(first_blank, "empty line between rows");

    const int64_t fields = 1 + std::count(line.begin(), line.end(), ',');
    if (line_number == 1 && IsHeader(line)) {
      if (fields != features) {
        return error.At(line_number, "the header has " + FieldCount(fields) + ", the model takes " +
                                         std::to_string(features));
      }
      out.has_header = true;
      continue;
    }
    if (fields != features) {
      return error.At(line_number, "has " + FieldCount(fields) + ", the model takes " +
                                       std::to_string(features));
    }
    Status bad;
    ForEachField(line, [&](std::string_view field, int64_t number) {
      float v = 0;
      const FieldProblem problem = ParseField(field, &v);
      if (problem != FieldProblem::kNone) {
        bad = error.At(line_number, number, FieldProblemText(problem, field));
        return false;
      }
      out.values.push_back(v);
      return true;
    });
    SELU_RETURN_IF_ERROR(bad);
    ++out.rows;
  }
  if (out.rows == 0) return InvalidArgumentError(path + ": no data rows");
  return out;
}

StatusOr<ReferenceStats> Calibrate(const MlpEngine& engine, const float* data, int64_t rows,
                                   int64_t batch_rows) {
  if (rows < 2) {
    return InvalidArgumentError("calibration needs at least 2 rows of data, got " +
                                std::to_string(rows));
  }
  const int64_t max_rows = engine.options().max_rows;
  if (batch_rows < 1 || batch_rows > max_rows) {
    return InvalidArgumentError("calibration batch rows must be in [1, " +
                                std::to_string(max_rows) + "], got " + std::to_string(batch_rows));
  }
  const ModelSpec& spec = engine.spec();
  const int64_t in = engine.input_features();
  std::vector<float> output(
      static_cast<size_t>(std::min(batch_rows, rows) * engine.output_features()));
  CalibrationObserver observer(spec);
  auto workspace = engine.CreateWorkspace();
  for (int64_t done = 0; done < rows;) {
    const int64_t n = std::min(batch_rows, rows - done);
    SELU_RETURN_IF_ERROR(
        engine.Run(*workspace, data + static_cast<size_t>(done * in), n, output.data(), observer));
    done += n;
  }

  ReferenceStats ref;
  ref.split = "calibration";
  ref.rows = rows;
  ref.input = StatsOf(observer.tensors[0]);
  if (!AllFinite(*ref.input)) return InvalidArgumentError("the data hold non-finite values");
  const std::vector<ObservedLayer> observed = ObservedLayers(spec);
  for (size_t k = 0; k < observed.size(); ++k) {
    LayerReference layer;
    layer.index = static_cast<int64_t>(k);
    layer.name = observed[k].name;
    layer.activation = LayerActivationName(observed[k]);
    layer.stats = StatsOf(observer.tensors[k + 1]);
    if (!AllFinite(layer.stats)) {
      return InvalidArgumentError("the data drive layer " + std::to_string(k) + " ('" + layer.name +
                                  "') to non-finite values: are they scaled as the model expects?");
    }
    ref.layers.push_back(std::move(layer));
  }
  return ref;
}

}  // namespace selu::core
