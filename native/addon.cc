// native/: the addon's entry point: installs libbpf's log capture and exports the classes
// (Object, Map, Program, Link, Btf, RingBuf) and the attach/pin/netns functions. TypeScript loads
// this only through src/bpf/native.ts.
#include <bpf/libbpf.h>
#include <napi.h>

#include "btf.h"
#include "link.h"
#include "map.h"
#include "object.h"
#include "program.h"

namespace weir {

Napi::Value AttachTcx(const Napi::CallbackInfo& info);
Napi::Value TcxQuery(const Napi::CallbackInfo& info);
Napi::Value TcAttach(const Napi::CallbackInfo& info);
Napi::Value TcDetach(const Napi::CallbackInfo& info);
Napi::Value TcQuery(const Napi::CallbackInfo& info);
Napi::Value AttachXdp(const Napi::CallbackInfo& info);
Napi::Value AttachCgroup(const Napi::CallbackInfo& info);
Napi::Value IfNameToIndex(const Napi::CallbackInfo& info);
Napi::Value NetnsEnter(const Napi::CallbackInfo& info);
Napi::Value NetnsRestore(const Napi::CallbackInfo& info);
Napi::Value Unpin(const Napi::CallbackInfo& info);
Napi::Value IterRun(const Napi::CallbackInfo& info);        // iter.cc
Napi::Value NetnsCookie(const Napi::CallbackInfo& info);    // iter.cc
Napi::Value LibbpfVersion(const Napi::CallbackInfo& info);  // features.cc
Napi::Value ProbeProgType(const Napi::CallbackInfo& info);  // features.cc
Napi::Value ProbeMapType(const Napi::CallbackInfo& info);   // features.cc
Napi::Function RingBufInit(Napi::Env env);                  // ringbuf.cc

namespace {

Napi::Value NumPossibleCpus(const Napi::CallbackInfo& info) {
  int n = libbpf_num_possible_cpus();
  if (n < 0) ThrowErrno(info.Env(), -n, "count possible CPUs");
  return Napi::Number::New(info.Env(), n);
}

}  // namespace
}  // namespace weir

static Napi::Object InitAll(Napi::Env env, Napi::Object exports) {
  using namespace weir;
  InstallLibbpfPrint();
  exports.Set("Object", Object::Init(env));
  exports.Set("Map", Map::Init(env));
  exports.Set("Program", Program::Init(env));
  exports.Set("Link", Link::Init(env));
  exports.Set("Btf", Btf::Init(env));
  exports.Set("RingBuf", RingBufInit(env));
  const std::pair<const char*, Napi::Function::Callback> fns[] = {
      {"attachTcx", AttachTcx},
      {"tcxQuery", TcxQuery},
      {"tcAttach", TcAttach},
      {"tcDetach", TcDetach},
      {"tcQuery", TcQuery},
      {"attachXdp", AttachXdp},
      {"attachCgroup", AttachCgroup},
      {"ifNameToIndex", IfNameToIndex},
      {"netnsEnter", NetnsEnter},
      {"netnsRestore", NetnsRestore},
      {"unpin", Unpin},
      {"numPossibleCpus", NumPossibleCpus},
      {"iterRun", IterRun},
      {"netnsCookie", NetnsCookie},
      {"libbpfVersion", LibbpfVersion},
      {"probeProgType", ProbeProgType},
      {"probeMapType", ProbeMapType},
  };
  for (const auto& [name, fn] : fns) exports.Set(name, Napi::Function::New(env, fn, name));
  return exports;
}

NODE_API_MODULE(weir, InitAll)
