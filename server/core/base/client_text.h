// Text a client sent (model names and versions, tensor names, datatypes,
// parameter keys and values, a load request's config JSON) made safe to quote
// in a status message or a log line.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace selu::core {

// How many bytes of client text a message quotes: with the suffix, a quote
// stays far below gRPC's 8 KB metadata limit, however long the text.
inline constexpr size_t kClientTextLimit = 128;

// Returns `text` as a message may quote it (the caller adds the quotes):
// - printable ASCII (0x20-0x7e, backslash included) and valid UTF-8 that is
//   printable are kept as they are, so a short, ordinary name comes out
//   unchanged;
// - '\n', '\r' and '\t' become the two characters \n, \r, \t; every other
//   byte below 0x20 and 0x7f, every byte of invalid or overlong UTF-8, and
//   the bytes of the code points that move or break a line or reorder text
//   (U+0080-U+009F, U+2028, U+2029, the bidirectional controls U+200E,
//   U+200F, U+202A-U+202E, U+2066-U+2069) become \xNN, one per byte;
// - at most `limit` bytes of that come out (never half a character or half
//   an escape); when some of it is left out, "… (N bytes)" follows, N being
//   the size of `text`.
// So a log line quoting client text cannot be split into forged lines, and
// a status message quoting it stays short. A literal backslash is kept, so
// "\n" in the result may also be a backslash the client sent followed by n.
// Thread-safe (a pure function).
std::string QuoteClientText(std::string_view text, size_t limit = kClientTextLimit);

}  // namespace selu::core
