// native/: Program, one loaded BPF program by fd: info, BPF_PROG_TEST_RUN, pinning.
// Attaching lives in attach.cc; it asks a Program for its fd through Fd().
#pragma once
#include <bpf/bpf.h>
#include <napi.h>

#include "fd.h"

namespace weir {

class Program : public Napi::ObjectWrap<Program> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::Object NewOwned(Napi::Env env, int fd, const std::string& label);
  static Napi::Object NewBorrowed(Napi::Env env, ObjRef owner, bpf_program* prog);
  // The Program behind a JS value, or an EINVAL error naming `op`.
  static Program* From(Napi::Env env, Napi::Value v, const std::string& op);
  explicit Program(const Napi::CallbackInfo& info);

  int Fd(Napi::Env env);
  const std::string& Label() const { return label_; }
  // The object's expected attach type, or -1 for programs opened by pin or id.
  int ExpectedAttachType() const;

 private:
  static Napi::Value OpenPinned(const Napi::CallbackInfo& info);
  static Napi::Value FromId(const Napi::CallbackInfo& info);
  Napi::Value GetFd(const Napi::CallbackInfo& info);
  Napi::Value GetInfo(const Napi::CallbackInfo& info);
  Napi::Value TestRun(const Napi::CallbackInfo& info);
  Napi::Value Pin(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  FdRef fd_;
  bpf_program* prog_ = nullptr;
  std::string label_;
};

}  // namespace weir
