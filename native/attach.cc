// native/: attaching programs to hooks: TCX links, clsact + cls_bpf filters, XDP links,
// cgroup links; plus the interface and network-namespace helpers attaching needs.
// Mode choices (auto fallbacks) are made in TypeScript; each function here does one thing.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "link.h"
#include "names.h"
#include "program.h"
#include "util.h"

namespace weir {
namespace {

bool Ingress(const Napi::CallbackInfo& info, size_t i, const std::string& op) {
  std::string dir = ArgString(info, i, op);
  if (dir != "ingress" && dir != "egress")
    ThrowErrno(info.Env(), EINVAL, op, "direction must be 'ingress' or 'egress', got '" + dir + "'");
  return dir == "ingress";
}

std::string Where(int64_t ifindex, bool ingress) {
  return "ifindex " + std::to_string(ifindex) + (ingress ? " ingress" : " egress");
}

}  // namespace

// attachTcx(program, ifindex, 'ingress'|'egress') -> Link. libbpf 1.1 knows nothing of
// TCX, so opts stay NULL and the kernel gets the raw attach type.
Napi::Value AttachTcx(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  std::string op = "attach tcx";
  Program* p = Program::From(env, info[0], op);
  int64_t ifindex = ArgInt(info, 1, op);
  bool ingress = Ingress(info, 2, op);
  op = "attach " + p->Label() + " via tcx at " + Where(ifindex, ingress);
  int type = ingress ? kAttachTcxIngress : kAttachTcxEgress;
  int fd = Check(
      env, bpf_link_create(p->Fd(env), static_cast<int>(ifindex), static_cast<bpf_attach_type>(type), nullptr), op);
  return Link::NewOwned(env, fd, "tcx link (" + Where(ifindex, ingress) + ")");
}

// tcxQuery(ifindex, direction) -> [program ids], in run order.
Napi::Value TcxQuery(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  std::string op = "query tcx";
  int64_t ifindex = ArgInt(info, 0, op);
  bool ingress = Ingress(info, 1, op);
  op += " at " + Where(ifindex, ingress);
  std::vector<__u32> ids(64);
  __u32 cnt = ids.size(), flags = 0;
  Check(env,
        bpf_prog_query(static_cast<int>(ifindex),
                       static_cast<bpf_attach_type>(ingress ? kAttachTcxIngress : kAttachTcxEgress), 0, &flags,
                       ids.data(), &cnt),
        op);
  Napi::Array out = Napi::Array::New(env, cnt);
  for (__u32 i = 0; i < cnt; i++) out.Set(i, ids[i]);
  return out;
}

// tcAttach(program, ifindex, direction, handle, priority, replace) -> {handle, priority, progId}.
// Creates the clsact qdisc when missing, then a direct-action cls_bpf filter. With
// replace=true the filter at handle/priority is swapped in place (BPF_TC_F_REPLACE).
Napi::Value TcAttach(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  std::string op = "attach cls_bpf";
  Program* p = Program::From(env, info[0], op);
  int64_t ifindex = ArgInt(info, 1, op);
  bool ingress = Ingress(info, 2, op);
  __u32 handle = static_cast<__u32>(ArgInt(info, 3, op, 0, false));
  __u32 priority = static_cast<__u32>(ArgInt(info, 4, op, 0, false));
  bool replace = HasArg(info, 5) && info[5].ToBoolean().Value();
  op = (replace ? "replace " : "attach ") + p->Label() + " via cls_bpf at " + Where(ifindex, ingress);
  DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex),
                      .attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
  if (!replace) {
    int ret = bpf_tc_hook_create(&hook);
    if (ret < 0 && ret != -EEXIST) Check(env, ret, op + " (create clsact qdisc)");
  }
  DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = p->Fd(env),
                      .flags = replace ? static_cast<__u32>(BPF_TC_F_REPLACE) : 0u, .handle = handle,
                      .priority = priority);
  Check(env, bpf_tc_attach(&hook, &opts), op);
  Napi::Object out = Napi::Object::New(env);
  out.Set("handle", opts.handle);
  out.Set("priority", opts.priority);
  out.Set("progId", opts.prog_id);
  return out;
}

// tcDetach(ifindex, direction, handle, priority): removes one cls_bpf filter.
Napi::Value TcDetach(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  std::string op = "detach cls_bpf";
  int64_t ifindex = ArgInt(info, 0, op);
  bool ingress = Ingress(info, 1, op);
  __u32 handle = static_cast<__u32>(ArgInt(info, 2, op));
  __u32 priority = static_cast<__u32>(ArgInt(info, 3, op));
  op += " at " + Where(ifindex, ingress) + " handle " + std::to_string(handle) + " prio " + std::to_string(priority);
  DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex),
                      .attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
  DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = handle, .priority = priority);
  Check(env, bpf_tc_detach(&hook, &opts), op);
  return env.Undefined();
}

// tcQuery(ifindex, direction, handle, priority) -> program id, or null when no filter is there.
Napi::Value TcQuery(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  std::string op = "query cls_bpf";
  int64_t ifindex = ArgInt(info, 0, op);
  bool ingress = Ingress(info, 1, op);
  DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex),
                      .attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
  DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = static_cast<__u32>(ArgInt(info, 2, op)),
                      .priority = static_cast<__u32>(ArgInt(info, 3, op)));
  int ret = bpf_tc_query(&hook, &opts);
  if (ret == -ENOENT || ret == -EINVAL) return env.Null();  // no qdisc, or no such filter
  Check(env, ret, op + " at " + Where(ifindex, ingress));
  return Napi::Number::New(env, opts.prog_id);
}

// attachXdp(program, ifindex, flags) -> Link. flags: XDP_FLAGS_DRV_MODE (4) or SKB_MODE (2).
Napi::Value AttachXdp(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  std::string op = "attach xdp";
  Program* p = Program::From(env, info[0], op);
  int64_t ifindex = ArgInt(info, 1, op);
  __u32 flags = static_cast<__u32>(ArgInt(info, 2, op, 0, false));
  std::string mode = flags & 4 ? "native" : flags & 2 ? "generic" : "default";
  op = "attach " + p->Label() + " via xdp (" + mode + ") at ifindex " + std::to_string(ifindex);
  DECLARE_LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = flags);
  int fd = Check(env, bpf_link_create(p->Fd(env), static_cast<int>(ifindex), BPF_XDP, &opts), op);
  return Link::NewOwned(env, fd, "xdp link (ifindex " + std::to_string(ifindex) + ", " + mode + ")");
}

// attachCgroup(program, cgroupDir, attachType?) -> Link. The attach type defaults to the
// program's expected attach type from its object (cgroup/connect4 -> cgroup_inet4_connect).
Napi::Value AttachCgroup(const Napi::CallbackInfo& info) {
  LogScope scope;
  Napi::Env env = info.Env();
  std::string op = "attach to cgroup";
  Program* p = Program::From(env, info[0], op);
  std::string dir = ArgString(info, 1, op);
  int type = p->ExpectedAttachType();
  if (HasArg(info, 2)) {
    std::string name = ArgString(info, 2, op);
    type = AttachTypeFromName(name);
    if (type < 0) ThrowErrno(env, EINVAL, op, "unknown attach type '" + name + "'");
  }
  if (type < 0) ThrowErrno(env, EINVAL, op, p->Label() + " has no expected attach type: pass one");
  op = "attach " + p->Label() + " to cgroup " + dir + " as " + AttachTypeName(type);
  int cg = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cg < 0) ThrowErrno(env, errno, op, "open cgroup directory");
  int fd = bpf_link_create(p->Fd(env), cg, static_cast<bpf_attach_type>(type), nullptr);
  ::close(cg);
  Check(env, fd, op);
  return Link::NewOwned(env, fd, "cgroup link (" + dir + ", " + AttachTypeName(type) + ")");
}

Napi::Value IfNameToIndex(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0, "find interface");
  unsigned idx = if_nametoindex(name.c_str());
  if (!idx) ThrowErrno(info.Env(), errno, "find interface " + name);
  return Napi::Number::New(info.Env(), idx);
}

// netnsEnter(path) -> fd of the namespace the thread was in, for netnsRestore(fd).
// Only the calling (JS main) thread moves; callers must restore before yielding.
Napi::Value NetnsEnter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info, 0, "enter netns");
  int self = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) ThrowErrno(env, errno, "enter netns " + path, "open current netns");
  int target = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int e = errno;
    ::close(self);
    ThrowErrno(env, e, "enter netns " + path);
  }
  int ret = setns(target, CLONE_NEWNET);
  int e = errno;
  ::close(target);
  if (ret < 0) {
    ::close(self);
    ThrowErrno(env, e, "enter netns " + path);
  }
  return Napi::Number::New(env, self);
}

Napi::Value NetnsRestore(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = static_cast<int>(ArgInt(info, 0, "restore netns"));
  int ret = setns(fd, CLONE_NEWNET);
  int e = errno;
  ::close(fd);
  if (ret < 0) ThrowErrno(env, e, "restore netns");
  return env.Undefined();
}

}  // namespace weir
