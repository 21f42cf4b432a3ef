// GraphReader's feature selections and joins: Gather, Slice and Split of
// non-batch axes become a kSlice when they take one contiguous range of each
// row's features (in C order) and nothing at all when they take everything;
// Squeeze, Unsqueeze, Reshape and Flatten only regroup a row's features, so
// their output names their input's tensor with a new logical shape; Concat
// along features is a kConcat. Integer constants (indices, axes, shapes) are
// decoded here.
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "server/core/model/onnx_graph_reader.h"

namespace selu::core::onnx_internal {
namespace {

constexpr int64_t kMaxIntConstant = int64_t{1} << 16;

int64_t Product(const std::vector<int64_t>& dims, size_t from = 0, size_t to = SIZE_MAX) {
  int64_t p = 1;
  for (size_t d = from; d < dims.size() && d < to; ++d) p *= dims[d];
  return p;
}

std::string Batched(const std::vector<int64_t>& dims) {
  return "[batch" + (dims.empty() ? std::string("]") : "," + ShapeText(dims).substr(1));
}

}  // namespace

Status ReadInts(const ConstTensor& ct, const std::string& label, std::vector<int64_t>* out) {
  const onnx::TensorProto& t = *ct.tensor;
  const std::string what = "constant " + Quote(t.name());
  if (t.data_location() == onnx::TensorProto::EXTERNAL) {
    return Refuse(label, what + " uses external data; store it inline");
  }
  int64_t count = 1;
  for (int64_t d : t.dims()) {
    if (d < 0 || (d > 0 && count > kMaxIntConstant / d)) {
      return Refuse(label, what + " has a negative or too large dimension");
    }
    count *= d;
  }
  out->clear();
  const size_t n = static_cast<size_t>(count);
  if (t.data_type() == onnx::TensorProto::INT64 || t.data_type() == onnx::TensorProto::INT32) {
    const bool wide = t.data_type() == onnx::TensorProto::INT64;
    const size_t size = wide ? 8 : 4;
    if (!t.raw_data().empty()) {
      if (t.raw_data().size() != n * size) {
        return Refuse(label, what + " holds " + std::to_string(t.raw_data().size()) +
                                 " bytes of raw data, expected " + std::to_string(n * size));
      }
      for (size_t i = 0; i < n; ++i) {
        if (wide) {
          int64_t v;
          std::memcpy(&v, t.raw_data().data() + i * size, size);
          out->push_back(v);
        } else {
          int32_t v;
          std::memcpy(&v, t.raw_data().data() + i * size, size);
          out->push_back(v);
        }
      }
      return OkStatus();
    }
    const size_t have = wide ? t.int64_data_size() : t.int32_data_size();
    if (have != n) {
      return Refuse(label, what + " holds " + std::to_string(have) + " values, expected " +
                               std::to_string(n));
    }
    for (size_t i = 0; i < n; ++i) {
      out->push_back(wide ? t.int64_data(static_cast<int>(i)) : t.int32_data(static_cast<int>(i)));
    }
    return OkStatus();
  }
  return Refuse(label, what + " has element type " +
                           (onnx::TensorProto::DataType_IsValid(t.data_type())
                                ? onnx::TensorProto::DataType_Name(
                                      static_cast<onnx::TensorProto::DataType>(t.data_type()))
                                : std::to_string(t.data_type())) +
                           "; expected INT64 or INT32");
}

Status IntsAttribute(const onnx::NodeProto& node, const std::string& label, std::string_view name,
                     std::vector<int64_t>* values, bool* present) {
  values->clear();
  const auto* attr = FindAttribute(node, name);
  *present = attr != nullptr;
  if (attr == nullptr) return OkStatus();
  if (attr->type() != onnx::AttributeProto::INTS) {
    return Refuse(label, "attribute '" + std::string(name) + "' must be a list of ints");
  }
  values->assign(attr->ints().begin(), attr->ints().end());
  return OkStatus();
}

StatusOr<int> GraphReader::FeatureAxis(const std::string& label, int64_t axis, size_t dims,
                                       const char* what) {
  const int64_t rank = static_cast<int64_t>(dims) + 1;
  if (axis < -rank || axis >= rank) {
    return Refuse(label, "axis " + std::to_string(axis) + " is out of range for rank " +
                             std::to_string(rank));
  }
  if (axis < 0) axis += rank;
  if (axis == 0) {
    return Refuse(label, std::string(what) +
                             " along the batch axis (0) is not supported; only the features "
                             "of each row may be selected or joined");
  }
  return static_cast<int>(axis - 1);
}

Status GraphReader::AxesOf(const onnx::NodeProto& node, const std::string& label,
                           int input_from_opset13, std::vector<int64_t>* axes, bool* present) {
  if (opset_ < 13) return IntsAttribute(node, label, "axes", axes, present);
  auto c = ConstantInput(node, label, input_from_opset13);
  if (!c.ok()) return c.status();
  *present = *c != nullptr;
  axes->clear();
  return *present ? ReadInts(**c, label, axes) : OkStatus();
}

Status GraphReader::SelectBox(const onnx::NodeProto& node, const std::string& label, int index,
                              const std::string& in, const std::string& out,
                              const std::vector<int64_t>& starts, const std::vector<int64_t>& lens,
                              std::vector<int64_t> out_dims) {
  const Named& src = *FindTensor(in);
  const std::vector<int64_t>& dims = src.dims;
  bool all = true;
  for (size_t d = 0; d < dims.size(); ++d) all = all && starts[d] == 0 && lens[d] == dims[d];
  if (all) return Alias(in, out, label, std::move(out_dims), index);
  // One contiguous range per row: single entries on the leading axes, any
  // range on the next, everything on the rest.
  size_t k = 0;
  while (k + 1 < dims.size() && lens[k] == 1) ++k;
  for (size_t d = k + 1; d < dims.size(); ++d) {
    if (starts[d] != 0 || lens[d] != dims[d]) {
      return Refuse(label, "takes [" + std::to_string(starts[d]) + ", " +
                               std::to_string(starts[d] + lens[d]) + ") of axis " +
                               std::to_string(d + 1) + " of " + Batched(dims) + " while axis " +
                               std::to_string(k + 1) + " keeps " + std::to_string(lens[k]) +
                               " entries: the selected features are not one contiguous range "
                               "of each row (in C order)");
    }
  }
  int64_t offset = 0;
  for (size_t d = 0; d < dims.size(); ++d) offset += starts[d] * Product(dims, d + 1);
  GraphStep step;
  step.kind = StepKind::kSlice;
  step.name = node.name();
  step.inputs = {src.id};
  step.offset = offset;
  const int64_t features = Product(lens);
  const int id = AddStep(std::move(step), out, features);
  return Bind(out, label, {id, std::move(out_dims), true});
}

Status GraphReader::ReadGather(const onnx::NodeProto& node, const std::string& label, int index) {
  auto in = DataInput(node, label, 0);
  if (!in.ok()) return in.status();
  auto c = ConstantInput(node, label, 1);
  if (!c.ok()) return c.status();
  if (*c == nullptr) return Refuse(label, "has no indices");
  std::vector<int64_t> indices;
  SELU_RETURN_IF_ERROR(ReadInts(**c, label, &indices));
  const bool scalar = (*c)->tensor->dims_size() == 0;
  if (indices.size() != 1 || (*c)->tensor->dims_size() > 1) {
    return Refuse(label, "indices must be one constant index; gathering " +
                             std::to_string(indices.size()) + " entries is not supported");
  }
  auto axis_attr = IntAttribute(node, label, "axis", 0);
  if (!axis_attr.ok()) return axis_attr.status();
  std::vector<int64_t> dims = (*in)->dims;
  auto axis = FeatureAxis(label, *axis_attr, dims.size(), "Gather");
  if (!axis.ok()) return axis.status();
  const size_t j = static_cast<size_t>(*axis);
  int64_t at = indices[0];
  if (at < -dims[j] || at >= dims[j]) {
    return Refuse(label, "index " + std::to_string(at) + " is out of range for axis " +
                             std::to_string(j + 1) + " of size " + std::to_string(dims[j]));
  }
  if (at < 0) at += dims[j];
  std::vector<int64_t> starts(dims.size(), 0), lens = dims;
  starts[j] = at;
  lens[j] = 1;
  std::vector<int64_t> out_dims = lens;
  if (scalar) out_dims.erase(out_dims.begin() + static_cast<std::ptrdiff_t>(j));
  return SelectBox(node, label, index, node.input(0), node.output(0), starts, lens,
                   std::move(out_dims));
}

Status GraphReader::ReadSlice(const onnx::NodeProto& node, const std::string& label, int index) {
  auto in = DataInput(node, label, 0);
  if (!in.ok()) return in.status();
  std::vector<int64_t> v[4];  // starts, ends, axes, steps
  bool present[4] = {false, false, false, false};
  static const char* const kNames[] = {"starts", "ends", "axes", "steps"};
  for (int i = 0; i < 4; ++i) {
    if (opset_ < 10) {
      if (i < 3) SELU_RETURN_IF_ERROR(IntsAttribute(node, label, kNames[i], &v[i], &present[i]));
      continue;
    }
    auto c = ConstantInput(node, label, i + 1);
    if (!c.ok()) return c.status();
    present[i] = *c != nullptr;
    if (present[i]) SELU_RETURN_IF_ERROR(ReadInts(**c, label, &v[i]));
  }
  if (!present[0] || !present[1]) return Refuse(label, "has no starts or ends");
  const size_t n = v[0].size();
  std::vector<int64_t> dims = (*in)->dims;
  if (!present[2]) {
    for (size_t i = 0; i < n; ++i) v[2].push_back(static_cast<int64_t>(i));
  }
  if (!present[3]) v[3].assign(n, 1);
  if (v[1].size() != n || v[2].size() != n || v[3].size() != n) {
    return Refuse(label, "starts, ends, axes and steps differ in length");
  }
  const int64_t rank = static_cast<int64_t>(dims.size()) + 1;
  std::vector<int64_t> starts(dims.size(), 0), lens = dims;
  std::vector<bool> seen(dims.size() + 1, false);
  for (size_t i = 0; i < n; ++i) {
    int64_t axis = v[2][i];
    if (axis < -rank || axis >= rank) {
      return Refuse(label, "axis " + std::to_string(axis) + " is out of range for rank " +
                               std::to_string(rank));
    }
    if (axis < 0) axis += rank;
    if (seen[static_cast<size_t>(axis)]) return Refuse(label, "slices an axis twice");
    seen[static_cast<size_t>(axis)] = true;
    if (v[3][i] != 1) {
      return Refuse(label, "step " + std::to_string(v[3][i]) + " on axis " + std::to_string(axis) +
                               " is not supported; only step 1 takes a contiguous range");
    }
    int64_t s = v[0][i], e = v[1][i];
    if (axis == 0) {
      if (s == 0 && e >= std::numeric_limits<int32_t>::max()) continue;  // all rows
      return Refuse(label,
                    "slices the batch axis (0); only the features of each row may be "
                    "selected");
    }
    const int64_t size = dims[static_cast<size_t>(axis - 1)];
    if (s < 0) s += size;
    if (e < 0) e += size;
    s = s < 0 ? 0 : (s > size ? size : s);
    e = e < 0 ? 0 : (e > size ? size : e);
    if (e <= s) return Refuse(label, "selects nothing of axis " + std::to_string(axis));
    starts[static_cast<size_t>(axis - 1)] = s;
    lens[static_cast<size_t>(axis - 1)] = e - s;
  }
  return SelectBox(node, label, index, node.input(0), node.output(0), starts, lens, lens);
}

Status GraphReader::ReadSplit(const onnx::NodeProto& node, const std::string& label, int index) {
  auto in = DataInput(node, label, 0);
  if (!in.ok()) return in.status();
  auto axis_attr = IntAttribute(node, label, "axis", 0);
  if (!axis_attr.ok()) return axis_attr.status();
  const std::vector<int64_t> dims = (*in)->dims;
  auto axis = FeatureAxis(label, *axis_attr, dims.size(), "Split");
  if (!axis.ok()) return axis.status();
  const size_t j = static_cast<size_t>(*axis);
  const int64_t size = dims[j];
  const int64_t parts = node.output_size();
  std::vector<int64_t> sizes;
  bool present = false;
  if (opset_ >= 13) {
    auto c = ConstantInput(node, label, 1);
    if (!c.ok()) return c.status();
    present = *c != nullptr;
    if (present) SELU_RETURN_IF_ERROR(ReadInts(**c, label, &sizes));
  } else {
    SELU_RETURN_IF_ERROR(IntsAttribute(node, label, "split", &sizes, &present));
  }
  if (!present) {
    // Equal parts; from opset 18 the last may be smaller.
    const int64_t each = (size + parts - 1) / parts;
    if (size % parts != 0 && opset_ < 18) {
      return Refuse(label, "cannot split " + std::to_string(size) + " entries into " +
                               std::to_string(parts) + " equal parts");
    }
    for (int64_t p = 0; p < parts; ++p) sizes.push_back(std::min(each, size - p * each));
  }
  if (static_cast<int64_t>(sizes.size()) != parts) {
    return Refuse(label, "has " + std::to_string(parts) + " outputs but " +
                             std::to_string(sizes.size()) + " split sizes");
  }
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s <= 0 || s > size) return Refuse(label, "has an empty or oversized part");
    total += s;
  }
  if (total != size) {
    return Refuse(label, "split sizes add up to " + std::to_string(total) + ", axis " +
                             std::to_string(j + 1) + " has " + std::to_string(size));
  }
  int64_t at = 0;
  for (int p = 0; p < parts; ++p) {
    std::vector<int64_t> starts(dims.size(), 0), lens = dims;
    starts[j] = at;
    lens[j] = sizes[static_cast<size_t>(p)];
    at += lens[j];
    if (node.output(p).empty()) continue;
    SELU_RETURN_IF_ERROR(
        SelectBox(node, label, index, node.input(0), node.output(p), starts, lens, lens));
  }
  return OkStatus();
}

Status GraphReader::ReadSqueeze(const onnx::NodeProto& node, const std::string& label, int index) {
  auto in = DataInput(node, label, 0);
  if (!in.ok()) return in.status();
  std::vector<int64_t> axes;
  bool present = false;
  SELU_RETURN_IF_ERROR(AxesOf(node, label, 1, &axes, &present));
  const std::vector<int64_t>& dims = (*in)->dims;
  std::vector<bool> drop(dims.size(), false);
  if (!present) {
    if (spec_.fixed_batch_size == 1) {
      return Refuse(label, "has no axes and would squeeze the batch dimension of size 1 too");
    }
    for (size_t d = 0; d < dims.size(); ++d) drop[d] = dims[d] == 1;
  }
  for (int64_t a : axes) {
    auto axis = FeatureAxis(label, a, dims.size(), "Squeeze");
    if (!axis.ok()) return axis.status();
    if (dims[static_cast<size_t>(*axis)] != 1) {
      return Refuse(label, "axis " + std::to_string(*axis + 1) + " has size " +
                               std::to_string(dims[static_cast<size_t>(*axis)]) + ", not 1");
    }
    drop[static_cast<size_t>(*axis)] = true;
  }
  std::vector<int64_t> out;
  for (size_t d = 0; d < dims.size(); ++d) {
    if (!drop[d]) out.push_back(dims[d]);
  }
  return Alias(node.input(0), node.output(0), label, std::move(out), index);
}

Status GraphReader::ReadUnsqueeze(const onnx::NodeProto& node, const std::string& label,
                                  int index) {
  auto in = DataInput(node, label, 0);
  if (!in.ok()) return in.status();
  std::vector<int64_t> axes;
  bool present = false;
  SELU_RETURN_IF_ERROR(AxesOf(node, label, 1, &axes, &present));
  if (!present || axes.empty()) return Refuse(label, "has no axes");
  const std::vector<int64_t>& dims = (*in)->dims;
  const size_t out_dims = dims.size() + axes.size();
  if (out_dims > 64) return Refuse(label, "makes a tensor of rank over 64");
  std::vector<bool> inserted(out_dims, false);
  for (int64_t a : axes) {
    auto axis = FeatureAxis(label, a, out_dims, "Unsqueeze");
    if (!axis.ok()) return axis.status();
    if (inserted[static_cast<size_t>(*axis)]) return Refuse(label, "repeats an axis");
    inserted[static_cast<size_t>(*axis)] = true;
  }
  std::vector<int64_t> out;
  size_t next = 0;
  for (size_t d = 0; d < out_dims; ++d) out.push_back(inserted[d] ? 1 : dims[next++]);
  return Alias(node.input(0), node.output(0), label, std::move(out), index);
}

Status GraphReader::ReadReshape(const onnx::NodeProto& node, const std::string& label, int index) {
  auto in = DataInput(node, label, 0);
  if (!in.ok()) return in.status();
  auto c = ConstantInput(node, label, 1);
  if (!c.ok()) return c.status();
  if (*c == nullptr) return Refuse(label, "has no shape input");
  std::vector<int64_t> shape;
  SELU_RETURN_IF_ERROR(ReadInts(**c, label, &shape));
  auto allowzero = IntAttribute(node, label, "allowzero", 0);
  if (!allowzero.ok()) return allowzero.status();
  const std::vector<int64_t>& dims = (*in)->dims;
  const int64_t features = spec_.tensors[static_cast<size_t>((*in)->id)].features;
  if (shape.empty() || shape.size() > 64) return Refuse(label, "has a shape of rank 0 or over 64");
  const int64_t first = shape[0];
  const bool keeps_batch = (first == 0 && *allowzero == 0) || first == -1 ||
                           (spec_.fixed_batch_size > 0 && first == spec_.fixed_batch_size);
  if (!keeps_batch) {
    return Refuse(label, "new shape " + ShapeText(shape) +
                             " does not keep the batch dimension first (0, -1 or the batch "
                             "size); only the features of each row may be regrouped");
  }
  std::vector<int64_t> out;
  int infer = first == -1 ? 0 : -1;  // index into shape of the inferred dimension
  int64_t known = 1;
  for (size_t i = 1; i < shape.size(); ++i) {
    int64_t d = shape[i];
    if (d == 0 && *allowzero == 0) {
      if (i > dims.size())
        return Refuse(label,
                      "copies dimension " + std::to_string(i) + ", which the input does not have");
      d = dims[i - 1];
    }
    if (d == -1) {
      if (infer >= 0) return Refuse(label, "new shape " + ShapeText(shape) + " has two -1");
      infer = static_cast<int>(i);
      out.push_back(-1);
      continue;
    }
    if (d <= 0 || d > features) {
      return Refuse(label, "new shape " + ShapeText(shape) + " has dimension " + std::to_string(d));
    }
    known *= d;
    if (known > features) break;
    out.push_back(d);
  }
  if (infer > 0) {
    if (known == 0 || features % known != 0) {
      return Refuse(label, "cannot regroup " + std::to_string(features) + " features into " +
                               ShapeText(shape));
    }
    for (int64_t& d : out) d = d == -1 ? features / known : d;
    known = features;
  }
  if (known != features || out.size() + 1 != shape.size()) {
    return Refuse(label, "reshapes " + std::to_string(features) + " features per row into " +
                             ShapeText(shape));
  }
  return Alias(node.input(0), node.output(0), label, std::move(out), index);
}

Status GraphReader::ReadFlatten(const onnx::NodeProto& node, const std::string& label, int index) {
  auto in = DataInput(node, label, 0);
  if (!in.ok()) return in.status();
  const int64_t rank = static_cast<int64_t>((*in)->dims.size()) + 1;
  auto axis = IntAttribute(node, label, "axis", 1);
  if (!axis.ok()) return axis.status();
  if (*axis != 1 && *axis != 1 - rank) {
    return Refuse(label, "axis=" + std::to_string(*axis) +
                             " is not supported; only axis=1 keeps the batch dimension");
  }
  const int64_t features = spec_.tensors[static_cast<size_t>((*in)->id)].features;
  return Alias(node.input(0), node.output(0), label, {features}, index);
}

Status GraphReader::ReadConcat(const onnx::NodeProto& node, const std::string& label) {
  if (FindAttribute(node, "axis") == nullptr) return Refuse(label, "has no axis");
  auto axis_attr = IntAttribute(node, label, "axis", 1);
  if (!axis_attr.ok()) return axis_attr.status();
  if (node.input_size() == 0) return Refuse(label, "has no inputs");
  std::vector<const Named*> ins;
  for (int i = 0; i < node.input_size(); ++i) {
    auto in = DataInput(node, label, i);
    if (!in.ok()) return in.status();
    ins.push_back(*in);
  }
  std::vector<int64_t> dims = ins[0]->dims;
  auto axis = FeatureAxis(label, *axis_attr, dims.size(), "Concat");
  if (!axis.ok()) return axis.status();
  const size_t j = static_cast<size_t>(*axis);
  GraphStep step;
  step.kind = StepKind::kConcat;
  step.name = node.name();
  int64_t features = 0;
  for (size_t i = 0; i < ins.size(); ++i) {
    const std::vector<int64_t>& d = ins[i]->dims;
    bool same = d.size() == dims.size();
    for (size_t k = 0; same && k < d.size(); ++k) same = k == j || d[k] == dims[k];
    if (!same) {
      return Refuse(label, "joins " + Batched(ins[0]->dims) + " and " + Batched(d) +
                               " along axis " + std::to_string(j + 1) +
                               "; the other dimensions must match");
    }
    if (i > 0) dims[j] += d[j];
    features += spec_.tensors[static_cast<size_t>(ins[i]->id)].features;
    step.inputs.push_back(ins[i]->id);
  }
  if (Product(dims, 0, j) != 1) {
    return Refuse(label, "joins along axis " + std::to_string(j + 1) + " of " +
                             Batched(ins[0]->dims) +
                             ": the result is not each input's features one after another "
                             "in a row (an earlier axis has more than one entry)");
  }
  if (features > options_.max_features) {
    return Refuse(label, "makes more than " + std::to_string(options_.max_features) + " features");
  }
  if (ins.size() == 1) {
    return Alias(node.input(0), node.output(0), label, std::move(dims), -2);
  }
  const int id = AddStep(std::move(step), node.output(0), features);
  return Bind(node.output(0), label, {id, std::move(dims), true});
}

}  // namespace selu::core::onnx_internal
