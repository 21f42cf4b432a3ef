// Shared by the libFuzzer targets of tests/fuzz: invariant checks that abort
// (so libFuzzer keeps the input that broke them), the bundled model's spec,
// a hand-built spec with a rank-3 input and one with two inputs and outputs.
//
// Not thread-safe to initialise concurrently; libFuzzer runs one input at a
// time.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>

#include "server/core/base/status.h"
#include "server/core/model/model_spec.h"
#include "server/core/model/onnx_model_loader.h"

// Aborts with the file, line, condition and `detail` (a std::string
// expression, evaluated only on failure) when `condition` is false.
#define FUZZ_CHECK(condition, detail)                               \
  do {                                                              \
    if (!(condition)) {                                             \
      ::selu::fuzz::Fail(__FILE__, __LINE__, #condition, (detail)); \
    }                                                               \
  } while (0)

// Prints `line` (a std::string expression, evaluated only then) in verbose mode.
#define FUZZ_NOTE(line)                                    \
  do {                                                     \
    if (::selu::fuzz::Verbose()) ::selu::fuzz::Note(line); \
  } while (0)

namespace selu::fuzz {

// gRPC's default limit on a received status message (metadata) is 8 KB; a
// refusal longer than this would reach the client as a different error.
inline constexpr size_t kMaxClientMessageBytes = 4096;

[[noreturn]] void Fail(const char* file, int line, const char* condition,
                       const std::string& detail);

// True when SELU_FUZZ_VERBOSE is set: the targets then print what each input
// did (to see what a seed or a crash input does).
bool Verbose();
void Note(const std::string& line);

// Drops protobuf's log lines (every malformed input would print some).
void QuietProtobuf();

// `relative` under the source tree: $SELU_SOURCE_DIR, else the folder the
// build was configured from.
std::string SourcePath(const std::string& relative);

// models/digits_snn/1/model.onnx, loaded once; aborts if it does not load.
const core::ModelSpec& DigitsSpec();

// Input "x" of shape [-1, 2, 3] (6 features), one 6 -> 2 Gemm with SELU,
// output "y", batch fixed at 3 by the "file".
const core::ModelSpec& Rank3Spec();

// A graph with two inputs, a [-1, 2] and b [-1, 2, 3] (packed row: a, then
// b), concatenated into an 8 -> 4 dense layer h, and two outputs, h
// [-1, 2, 2] and s = h[:, 1:2] [-1, 1]; batch fixed at 4.
const core::ModelSpec& TwoPortSpec();

// Aborts unless `spec` is what the loader promises on OK: a graph spec
// (steps, not the chain's softmax_output) that CompleteModelSpec accepts as
// it is, ports whose shapes hold their features and pack in order, layers
// all used and in order of first use, weights and biases of the right sizes
// and finite, activations well formed, widths within the limit.
void CheckSpecInvariants(const core::ModelSpec& spec, const core::OnnxLoaderOptions& options);

// Aborts unless `status` is a refusal with one of `allowed` codes and a
// non-empty message of at most `max_message` bytes.
void CheckRefusal(const core::Status& status, std::initializer_list<core::StatusCode> allowed,
                  size_t max_message, const char* what);

}  // namespace selu::fuzz
