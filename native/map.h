// native/: Map, one BPF map by fd: element ops with sizes checked against the map's own
// info before any syscall, key iteration, batch ops for bulk sync, per-CPU values.
#pragma once
#include <bpf/bpf.h>
#include <napi.h>

#include "fd.h"

namespace weir {

class Map : public Napi::ObjectWrap<Map> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::Object NewOwned(Napi::Env env, int fd, const std::string& label);
  static Napi::Object NewBorrowed(Napi::Env env, ObjRef owner, bpf_map* map);
  explicit Map(const Napi::CallbackInfo& info);

 private:
  static Napi::Value OpenPinned(const Napi::CallbackInfo& info);
  static Napi::Value FromId(const Napi::CallbackInfo& info);
  static Napi::Value Create(const Napi::CallbackInfo& info);

  int Fd(Napi::Env env);
  const bpf_map_info& Info(Napi::Env env);
  bool PerCpu(Napi::Env env);
  size_t ValueBytes(Napi::Env env);  // bytes userspace passes per value (all CPUs for per-CPU)
  void CheckKey(Napi::Env env, const Napi::Buffer<uint8_t>& key, const std::string& op);
  void CheckValue(Napi::Env env, const Napi::Buffer<uint8_t>& value, const std::string& op);
  std::string Op(const std::string& what) const { return what + " " + label_; }

  Napi::Value GetFd(const Napi::CallbackInfo& info);
  Napi::Value GetInfo(const Napi::CallbackInfo& info);
  Napi::Value Lookup(const Napi::CallbackInfo& info);
  Napi::Value Update(const Napi::CallbackInfo& info);
  Napi::Value Delete(const Napi::CallbackInfo& info);
  Napi::Value NextKey(const Napi::CallbackInfo& info);
  Napi::Value LookupBatch(const Napi::CallbackInfo& info);
  Napi::Value LookupBatchChunk(const Napi::CallbackInfo& info);
  Napi::Value UpdateBatch(const Napi::CallbackInfo& info);
  Napi::Value DeleteBatch(const Napi::CallbackInfo& info);
  Napi::Value Count(const Napi::CallbackInfo& info);
  Napi::Value Pin(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  FdRef fd_;
  bpf_map* map_ = nullptr;
  std::string label_;
  bool haveInfo_ = false;
  bpf_map_info info_{};
};

// Reads bpf_map_info by fd; throws on failure.
bpf_map_info MapInfoByFd(Napi::Env env, int fd, const std::string& op);
Napi::Object MapInfoToJs(Napi::Env env, const bpf_map_info& info);

}  // namespace weir
