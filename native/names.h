// native/: kernel enum values (map, program, attach, link types) as the short names
// libbpf uses ('percpu_array', 'sched_cls', 'cgroup_inet4_connect'), including the ones
// newer than Debian's libbpf 1.1 (TCX, netkit) so a 6.x kernel's answers still read well.
#pragma once
#include <string>

namespace weir {

// Debian's uapi headers predate TCX.
constexpr int kAttachTcxIngress = 46;
constexpr int kAttachTcxEgress = 47;

std::string MapTypeName(unsigned t);
std::string ProgTypeName(unsigned t);
std::string AttachTypeName(unsigned t);
std::string LinkTypeName(unsigned t);
// A program's expected attach type as a name; '' when unset (0 means cgroup_inet_ingress
// only for cgroup_skb programs, and is libbpf's default for everything else).
std::string ExpectedAttachName(unsigned progType, unsigned attachType);
// Inverse of AttachTypeName; -1 when unknown.
int AttachTypeFromName(const std::string& name);

}  // namespace weir
