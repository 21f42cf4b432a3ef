#include "server/core/base/client_text.h"

#include <gtest/gtest.h>

#include <string>

namespace selu::core {
namespace {

TEST(QuoteClientTextTest, ShortPrintableTextIsUnchanged) {
  EXPECT_EQ(QuoteClientText("digits"), "digits");
  EXPECT_EQ(QuoteClientText("model-1.onnx_v2 (copy) [x]\\y"), "model-1.onnx_v2 (copy) [x]\\y");
  EXPECT_EQ(QuoteClientText(""), "");
  EXPECT_EQ(QuoteClientText(std::string(128, 'a')), std::string(128, 'a'));
}

TEST(QuoteClientTextTest, LongTextIsCutAndSized) {
  EXPECT_EQ(QuoteClientText(std::string(200, 'a')),
            std::string(128, 'a') + "\xe2\x80\xa6 (200 bytes)");
  EXPECT_EQ(QuoteClientText(std::string(129, 'a')),
            std::string(128, 'a') + "\xe2\x80\xa6 (129 bytes)");
  std::string newlines;
  for (int i = 0; i < 64; ++i) newlines += "\\n";
  EXPECT_EQ(QuoteClientText(std::string(100 * 1024, '\n')),
            newlines + "\xe2\x80\xa6 (102400 bytes)");
  EXPECT_EQ(QuoteClientText("abcdef", 3), "abc\xe2\x80\xa6 (6 bytes)");
}

TEST(QuoteClientTextTest, LineBreaksAndControlsAreEscaped) {
  EXPECT_EQ(QuoteClientText("a\nb"), "a\\nb");
  EXPECT_EQ(QuoteClientText("a\r\tb"), "a\\r\\tb");
  EXPECT_EQ(QuoteClientText(std::string("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(QuoteClientText("a\xff"
                            "b"),
            "a\\xffb");
  EXPECT_EQ(QuoteClientText("\x1b[31m\x7f"), "\\x1b[31m\\x7f");
}

TEST(QuoteClientTextTest, PrintableUtf8IsKeptTheRestEscaped) {
  EXPECT_EQ(QuoteClientText("caf\xc3\xa9 \xe6\xa8\xa1\xe5\x9e\x8b \xf0\x9f\x99\x82"),
            "caf\xc3\xa9 \xe6\xa8\xa1\xe5\x9e\x8b \xf0\x9f\x99\x82");
  // NEL (U+0085), LINE SEPARATOR (U+2028), RIGHT-TO-LEFT OVERRIDE (U+202E).
  EXPECT_EQ(QuoteClientText("a\xc2\x85"
                            "b\xe2\x80\xa8"
                            "c\xe2\x80\xae"),
            "a\\xc2\\x85b\\xe2\\x80\\xa8c\\xe2\\x80\\xae");
  // Overlong '/', a lone continuation byte, a truncated sequence, a surrogate.
  EXPECT_EQ(QuoteClientText("\xc0\xaf"), "\\xc0\\xaf");
  EXPECT_EQ(QuoteClientText("\x80"), "\\x80");
  EXPECT_EQ(QuoteClientText("\xe6\xa8"), "\\xe6\\xa8");
  EXPECT_EQ(QuoteClientText("\xed\xa0\x80"), "\\xed\\xa0\\x80");
}

TEST(QuoteClientTextTest, NeverCutsAnEscapeOrACharacter) {
  // 127 'a's then a newline: the escape would end past the limit.
  EXPECT_EQ(QuoteClientText(std::string(127, 'a') + "\n"),
            std::string(127, 'a') + "\xe2\x80\xa6 (128 bytes)");
  EXPECT_EQ(QuoteClientText(std::string(127, 'a') + "\xc3\xa9"),
            std::string(127, 'a') + "\xe2\x80\xa6 (129 bytes)");
}

}  // namespace
}  // namespace selu::core
