#include "server/core/base/client_text.h"

#include <algorithm>
#include <cstdint>

namespace selu::core {
namespace {

// Length of the valid UTF-8 sequence starting at text[i] (2-4), or 0.
size_t Utf8Length(std::string_view text, size_t i, uint32_t* code_point) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  size_t length;
  uint32_t cp;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
    cp = lead & 0x1f;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    cp = lead & 0x0f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    cp = lead & 0x07;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  for (size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3f);
  }
  const bool overlong = (length == 3 && cp < 0x800) || (length == 4 && cp < 0x10000);
  const bool surrogate = cp >= 0xd800 && cp <= 0xdfff;
  if (overlong || surrogate || cp > 0x10ffff) return 0;
  *code_point = cp;
  return length;
}

// Code points that are control characters or change how a line reads.
bool Printable(uint32_t cp) {
  if (cp >= 0x80 && cp <= 0x9f) return false;
  if (cp == 0x2028 || cp == 0x2029 || cp == 0x200e || cp == 0x200f) return false;
  if (cp >= 0x202a && cp <= 0x202e) return false;
  if (cp >= 0x2066 && cp <= 0x2069) return false;
  return true;
}

void AppendByteEscape(unsigned char c, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->append("\\x");
  out->push_back(kHex[c >> 4]);
  out->push_back(kHex[c & 0xf]);
}

}  // namespace

std::string QuoteClientText(std::string_view text, size_t limit) {
  std::string out;
  out.reserve(std::min(text.size(), limit) + 24);
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    std::string piece;
    size_t consumed = 1;
    if (c == '\n') {
      piece = "\\n";
    } else if (c == '\r') {
      piece = "\\r";
    } else if (c == '\t') {
      piece = "\\t";
    } else if (c >= 0x20 && c < 0x7f) {
      piece.assign(1, static_cast<char>(c));
    } else if (c >= 0x80) {
      uint32_t cp = 0;
      const size_t length = Utf8Length(text, i, &cp);
      if (length > 0 && Printable(cp)) {
        piece.assign(text.substr(i, length));
        consumed = length;
      } else if (length > 0) {
        for (size_t k = 0; k < length; ++k) {
          AppendByteEscape(static_cast<unsigned char>(text[i + k]), &piece);
        }
        consumed = length;
      } else {
        AppendByteEscape(c, &piece);
      }
    } else {
      AppendByteEscape(c, &piece);
    }
    if (out.size() + piece.size() > limit) break;
    out += piece;
    i += consumed;
  }
  if (i < text.size()) out += "\xe2\x80\xa6 (" + std::to_string(text.size()) + " bytes)";
  return out;
}

}  // namespace selu::core
