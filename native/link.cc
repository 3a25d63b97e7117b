// native/: Link, one BPF link by fd (see link.h).
#include "link.h"

#include <bpf/bpf.h>

#include <cerrno>
#include <cstring>

#include "names.h"
#include "program.h"
#include "util.h"

namespace weir {
namespace {

Napi::FunctionReference* g_ctor = nullptr;

struct LinkInit {
  int fd;
  std::string label;
};

uint32_t U32(const uint8_t* b, size_t off) {
  uint32_t v;
  memcpy(&v, b + off, 4);
  return v;
}

}  // namespace

Napi::Function Link::Init(Napi::Env env) {
  Napi::Function f = DefineClass(env, "Link",
                                 {StaticMethod("openPinned", &Link::OpenPinned),
                                  InstanceAccessor("fd", &Link::GetFd, nullptr), InstanceMethod("info", &Link::GetInfo),
                                  InstanceMethod("update", &Link::Update), InstanceMethod("detach", &Link::Detach),
                                  InstanceMethod("pin", &Link::Pin), InstanceMethod("close", &Link::Close)});
  g_ctor = new Napi::FunctionReference(Napi::Persistent(f));
  return f;
}

Napi::Object Link::NewOwned(Napi::Env env, int fd, const std::string& label) {
  LinkInit init{fd, label};
  return g_ctor->New({Napi::External<LinkInit>::New(env, &init)});
}

Link::Link(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Link>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    ThrowErrno(info.Env(), EINVAL, "new Link", "use Link.openPinned() or an attach function");
  LinkInit* init = info[0].As<Napi::External<LinkInit>>().Data();
  label_ = init->label;
  fd_.Own(init->fd);
}

int Link::Fd(Napi::Env env) {
  return fd_.Get(env, "use " + label_, [] { return -1; });
}

Napi::Value Link::OpenPinned(const Napi::CallbackInfo& info) {
  LogScope scope;
  std::string path = ArgString(info, 0, "open pinned link");
  int fd = OpenPinnedKind(info.Env(), path, "link");
  return NewOwned(info.Env(), fd, "link " + path);
}

Napi::Value Link::GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), Fd(info.Env())); }

// info() -> {id, type, progId, ifindex?, attachType?, cgroupId?}. Read from raw bytes:
// Debian's struct bpf_link_info predates TCX. The per-type union starts at byte 16.
Napi::Value Link::GetInfo(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  alignas(8) uint8_t raw[256] = {};
  __u32 len = sizeof(raw);
  Check(env, bpf_obj_get_info_by_fd(Fd(env), raw, &len), "get info of " + label_);
  uint32_t type = U32(raw, 0);
  Napi::Object o = Napi::Object::New(env);
  o.Set("type", LinkTypeName(type));
  o.Set("id", U32(raw, 4));
  o.Set("progId", U32(raw, 8));
  switch (type) {
    case 3: {  // cgroup: {u64 cgroup_id; u32 attach_type}
      uint64_t cg;
      memcpy(&cg, raw + 16, 8);
      o.Set("cgroupId", Napi::BigInt::New(env, cg));
      o.Set("attachType", AttachTypeName(U32(raw, 24)));
      break;
    }
    case 5:  // netns: {u32 netns_ino; u32 attach_type}
      o.Set("attachType", AttachTypeName(U32(raw, 20)));
      break;
    case 6:  // xdp: {u32 ifindex}
      o.Set("ifindex", U32(raw, 16));
      o.Set("attachType", "xdp");
      break;
    case 11:  // tcx: {u32 ifindex; u32 attach_type}
    case 13:  // netkit: same layout
      o.Set("ifindex", U32(raw, 16));
      o.Set("attachType", AttachTypeName(U32(raw, 20)));
      break;
    default:
      break;
  }
  return o;
}

// update(program): swaps the program behind the link atomically (BPF_LINK_UPDATE).
Napi::Value Link::Update(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  std::string op = "update " + label_;
  Program* p = Program::From(env, info[0], op);
  op += " to " + p->Label();
  Check(env, bpf_link_update(Fd(env), p->Fd(env), nullptr), op);
  return env.Undefined();
}

// detach(): the attachment ends now, even while pins or other fds hold the link.
Napi::Value Link::Detach(const Napi::CallbackInfo& info) {
  LogScope scope;
  Check(info.Env(), bpf_link_detach(Fd(info.Env())), "detach " + label_);
  return info.Env().Undefined();
}

Napi::Value Link::Pin(const Napi::CallbackInfo& info) {
  LogScope scope;
  std::string path = ArgString(info, 0, "pin " + label_);
  Check(info.Env(), bpf_obj_pin(Fd(info.Env()), path.c_str()), "pin " + label_ + " at " + path);
  return info.Env().Undefined();
}

Napi::Value Link::Close(const Napi::CallbackInfo& info) {
  fd_.Close();
  return info.Env().Undefined();
}

}  // namespace weir
