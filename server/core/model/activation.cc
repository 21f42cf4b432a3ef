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
  }
  return "?";
}

}  // namespace selu::core
