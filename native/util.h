// native/: argument helpers shared by the addon's classes. Bad arguments throw
// EINVAL errors with the operation named, like every other failure.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>

#include "errors.h"

namespace weir {

inline std::string ArgString(const Napi::CallbackInfo& info, size_t i, const std::string& op) {
  if (i >= info.Length() || !info[i].IsString())
    ThrowErrno(info.Env(), EINVAL, op, "argument " + std::to_string(i) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

inline Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i, const std::string& op) {
  if (i >= info.Length() || !info[i].IsBuffer())
    ThrowErrno(info.Env(), EINVAL, op, "argument " + std::to_string(i) + " must be a Buffer");
  return info[i].As<Napi::Buffer<uint8_t>>();
}

inline bool HasArg(const Napi::CallbackInfo& info, size_t i) {
  return i < info.Length() && !info[i].IsUndefined() && !info[i].IsNull();
}

inline int64_t ArgInt(const Napi::CallbackInfo& info, size_t i, const std::string& op, int64_t dflt = 0,
                      bool required = true) {
  if (!HasArg(info, i)) {
    if (!required) return dflt;
    ThrowErrno(info.Env(), EINVAL, op, "argument " + std::to_string(i) + " must be a number");
  }
  if (info[i].IsBigInt()) {
    bool lossless;
    return info[i].As<Napi::BigInt>().Int64Value(&lossless);
  }
  if (!info[i].IsNumber()) ThrowErrno(info.Env(), EINVAL, op, "argument " + std::to_string(i) + " must be a number");
  return info[i].As<Napi::Number>().Int64Value();
}

inline Napi::Buffer<uint8_t> CopyBuffer(Napi::Env env, const void* data, size_t len) {
  return Napi::Buffer<uint8_t>::Copy(env, static_cast<const uint8_t*>(data), len);
}

}  // namespace weir

#include <fstream>

namespace weir {

// What a BPF fd refers to, from /proc/self/fdinfo: "map", "prog", "link" or "".
inline std::string BpfFdKind(int fd) {
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("map_type:", 0) == 0) return "map";
    if (line.rfind("prog_type:", 0) == 0) return "prog";
    if (line.rfind("link_type:", 0) == 0) return "link";
  }
  return "";
}

// Opens a pinned object and checks it is the expected kind; throws otherwise.
int OpenPinnedKind(Napi::Env env, const std::string& path, const char* kind);

}  // namespace weir
