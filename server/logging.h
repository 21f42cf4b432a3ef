// Logging: one line per event, text or JSON (one object per line, fields
// escaped), through spdlog on stderr.
#pragma once

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

namespace selu {

// Configures the default logger. `format` is "text" or "json".
void SetUpLogging(const std::string& level, const std::string& format);

// Escapes `text` for inclusion in a JSON string when JSON logging is on;
// otherwise escapes line breaks (\n, \r) and other control bytes (\t,
// \xNN), so one event stays one line. It does not shorten: text a client
// sent is bounded where the message is built (core::QuoteClientText).
std::string LogText(std::string_view text);

}  // namespace selu
