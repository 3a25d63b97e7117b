// native/: Object, one BPF ELF object through libbpf: open (with a pin root for
// LIBBPF_PIN_BY_NAME maps), set .rodata constants by variable name and map sizes, load, close, and hand
// out Map/Program/Btf handles that share its state (objstate.h).
#pragma once
#include <napi.h>

#include "objstate.h"

namespace weir {

class Object : public Napi::ObjectWrap<Object> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit Object(const Napi::CallbackInfo& info);

 private:
  static Napi::Value Open(const Napi::CallbackInfo& info);
  bpf_object* Obj(Napi::Env env, const std::string& op);
  std::string Op(const std::string& what) const { return what + " " + state_->path; }

  Napi::Value SetConst(const Napi::CallbackInfo& info);
  Napi::Value SetMaxEntries(const Napi::CallbackInfo& info);
  Napi::Value Load(const Napi::CallbackInfo& info);
  Napi::Value LoadAsync(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Maps(const Napi::CallbackInfo& info);
  Napi::Value Programs(const Napi::CallbackInfo& info);
  Napi::Value GetMap(const Napi::CallbackInfo& info);
  Napi::Value GetProgram(const Napi::CallbackInfo& info);
  Napi::Value GetBtf(const Napi::CallbackInfo& info);
  Napi::Value GetLoaded(const Napi::CallbackInfo& info);
  Napi::Value GetClosed(const Napi::CallbackInfo& info);

  ObjRef state_;
};

}  // namespace weir
