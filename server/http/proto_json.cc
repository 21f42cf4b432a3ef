#include "server/http/proto_json.h"

#include <google/protobuf/descriptor.h>

namespace selu::http {

namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;
using nlohmann::ordered_json;

ordered_json Scalar(const Message& m, const Reflection& r, const FieldDescriptor* f, int index) {
  const bool rep = index >= 0;
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return rep ? r.GetRepeatedInt32(m, f, index) : r.GetInt32(m, f);
    case FieldDescriptor::CPPTYPE_INT64:
      return rep ? r.GetRepeatedInt64(m, f, index) : r.GetInt64(m, f);
    case FieldDescriptor::CPPTYPE_UINT32:
      return rep ? r.GetRepeatedUInt32(m, f, index) : r.GetUInt32(m, f);
    case FieldDescriptor::CPPTYPE_UINT64:
      return rep ? r.GetRepeatedUInt64(m, f, index) : r.GetUInt64(m, f);
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return rep ? r.GetRepeatedDouble(m, f, index) : r.GetDouble(m, f);
    case FieldDescriptor::CPPTYPE_FLOAT:
      return rep ? r.GetRepeatedFloat(m, f, index) : r.GetFloat(m, f);
    case FieldDescriptor::CPPTYPE_BOOL:
      return rep ? r.GetRepeatedBool(m, f, index) : r.GetBool(m, f);
    case FieldDescriptor::CPPTYPE_ENUM:
      return (rep ? r.GetRepeatedEnum(m, f, index) : r.GetEnum(m, f))->name();
    case FieldDescriptor::CPPTYPE_STRING:
      return rep ? r.GetRepeatedString(m, f, index) : r.GetString(m, f);
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return ProtoToJson(rep ? r.GetRepeatedMessage(m, f, index) : r.GetMessage(m, f));
  }
  return nullptr;
}

std::string MapKey(const Message& entry) {
  const auto* d = entry.GetDescriptor();
  const ordered_json key = Scalar(entry, *entry.GetReflection(), d->FindFieldByNumber(1), -1);
  return key.is_string() ? key.get<std::string>() : key.dump();
}

}  // namespace

ordered_json ProtoToJson(const Message& message) {
  ordered_json out = ordered_json::object();
  const auto* descriptor = message.GetDescriptor();
  const Reflection& r = *message.GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* f = descriptor->field(i);
    if (f->is_map()) {
      ordered_json map = ordered_json::object();
      for (int e = 0; e < r.FieldSize(message, f); ++e) {
        const Message& entry = r.GetRepeatedMessage(message, f, e);
        map[MapKey(entry)] =
            Scalar(entry, *entry.GetReflection(), entry.GetDescriptor()->FindFieldByNumber(2), -1);
      }
      out[f->name()] = std::move(map);
    } else if (f->is_repeated()) {
      ordered_json list = ordered_json::array();
      for (int e = 0; e < r.FieldSize(message, f); ++e) list.push_back(Scalar(message, r, f, e));
      out[f->name()] = std::move(list);
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE || f->containing_oneof()) {
      if (r.HasField(message, f)) out[f->name()] = Scalar(message, r, f, -1);
    } else {
      out[f->name()] = Scalar(message, r, f, -1);
    }
  }
  return out;
}

}  // namespace selu::http
