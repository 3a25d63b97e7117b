// native/: Map, one BPF map by fd (see map.h).
#include "map.h"

#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "names.h"
#include "util.h"

namespace weir {
namespace {

Napi::FunctionReference* g_ctor = nullptr;

struct MapInit {
  int fd = -1;
  ObjRef owner;
  bpf_map* map = nullptr;
  std::string label;
};

size_t RoundUp8(size_t n) { return (n + 7) & ~size_t(7); }

bool IsPerCpuType(unsigned t) {
  return t == BPF_MAP_TYPE_PERCPU_HASH || t == BPF_MAP_TYPE_PERCPU_ARRAY || t == BPF_MAP_TYPE_LRU_PERCPU_HASH ||
         t == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

bool IsArrayType(unsigned t) { return t == BPF_MAP_TYPE_ARRAY || t == BPF_MAP_TYPE_PERCPU_ARRAY; }

}  // namespace

bpf_map_info MapInfoByFd(Napi::Env env, int fd, const std::string& op) {
  bpf_map_info info{};
  __u32 len = sizeof(info);
  Check(env, bpf_obj_get_info_by_fd(fd, &info, &len), op);
  return info;
}

Napi::Object MapInfoToJs(Napi::Env env, const bpf_map_info& info) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", std::string(info.name));
  o.Set("type", MapTypeName(info.type));
  o.Set("typeId", info.type);
  o.Set("keySize", info.key_size);
  o.Set("valueSize", info.value_size);
  o.Set("maxEntries", info.max_entries);
  o.Set("flags", info.map_flags);
  o.Set("id", info.id);
  o.Set("btfId", info.btf_id);
  o.Set("btfKeyTypeId", info.btf_key_type_id);
  o.Set("btfValueTypeId", info.btf_value_type_id);
  o.Set("perCpu", IsPerCpuType(info.type));
  return o;
}

Napi::Function Map::Init(Napi::Env env) {
  Napi::Function f = DefineClass(
      env, "Map",
      {StaticMethod("openPinned", &Map::OpenPinned), StaticMethod("fromId", &Map::FromId),
       StaticMethod("create", &Map::Create), InstanceAccessor("fd", &Map::GetFd, nullptr),
       InstanceMethod("info", &Map::GetInfo), InstanceMethod("lookup", &Map::Lookup),
       InstanceMethod("update", &Map::Update), InstanceMethod("delete", &Map::Delete),
       InstanceMethod("nextKey", &Map::NextKey), InstanceMethod("lookupBatch", &Map::LookupBatch),
       InstanceMethod("lookupBatchChunk", &Map::LookupBatchChunk), InstanceMethod("updateBatch", &Map::UpdateBatch),
       InstanceMethod("deleteBatch", &Map::DeleteBatch), InstanceMethod("count", &Map::Count),
       InstanceMethod("pin", &Map::Pin), InstanceMethod("close", &Map::Close)});
  g_ctor = new Napi::FunctionReference(Napi::Persistent(f));
  return f;
}

Napi::Object Map::NewOwned(Napi::Env env, int fd, const std::string& label) {
  MapInit init;
  init.fd = fd;
  init.label = label;
  return g_ctor->New({Napi::External<MapInit>::New(env, &init)});
}

Napi::Object Map::NewBorrowed(Napi::Env env, ObjRef owner, bpf_map* map) {
  MapInit init;
  init.owner = std::move(owner);
  init.map = map;
  init.label = std::string("map '") + bpf_map__name(map) + "'";
  return g_ctor->New({Napi::External<MapInit>::New(env, &init)});
}

Map::Map(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Map>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    ThrowErrno(info.Env(), EINVAL, "new Map", "use Map.openPinned() or Map.fromId()");
  MapInit* init = info[0].As<Napi::External<MapInit>>().Data();
  label_ = init->label;
  map_ = init->map;
  if (init->owner)
    fd_.Borrow(init->owner, label_);
  else
    fd_.Own(init->fd);
}

int Map::Fd(Napi::Env env) {
  return fd_.Get(env, Op("use"), [this] { return bpf_map__fd(map_); });
}

const bpf_map_info& Map::Info(Napi::Env env) {
  int fd = Fd(env);
  if (!haveInfo_) {
    info_ = MapInfoByFd(env, fd, Op("get info of"));
    haveInfo_ = true;
  }
  return info_;
}

bool Map::PerCpu(Napi::Env env) { return IsPerCpuType(Info(env).type); }

size_t Map::ValueBytes(Napi::Env env) {
  const bpf_map_info& i = Info(env);
  if (!IsPerCpuType(i.type)) return i.value_size;
  int ncpu = libbpf_num_possible_cpus();
  return static_cast<size_t>(ncpu) * RoundUp8(i.value_size);
}

void Map::CheckKey(Napi::Env env, const Napi::Buffer<uint8_t>& key, const std::string& op) {
  const bpf_map_info& i = Info(env);
  if (key.Length() != i.key_size)
    ThrowErrno(env, EINVAL, op,
               "key is " + std::to_string(key.Length()) + " bytes, map key_size is " + std::to_string(i.key_size));
}

void Map::CheckValue(Napi::Env env, const Napi::Buffer<uint8_t>& value, const std::string& op) {
  size_t want = ValueBytes(env);
  if (value.Length() != want)
    ThrowErrno(env, EINVAL, op,
               "value is " + std::to_string(value.Length()) + " bytes, map wants " + std::to_string(want) +
                   (PerCpu(env) ? " (possible CPUs x value_size rounded up to 8)" : ""));
}

Napi::Value Map::OpenPinned(const Napi::CallbackInfo& info) {
  LogScope scope;
  std::string path = ArgString(info, 0, "open pinned map");
  int fd = OpenPinnedKind(info.Env(), path, "map");
  bpf_map_info mi = MapInfoByFd(info.Env(), fd, "get info of pinned map " + path);
  return NewOwned(info.Env(), fd, "map '" + std::string(mi.name) + "' (" + path + ")");
}

Napi::Value Map::FromId(const Napi::CallbackInfo& info) {
  LogScope scope;
  int64_t id = ArgInt(info, 0, "open map by id");
  std::string op = "open map id " + std::to_string(id);
  int fd = Check(info.Env(), bpf_map_get_fd_by_id(static_cast<__u32>(id)), op);
  return NewOwned(info.Env(), fd, "map id " + std::to_string(id));
}

// create(type, keySize, valueSize, maxEntries, flags, name): a new map outside any
// object (bpf_map_create), e.g. a layout of an earlier release written for a rollback.
Napi::Value Map::Create(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 5, "create map");
  std::string op = "create map " + name;
  LIBBPF_OPTS(bpf_map_create_opts, opts);
  opts.map_flags = static_cast<__u32>(ArgInt(info, 4, op));
  int fd = Check(env,
                 bpf_map_create(static_cast<bpf_map_type>(ArgInt(info, 0, op)), name.c_str(),
                                static_cast<__u32>(ArgInt(info, 1, op)), static_cast<__u32>(ArgInt(info, 2, op)),
                                static_cast<__u32>(ArgInt(info, 3, op)), &opts),
                 op);
  return NewOwned(env, fd, "map '" + name + "'");
}

Napi::Value Map::GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), Fd(info.Env())); }

Napi::Value Map::GetInfo(const Napi::CallbackInfo& info) {
  LogScope scope;
  haveInfo_ = false;  // max_entries etc. cannot change, but the caller asked for fresh info
  return MapInfoToJs(info.Env(), Info(info.Env()));
}

Napi::Value Map::Lookup(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  std::string op = Op("lookup in");
  auto key = ArgBuffer(info, 0, op);
  CheckKey(env, key, op);
  std::vector<uint8_t> value(std::max<size_t>(ValueBytes(env), 1));
  int ret = bpf_map_lookup_elem(Fd(env), key.Data(), value.data());
  if (ret == -ENOENT) return env.Null();
  Check(env, ret, op);
  return CopyBuffer(env, value.data(), ValueBytes(env));
}

Napi::Value Map::Update(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  std::string op = Op("update");
  auto key = ArgBuffer(info, 0, op);
  auto value = ArgBuffer(info, 1, op);
  int64_t flags = ArgInt(info, 2, op, BPF_ANY, false);
  CheckKey(env, key, op);
  CheckValue(env, value, op);
  Check(env, bpf_map_update_elem(Fd(env), key.Data(), value.Data(), static_cast<__u64>(flags)), op);
  return env.Undefined();
}

Napi::Value Map::Delete(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  std::string op = Op("delete from");
  auto key = ArgBuffer(info, 0, op);
  CheckKey(env, key, op);
  int ret = bpf_map_delete_elem(Fd(env), key.Data());
  if (ret == -ENOENT) return Napi::Boolean::New(env, false);
  Check(env, ret, op);
  return Napi::Boolean::New(env, true);
}

Napi::Value Map::NextKey(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  std::string op = Op("get next key of");
  const void* prev = nullptr;
  if (HasArg(info, 0)) {
    auto key = ArgBuffer(info, 0, op);
    CheckKey(env, key, op);
    prev = key.Data();
  }
  std::vector<uint8_t> next(std::max<size_t>(Info(env).key_size, 1));
  int ret = bpf_map_get_next_key(Fd(env), prev, next.data());
  if (ret == -ENOENT) return env.Null();
  Check(env, ret, op);
  return CopyBuffer(env, next.data(), Info(env).key_size);
}

// Dumps the whole map with BPF_MAP_LOOKUP_BATCH: {keys, values, count}, keys and values
// concatenated. Hash maps answer ENOSPC when one bucket holds more than the chunk: the
// chunk doubles and the same position is retried.
Napi::Value Map::LookupBatch(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  std::string op = Op("batch lookup in");
  __u32 chunk = static_cast<__u32>(ArgInt(info, 0, op, 4096, false));
  if (chunk == 0) chunk = 4096;
  int fd = Fd(env);
  size_t ks = Info(env).key_size, vs = ValueBytes(env);
  size_t tokenSize = std::max<size_t>(ks, 8);
  std::vector<uint8_t> inTok(tokenSize), outTok(tokenSize), keys, values;
  size_t total = 0;
  bool first = true;
  DECLARE_LIBBPF_OPTS(bpf_map_batch_opts, opts);
  for (;;) {
    keys.resize((total + chunk) * ks);
    values.resize((total + chunk) * vs);
    __u32 n = chunk;
    int ret = bpf_map_lookup_batch(fd, first ? nullptr : inTok.data(), outTok.data(), keys.data() + total * ks,
                                   values.data() + total * vs, &n, &opts);
    if (ret == -ENOSPC && n == 0 && chunk < (1u << 24)) {
      chunk *= 2;
      continue;
    }
    if (ret < 0 && ret != -ENOENT) Check(env, ret, op);
    total += n;
    if (ret == -ENOENT) break;
    std::swap(inTok, outTok);
    first = false;
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("keys", CopyBuffer(env, keys.data(), total * ks));
  out.Set("values", CopyBuffer(env, values.data(), total * vs));
  out.Set("count", static_cast<double>(total));
  return out;
}

// lookupBatchChunk(token, max, withData) -> {keys, values, count, token}: one
// BPF_MAP_LOOKUP_BATCH step of at most `max` entries (more only when one hash bucket holds
// more), resumed from the token of the step before (null: from the start); the returned token
// is null once the map is done. A caller walks a map of any size holding one chunk at a time,
// and may delete entries between steps (a hash map's token is a bucket index). withData false
// returns only the count (a census that copies nothing to JavaScript).
Napi::Value Map::LookupBatchChunk(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  std::string op = Op("batch lookup in");
  bool first = info.Length() < 1 || info[0].IsNull() || info[0].IsUndefined();
  __u32 chunk = static_cast<__u32>(ArgInt(info, 1, op, 4096, false));
  if (chunk == 0) chunk = 4096;
  bool withData = info.Length() < 3 || info[2].ToBoolean().Value();
  size_t ks = Info(env).key_size, vs = ValueBytes(env);
  size_t tokenSize = std::max<size_t>(ks, 8);
  std::vector<uint8_t> inTok(tokenSize), outTok(tokenSize), keys, values;
  if (!first) {
    auto t = ArgBuffer(info, 0, op);
    if (t.Length() != tokenSize) ThrowErrno(env, EINVAL, op, "batch token of " + std::to_string(t.Length()) + " bytes");
    std::copy(t.Data(), t.Data() + tokenSize, inTok.begin());
  }
  DECLARE_LIBBPF_OPTS(bpf_map_batch_opts, opts);
  int ret;
  __u32 n;
  for (;;) {
    keys.resize(static_cast<size_t>(chunk) * ks);
    values.resize(static_cast<size_t>(chunk) * vs);
    n = chunk;
    ret = bpf_map_lookup_batch(Fd(env), first ? nullptr : inTok.data(), outTok.data(), keys.data(), values.data(), &n,
                               &opts);
    if (ret == -ENOSPC && n == 0 && chunk < (1u << 24)) {
      chunk *= 2;  // one bucket holds more than the chunk
      continue;
    }
    break;
  }
  if (ret < 0 && ret != -ENOENT) Check(env, ret, op);
  Napi::Object out = Napi::Object::New(env);
  out.Set("count", static_cast<double>(n));
  if (withData) {
    out.Set("keys", CopyBuffer(env, keys.data(), n * ks));
    out.Set("values", CopyBuffer(env, values.data(), n * vs));
  }
  out.Set("token", ret == -ENOENT ? env.Null() : CopyBuffer(env, outTok.data(), tokenSize));
  return out;
}

// updateBatch(keys, values, count, flags) -> count written. Keys and values concatenated.
Napi::Value Map::UpdateBatch(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  std::string op = Op("batch update");
  auto keys = ArgBuffer(info, 0, op);
  auto values = ArgBuffer(info, 1, op);
  __u32 count = static_cast<__u32>(ArgInt(info, 2, op));
  int64_t flags = ArgInt(info, 3, op, BPF_ANY, false);
  size_t ks = Info(env).key_size, vs = ValueBytes(env);
  if (keys.Length() != count * ks || values.Length() != count * vs)
    ThrowErrno(env, EINVAL, op,
               std::to_string(count) + " entries need " + std::to_string(count * ks) + " key bytes and " +
                   std::to_string(count * vs) + " value bytes, got " + std::to_string(keys.Length()) + " and " +
                   std::to_string(values.Length()));
  if (count == 0) return Napi::Number::New(env, 0);
  DECLARE_LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = static_cast<__u64>(flags));
  __u32 n = count;
  int ret = bpf_map_update_batch(Fd(env), keys.Data(), values.Data(), &n, &opts);
  if (ret < 0) ThrowErrno(env, -ret, op, "after " + std::to_string(n) + " of " + std::to_string(count) + " entries");
  return Napi::Number::New(env, n);
}

// deleteBatch(keys, count) -> how many existed and were deleted. The kernel stops at the
// first missing key; we skip it and go on, so a stale key in a bulk delete is not fatal.
Napi::Value Map::DeleteBatch(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  std::string op = Op("batch delete from");
  auto keys = ArgBuffer(info, 0, op);
  __u32 count = static_cast<__u32>(ArgInt(info, 1, op));
  size_t ks = Info(env).key_size;
  if (keys.Length() != count * ks)
    ThrowErrno(env, EINVAL, op,
               std::to_string(count) + " keys need " + std::to_string(count * ks) + " bytes, got " +
                   std::to_string(keys.Length()));
  int fd = Fd(env);
  DECLARE_LIBBPF_OPTS(bpf_map_batch_opts, opts);
  __u32 done = 0, deleted = 0;
  while (done < count) {
    __u32 n = count - done;
    int ret = bpf_map_delete_batch(fd, keys.Data() + static_cast<size_t>(done) * ks, &n, &opts);
    deleted += n;
    done += n;
    if (ret == -ENOENT) {
      done += 1;  // the missing key
      continue;
    }
    if (ret < 0) ThrowErrno(env, -ret, op, "after " + std::to_string(done) + " of " + std::to_string(count) + " keys");
  }
  return Napi::Number::New(env, deleted);
}

// Entries in the map. Arrays always hold max_entries; other maps are walked key by key
// in native code (one syscall per entry: ~0.5 us each, so 100k entries cost ~50 ms).
Napi::Value Map::Count(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  const bpf_map_info& i = Info(env);
  if (IsArrayType(i.type)) return Napi::Number::New(env, i.max_entries);
  std::string op = Op("count entries of");
  int fd = Fd(env);
  std::vector<uint8_t> a(std::max<size_t>(i.key_size, 1)), b(a.size());
  double n = 0;
  int ret = bpf_map_get_next_key(fd, nullptr, a.data());
  while (ret == 0) {
    n++;
    ret = bpf_map_get_next_key(fd, a.data(), b.data());
    std::swap(a, b);
  }
  if (ret != -ENOENT) Check(env, ret, op);
  return Napi::Number::New(env, n);
}

Napi::Value Map::Pin(const Napi::CallbackInfo& info) {
  LogScope scope;
  std::string path = ArgString(info, 0, Op("pin"));
  Check(info.Env(), bpf_obj_pin(Fd(info.Env()), path.c_str()), Op("pin") + " at " + path);
  return info.Env().Undefined();
}

Napi::Value Map::Close(const Napi::CallbackInfo& info) {
  fd_.Close();  // borrowed fds stay with their object
  return info.Env().Undefined();
}

}  // namespace weir
