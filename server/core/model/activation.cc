#include "server/core/model/activation.h"

namespace selu::core {

std::string_view ActivationName(ActivationKind kind) {
  switch (kind) {
    case ActivationKind::kSelu:
      return "Selu";
    case ActivationKind::kElu:
      return "Elu";
    case ActivationKind::kRelu:
      return "Relu";
    case ActivationKind::kTanh:
      return "Tanh";
    case ActivationKind::kSigmoid:
      return "Sigmoid";
    case ActivationKind::kLeakyRelu:
      return "LeakyRelu";
    case ActivationKind::kPRelu:
      return "PRelu";
    case ActivationKind::kHardSigmoid:
      return "HardSigmoid";
    case ActivationKind::kSoftplus:
      return "Softplus";
    case ActivationKind::kClip:
      return "Clip";
    case ActivationKind::kGelu:
      return "Gelu";
    case ActivationKind::kSilu:
      return "Silu";
    case ActivationKind::kHardSwish:
      return "HardSwish";
    case ActivationKind::kLinear:
      return "Linear";
    case ActivationKind::kScale:
      return "Scale";
    case ActivationKind::kShift:
      return "Shift";
  }
  return "?";
}

}  // namespace selu::core
