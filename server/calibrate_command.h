// `selu-serve calibrate`: gives a model reference statistics computed from a
// user's own data, without touching its file.
//
//   selu-serve calibrate --model PATH/model.onnx --data FILE.csv
//                        [--output PATH] [--batch-rows N]
//
// Loads the model as the server does (same loader and engine options),
// runs the CSV's rows through the engine, and writes reference_stats.json
// (by default beside the model, where the server looks for it) atomically:
// a temporary file in the same folder, then a rename, so a server polling
// the repository never reads half a file.
#pragma once

namespace selu {

// Runs the subcommand; argv[0] is "calibrate". Prints a summary to stdout
// and returns 0; on an error prints "selu-serve calibrate: <message>" to
// stderr and returns 1 (2 for a usage error; 0 after --help).
int RunCalibrate(int argc, char** argv);

}  // namespace selu
