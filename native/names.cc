// native/: kernel enum values as names (see names.h).
#include "names.h"

#include <bpf/libbpf.h>

namespace weir {
namespace {

std::string Or(const char* s, const char* kind, unsigned t) {
  return s ? std::string(s) : std::string(kind) + "(" + std::to_string(t) + ")";
}

}  // namespace

std::string MapTypeName(unsigned t) { return Or(libbpf_bpf_map_type_str(static_cast<bpf_map_type>(t)), "map_type", t); }

std::string ProgTypeName(unsigned t) {
  if (t == 33) return "netfilter";
  return Or(libbpf_bpf_prog_type_str(static_cast<bpf_prog_type>(t)), "prog_type", t);
}

std::string AttachTypeName(unsigned t) {
  static const char* newer[] = {"netfilter",
                                "tcx_ingress",
                                "tcx_egress",
                                "trace_uprobe_multi",
                                "cgroup_unix_connect",
                                "cgroup_unix_sendmsg",
                                "cgroup_unix_recvmsg",
                                "cgroup_unix_getpeername",
                                "cgroup_unix_getsockname",
                                "netkit_primary",
                                "netkit_peer"};
  const char* s = libbpf_bpf_attach_type_str(static_cast<bpf_attach_type>(t));
  if (s) return s;
  if (t >= 45 && t < 45 + sizeof(newer) / sizeof(newer[0])) return newer[t - 45];
  return Or(nullptr, "attach_type", t);
}

std::string LinkTypeName(unsigned t) {
  static const char* newer[] = {"netfilter", "tcx", "uprobe_multi", "netkit", "sockmap"};
  const char* s = libbpf_bpf_link_type_str(static_cast<bpf_link_type>(t));
  if (s) return s;
  if (t >= 10 && t < 10 + sizeof(newer) / sizeof(newer[0])) return newer[t - 10];
  return Or(nullptr, "link_type", t);
}

std::string ExpectedAttachName(unsigned progType, unsigned attachType) {
  if (attachType == 0 && progType != BPF_PROG_TYPE_CGROUP_SKB) return "";
  return AttachTypeName(attachType);
}

int AttachTypeFromName(const std::string& name) {
  for (unsigned t = 0; t < 64; t++)
    if (AttachTypeName(t) == name) return static_cast<int>(t);
  return -1;
}

}  // namespace weir
