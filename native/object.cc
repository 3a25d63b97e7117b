// native/: Object, one BPF ELF object through libbpf (see object.h).
#include "object.h"

#include <bpf/btf.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "btf.h"
#include "map.h"
#include "names.h"
#include "program.h"
#include "util.h"

namespace weir {

void CheckUsable(napi_env env, const ObjRef& ref, const std::string& what, bool needLoaded) {
  if (ref->loading) ThrowErrno(Napi::Env(env), EBUSY, "use " + what, "its object " + ref->path + " is loading");
  if (ref->closed) ThrowErrno(Napi::Env(env), EBADF, "use " + what, "its object " + ref->path + " was closed");
  if (needLoaded && !ref->loaded)
    ThrowErrno(Napi::Env(env), EINVAL, "use " + what, "its object " + ref->path + " is not loaded yet");
}

namespace {

Napi::FunctionReference* g_ctor = nullptr;

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

Napi::Function Object::Init(Napi::Env env) {
  Napi::Function f =
      DefineClass(env, "Object",
                  {StaticMethod("open", &Object::Open), InstanceMethod("setConst", &Object::SetConst),
                   InstanceMethod("setMaxEntries", &Object::SetMaxEntries), InstanceMethod("load", &Object::Load),
                   InstanceMethod("loadAsync", &Object::LoadAsync), InstanceMethod("close", &Object::Close),
                   InstanceMethod("maps", &Object::Maps), InstanceMethod("programs", &Object::Programs),
                   InstanceMethod("map", &Object::GetMap), InstanceMethod("program", &Object::GetProgram),
                   InstanceMethod("btf", &Object::GetBtf), InstanceAccessor("loaded", &Object::GetLoaded, nullptr),
                   InstanceAccessor("closed", &Object::GetClosed, nullptr)});
  g_ctor = new Napi::FunctionReference(Napi::Persistent(f));
  return f;
}

Object::Object(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Object>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) ThrowErrno(info.Env(), EINVAL, "new Object", "use Object.open()");
  state_ = *info[0].As<Napi::External<ObjRef>>().Data();
}

// open(path, pinRoot?) -> Object. A pin root must exist: libbpf would otherwise create
// one missing level and fail deeper, a confusing error for a typo in a flag.
Napi::Value Object::Open(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  std::string path = ArgString(info, 0, "open BPF object");
  std::string pinRoot = HasArg(info, 1) ? ArgString(info, 1, "open BPF object " + path) : "";
  struct stat st;
  if (!pinRoot.empty() && stat(pinRoot.c_str(), &st) < 0)
    ThrowErrno(env, errno, "open BPF object " + path, "pin root " + pinRoot);
  if (!pinRoot.empty() && !S_ISDIR(st.st_mode))
    ThrowErrno(env, ENOTDIR, "open BPF object " + path, "pin root " + pinRoot);
  DECLARE_LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pinRoot.empty() ? nullptr : pinRoot.c_str());
  bpf_object* obj = bpf_object__open_file(path.c_str(), &opts);
  if (!obj) ThrowErrno(env, errno, "open BPF object " + path);
  ObjRef ref = std::make_shared<ObjState>();
  ref->obj = obj;
  ref->path = path;
  return g_ctor->New({Napi::External<ObjRef>::New(env, &ref)});
}

bpf_object* Object::Obj(Napi::Env env, const std::string& op) {
  if (state_->closed) ThrowErrno(env, EBADF, op, "object was closed");
  if (state_->loading) ThrowErrno(env, EBUSY, op, "a load is running");
  return state_->obj;
}

// setConst(name, bytes): writes a .rodata variable's initial value before load. The
// variable is found by name in the object's .rodata* DATASECs; its size must match.
Napi::Value Object::SetConst(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, Op("set const in"));
  std::string op = "set const '" + name + "' in " + state_->path;
  auto value = ArgBuffer(info, 1, op);
  bpf_object* obj = Obj(env, op);
  if (state_->loaded) ThrowErrno(env, EBUSY, op, "object already loaded: .rodata is frozen");
  const btf* b = bpf_object__btf(obj);
  if (!b) ThrowErrno(env, ENOENT, op, "object has no BTF");
  for (__u32 id = 1; id < btf__type_cnt(b); id++) {
    const btf_type* t = btf__type_by_id(b, id);
    if (!btf_is_datasec(t)) continue;
    std::string sec = btf__name_by_offset(b, t->name_off);
    if (sec.rfind(".rodata", 0) != 0) continue;
    const btf_var_secinfo* v = btf_var_secinfos(t);
    for (__u16 i = 0; i < btf_vlen(t); i++, v++) {
      const btf_type* var = btf__type_by_id(b, v->type);
      if (name != btf__name_by_offset(b, var->name_off)) continue;
      if (value.Length() != v->size)
        ThrowErrno(env, EINVAL, op,
                   "variable is " + std::to_string(v->size) + " bytes, value is " + std::to_string(value.Length()));
      bpf_map* m;
      bpf_object__for_each_map(m, obj) {
        if (!bpf_map__is_internal(m) || !EndsWith(bpf_map__name(m), sec)) continue;
        size_t sz = 0;
        void* data = const_cast<void*>(bpf_map__initial_value(m, &sz));
        if (!data || v->offset + v->size > sz)
          ThrowErrno(env, EINVAL, op, "section " + sec + " has no initial data for it");
        memcpy(static_cast<char*>(data) + v->offset, value.Data(), v->size);
        return env.Undefined();
      }
      ThrowErrno(env, ENOENT, op, "no map for section " + sec);
    }
  }
  ThrowErrno(env, ENOENT, op, "no .rodata variable of that name");
}

// setMaxEntries(mapName, n): a map's max_entries before load (`weir daemon --ct-map-size`
// and the other map sizes). A map adopted from a pin must match it (libbpf compares), so the
// caller sets the same size in every object that declares the map.
Napi::Value Object::SetMaxEntries(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, Op("set max_entries in"));
  std::string op = "set max_entries of map '" + name + "' in " + state_->path;
  if (info.Length() < 2 || !info[1].IsNumber()) ThrowErrno(env, EINVAL, op, "max_entries must be a number");
  double n = info[1].As<Napi::Number>().DoubleValue();
  if (!(n >= 1 && n <= 0xffffffffu) || n != static_cast<double>(static_cast<uint32_t>(n)))
    ThrowErrno(env, EINVAL, op, "max_entries must be an integer in 1..2^32-1");
  bpf_object* obj = Obj(env, op);
  if (state_->loaded) ThrowErrno(env, EBUSY, op, "object already loaded");
  bpf_map* m = bpf_object__find_map_by_name(obj, name.c_str());
  if (!m) ThrowErrno(env, ENOENT, op, "no map of that name");
  Check(env, bpf_map__set_max_entries(m, static_cast<uint32_t>(n)), op);
  return env.Undefined();
}

Napi::Value Object::Load(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  std::string op = Op("load");
  bpf_object* obj = Obj(env, op);
  if (state_->loaded) ThrowErrno(env, EALREADY, op, "already loaded");
  Check(env, bpf_object__load(obj), op);
  state_->loaded = true;
  return env.Undefined();
}

namespace {

// bpf_object__load on a libuv worker: the verifier's time (hundreds of ms for a big
// program) is spent off the main thread, which can read its sources meanwhile.
class LoadWorker : public Napi::AsyncWorker {
 public:
  LoadWorker(Napi::Env env, ObjRef state, std::string op)
      : Napi::AsyncWorker(env),
        state_(std::move(state)),
        op_(std::move(op)),
        deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    LogScope scope;  // this worker thread's own log
    ret_ = bpf_object__load(state_->obj);
    log_ = CapturedLog();
  }
  void OnOK() override {
    state_->loading = false;
    if (ret_ < 0) {
      deferred_.Reject(MakeError(Env(), -ret_, op_, log_).Value());
      return;
    }
    state_->loaded = true;
    deferred_.Resolve(Env().Undefined());
  }

 private:
  ObjRef state_;
  std::string op_;
  Napi::Promise::Deferred deferred_;
  int ret_ = 0;
  std::string log_;
};

}  // namespace

// loadAsync() -> Promise<void>: load() on a worker thread. Until it settles the object is
// busy: load, close and every other use throw EBUSY.
Napi::Value Object::LoadAsync(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  std::string op = Op("load");
  Obj(env, op);
  if (state_->loaded) ThrowErrno(env, EALREADY, op, "already loaded");
  state_->loading = true;
  auto* w = new LoadWorker(env, state_, op);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value Object::Close(const Napi::CallbackInfo& info) {
  if (state_->loading) ThrowErrno(info.Env(), EBUSY, Op("close"), "a load is running");
  state_->Close();
  return info.Env().Undefined();
}

// maps() -> [{name, type, keySize, valueSize, maxEntries, internal, pinPath, btfKeyTypeId,
// btfValueTypeId}] from the object's definitions (valid before load).
Napi::Value Object::Maps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_object* obj = Obj(env, Op("list maps of"));
  Napi::Array out = Napi::Array::New(env);
  bpf_map* m;
  bpf_object__for_each_map(m, obj) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", bpf_map__name(m));
    o.Set("type", MapTypeName(bpf_map__type(m)));
    o.Set("keySize", bpf_map__key_size(m));
    o.Set("valueSize", bpf_map__value_size(m));
    o.Set("maxEntries", bpf_map__max_entries(m));
    o.Set("flags", bpf_map__map_flags(m));
    o.Set("internal", bpf_map__is_internal(m));
    const char* pin = bpf_map__pin_path(m);
    if (pin) o.Set("pinPath", pin);
    o.Set("btfKeyTypeId", bpf_map__btf_key_type_id(m));
    o.Set("btfValueTypeId", bpf_map__btf_value_type_id(m));
    out.Set(out.Length(), o);
  }
  return out;
}

Napi::Value Object::Programs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_object* obj = Obj(env, Op("list programs of"));
  Napi::Array out = Napi::Array::New(env);
  bpf_program* p;
  bpf_object__for_each_program(p, obj) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", bpf_program__name(p));
    o.Set("section", bpf_program__section_name(p));
    o.Set("type", ProgTypeName(bpf_program__type(p)));
    o.Set("expectedAttachType", ExpectedAttachName(bpf_program__type(p), bpf_program__expected_attach_type(p)));
    out.Set(out.Length(), o);
  }
  return out;
}

Napi::Value Object::GetMap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, Op("find map in"));
  std::string op = "find map '" + name + "' in " + state_->path;
  bpf_map* m = bpf_object__find_map_by_name(Obj(env, op), name.c_str());
  if (!m) ThrowErrno(env, ENOENT, op, "no map of that name");
  return Map::NewBorrowed(env, state_, m);
}

Napi::Value Object::GetProgram(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, Op("find program in"));
  std::string op = "find program '" + name + "' in " + state_->path;
  bpf_program* p = bpf_object__find_program_by_name(Obj(env, op), name.c_str());
  if (!p) ThrowErrno(env, ENOENT, op, "no program of that name");
  return Program::NewBorrowed(env, state_, p);
}

Napi::Value Object::GetBtf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const btf* b = bpf_object__btf(Obj(env, Op("read BTF of")));
  if (!b) ThrowErrno(env, ENOENT, Op("read BTF of"), "object has no BTF");
  return Btf::NewBorrowed(env, state_, b);
}

Napi::Value Object::GetLoaded(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), state_->loaded); }

Napi::Value Object::GetClosed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), state_->closed); }

}  // namespace weir
