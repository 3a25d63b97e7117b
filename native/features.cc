// native/: what this libbpf and this kernel offer, for `weir version` and weir_build_info:
// libbpf's version, and libbpf's own probes (each loads a trivial program or creates a tiny
// map of the given type, then closes it). The type numbers come from the kernel's BTF
// (src/bpf/features.ts), so no enum is copied here.
#include <bpf/libbpf.h>
#include <napi.h>

#include "util.h"

namespace weir {

// libbpfVersion() -> "1.1": the library this addon runs against (libbpf_major/minor_version()).
Napi::Value LibbpfVersion(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(),
                           std::to_string(libbpf_major_version()) + "." + std::to_string(libbpf_minor_version()));
}

// probeProgType(type) -> true when the kernel loads a program of that bpf_prog_type.
Napi::Value ProbeProgType(const Napi::CallbackInfo& info) {
  auto type = static_cast<enum bpf_prog_type>(ArgInt(info, 0, "probe program type"));
  int r = libbpf_probe_bpf_prog_type(type, nullptr);
  if (r < 0) ThrowErrno(info.Env(), -r, "probe program type " + std::to_string(type));
  return Napi::Boolean::New(info.Env(), r == 1);
}

// probeMapType(type) -> true when the kernel creates a map of that bpf_map_type.
Napi::Value ProbeMapType(const Napi::CallbackInfo& info) {
  auto type = static_cast<enum bpf_map_type>(ArgInt(info, 0, "probe map type"));
  int r = libbpf_probe_bpf_map_type(type, nullptr);
  if (r < 0) ThrowErrno(info.Env(), -r, "probe map type " + std::to_string(type));
  return Napi::Boolean::New(info.Env(), r == 1);
}

}  // namespace weir
