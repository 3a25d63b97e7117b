// native/: Program, one loaded BPF program by fd (see program.h).
#include "program.h"

#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <vector>

#include "names.h"
#include "util.h"

namespace weir {
namespace {

Napi::FunctionReference* g_ctor = nullptr;

struct ProgInit {
  int fd = -1;
  ObjRef owner;
  bpf_program* prog = nullptr;
  std::string label;
};

}  // namespace

Napi::Function Program::Init(Napi::Env env) {
  Napi::Function f =
      DefineClass(env, "Program",
                  {StaticMethod("openPinned", &Program::OpenPinned), StaticMethod("fromId", &Program::FromId),
                   InstanceAccessor("fd", &Program::GetFd, nullptr), InstanceMethod("info", &Program::GetInfo),
                   InstanceMethod("testRun", &Program::TestRun), InstanceMethod("pin", &Program::Pin),
                   InstanceMethod("close", &Program::Close)});
  g_ctor = new Napi::FunctionReference(Napi::Persistent(f));
  return f;
}

Napi::Object Program::NewOwned(Napi::Env env, int fd, const std::string& label) {
  ProgInit init;
  init.fd = fd;
  init.label = label;
  return g_ctor->New({Napi::External<ProgInit>::New(env, &init)});
}

Napi::Object Program::NewBorrowed(Napi::Env env, ObjRef owner, bpf_program* prog) {
  ProgInit init;
  init.owner = std::move(owner);
  init.prog = prog;
  init.label = std::string("program '") + bpf_program__name(prog) + "'";
  return g_ctor->New({Napi::External<ProgInit>::New(env, &init)});
}

Program* Program::From(Napi::Env env, Napi::Value v, const std::string& op) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(g_ctor->Value()))
    ThrowErrno(env, EINVAL, op, "expected a native Program");
  return Program::Unwrap(v.As<Napi::Object>());
}

Program::Program(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Program>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    ThrowErrno(info.Env(), EINVAL, "new Program", "use Program.openPinned() or Program.fromId()");
  ProgInit* init = info[0].As<Napi::External<ProgInit>>().Data();
  label_ = init->label;
  prog_ = init->prog;
  if (init->owner)
    fd_.Borrow(init->owner, label_);
  else
    fd_.Own(init->fd);
}

int Program::Fd(Napi::Env env) {
  return fd_.Get(env, "use " + label_, [this] { return bpf_program__fd(prog_); });
}

int Program::ExpectedAttachType() const {
  return prog_ ? static_cast<int>(bpf_program__expected_attach_type(prog_)) : -1;
}

Napi::Value Program::OpenPinned(const Napi::CallbackInfo& info) {
  LogScope scope;
  std::string path = ArgString(info, 0, "open pinned program");
  int fd = OpenPinnedKind(info.Env(), path, "prog");
  return NewOwned(info.Env(), fd, "program " + path);
}

Napi::Value Program::FromId(const Napi::CallbackInfo& info) {
  LogScope scope;
  int64_t id = ArgInt(info, 0, "open program by id");
  std::string op = "open program id " + std::to_string(id);
  int fd = Check(info.Env(), bpf_prog_get_fd_by_id(static_cast<__u32>(id)), op);
  return NewOwned(info.Env(), fd, "program id " + std::to_string(id));
}

Napi::Value Program::GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), Fd(info.Env())); }

Napi::Value Program::GetInfo(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  bpf_prog_info pi{};
  __u32 len = sizeof(pi);
  Check(env, bpf_obj_get_info_by_fd(Fd(env), &pi, &len), "get info of " + label_);
  char tag[2 * BPF_TAG_SIZE + 1];
  for (int i = 0; i < BPF_TAG_SIZE; i++) snprintf(tag + 2 * i, 3, "%02x", pi.tag[i]);
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", std::string(pi.name));
  o.Set("type", ProgTypeName(pi.type));
  o.Set("typeId", pi.type);
  o.Set("id", pi.id);
  o.Set("tag", std::string(tag));
  o.Set("btfId", pi.btf_id);
  // the ids of the maps the program uses: which pinned layout an attached program reads
  // (upgrade decides which conntrack is current from them); a second call fetches them
  std::vector<__u32> ids(pi.nr_map_ids);
  if (!ids.empty()) {
    bpf_prog_info pi2{};
    pi2.nr_map_ids = static_cast<__u32>(ids.size());
    pi2.map_ids = reinterpret_cast<__u64>(ids.data());
    __u32 len2 = sizeof(pi2);
    Check(env, bpf_obj_get_info_by_fd(Fd(env), &pi2, &len2), "get map ids of " + label_);
    ids.resize(std::min<size_t>(ids.size(), pi2.nr_map_ids));
  }
  Napi::Array mapIds = Napi::Array::New(env, ids.size());
  for (size_t i = 0; i < ids.size(); i++) mapIds.Set(static_cast<uint32_t>(i), ids[i]);
  o.Set("mapIds", mapIds);
  if (prog_) {
    o.Set("name", std::string(bpf_program__name(prog_)));  // the full name, not truncated to 15
    o.Set("section", std::string(bpf_program__section_name(prog_)));
    o.Set("expectedAttachType", ExpectedAttachName(bpf_program__type(prog_), ExpectedAttachType()));
  }
  return o;
}

// testRun({data?, ctx?, repeat?, dataSizeOut?, ctxSizeOut?, flags?}) ->
//   {retval, dataOut, ctxOut, duration}. duration is the kernel's mean ns per run.
Napi::Value Program::TestRun(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  std::string op = "test run " + label_;
  if (!info[0].IsObject()) ThrowErrno(env, EINVAL, op, "options object required");
  Napi::Object o = info[0].As<Napi::Object>();
  auto bufOf = [&](const char* k) -> Napi::Buffer<uint8_t> {
    Napi::Value v = o.Get(k);
    if (v.IsUndefined() || v.IsNull()) return Napi::Buffer<uint8_t>();
    if (!v.IsBuffer()) ThrowErrno(env, EINVAL, op, std::string(k) + " must be a Buffer");
    return v.As<Napi::Buffer<uint8_t>>();
  };
  auto numOf = [&](const char* k, int64_t dflt) -> int64_t {
    Napi::Value v = o.Get(k);
    if (v.IsUndefined() || v.IsNull()) return dflt;
    if (!v.IsNumber()) ThrowErrno(env, EINVAL, op, std::string(k) + " must be a number");
    return v.As<Napi::Number>().Int64Value();
  };
  Napi::Buffer<uint8_t> data = bufOf("data"), ctx = bufOf("ctx");
  size_t dataLen = data.IsEmpty() ? 0 : data.Length();
  size_t ctxLen = ctx.IsEmpty() ? 0 : ctx.Length();
  size_t dataOutLen = static_cast<size_t>(numOf("dataSizeOut", static_cast<int64_t>(dataLen) + 256));
  size_t ctxOutLen = static_cast<size_t>(numOf("ctxSizeOut", static_cast<int64_t>(ctxLen)));
  std::vector<uint8_t> dataOut(dataOutLen + 1), ctxOut(ctxOutLen + 1);
  DECLARE_LIBBPF_OPTS(bpf_test_run_opts, opts);
  if (dataLen) {
    opts.data_in = data.Data();
    opts.data_size_in = static_cast<__u32>(dataLen);
    opts.data_out = dataOut.data();
    opts.data_size_out = static_cast<__u32>(dataOutLen);
  }
  if (ctxLen) {
    opts.ctx_in = ctx.Data();
    opts.ctx_size_in = static_cast<__u32>(ctxLen);
  }
  if (ctxOutLen) {
    opts.ctx_out = ctxOut.data();
    opts.ctx_size_out = static_cast<__u32>(ctxOutLen);
  }
  opts.repeat = static_cast<int>(numOf("repeat", 1));
  opts.flags = static_cast<__u32>(numOf("flags", 0));
  Check(env, bpf_prog_test_run_opts(Fd(env), &opts), op);
  Napi::Object out = Napi::Object::New(env);
  out.Set("retval", opts.retval);
  out.Set("duration", opts.duration);
  out.Set("dataOut", CopyBuffer(env, dataOut.data(), dataLen ? opts.data_size_out : 0));
  out.Set("ctxOut", CopyBuffer(env, ctxOut.data(), ctxOutLen ? opts.ctx_size_out : 0));
  return out;
}

Napi::Value Program::Pin(const Napi::CallbackInfo& info) {
  LogScope scope;
  std::string path = ArgString(info, 0, "pin " + label_);
  Check(info.Env(), bpf_obj_pin(Fd(info.Env()), path.c_str()), "pin " + label_ + " at " + path);
  return info.Env().Undefined();
}

Napi::Value Program::Close(const Napi::CallbackInfo& info) {
  fd_.Close();
  return info.Env().Undefined();
}

}  // namespace weir
