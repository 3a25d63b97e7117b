// native/: Link, one BPF link by fd (TCX, XDP, cgroup). A link lives while an fd or a
// pin holds it: closing the last fd of an unpinned link detaches the program.
#pragma once
#include <napi.h>

#include "fd.h"

namespace weir {

class Link : public Napi::ObjectWrap<Link> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::Object NewOwned(Napi::Env env, int fd, const std::string& label);
  explicit Link(const Napi::CallbackInfo& info);

 private:
  static Napi::Value OpenPinned(const Napi::CallbackInfo& info);
  int Fd(Napi::Env env);
  Napi::Value GetFd(const Napi::CallbackInfo& info);
  Napi::Value GetInfo(const Napi::CallbackInfo& info);
  Napi::Value Update(const Napi::CallbackInfo& info);
  Napi::Value Detach(const Napi::CallbackInfo& info);
  Napi::Value Pin(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  FdRef fd_;
  std::string label_;
};

}  // namespace weir
