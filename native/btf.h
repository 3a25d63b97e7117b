// native/: Btf, read-only views of BTF (from an object, an ELF file, or the kernel by id)
// turned into plain JS layouts: struct/union members with byte offsets, member types
// resolved through typedef/const/volatile with the first typedef name kept as `hint`
// (that is how `__be16` or `weir_ip4` reach the codecs), enum values by name, datasec vars.
#pragma once
#include <bpf/btf.h>
#include <napi.h>

#include "objstate.h"

namespace weir {

class Btf : public Napi::ObjectWrap<Btf> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::Object NewBorrowed(Napi::Env env, ObjRef owner, const btf* b);
  explicit Btf(const Napi::CallbackInfo& info);
  ~Btf() override;

 private:
  static Napi::Value FromFile(const Napi::CallbackInfo& info);
  static Napi::Value FromKernelId(const Napi::CallbackInfo& info);
  const btf* Get(Napi::Env env);
  Napi::Object Describe(Napi::Env env, __u32 id, int depth);
  int FindId(Napi::Env env, const std::string& name, const std::string& kind);

  Napi::Value Find(const Napi::CallbackInfo& info);
  Napi::Value DescribeJs(const Napi::CallbackInfo& info);
  Napi::Value Struct(const Napi::CallbackInfo& info);
  Napi::Value Enum(const Napi::CallbackInfo& info);
  Napi::Value Datasec(const Napi::CallbackInfo& info);
  Napi::Value Names(const Napi::CallbackInfo& info);

  btf* owned_ = nullptr;
  const btf* borrowed_ = nullptr;
  ObjRef owner_;
  std::string label_;
};

}  // namespace weir
