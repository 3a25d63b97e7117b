/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The forward stage's map: the interfaces weir attaches to, by ifindex (weir_ifaces). The
 * daemon writes one entry per workload interface when it attaches to it and removes it when
 * the interface goes. The first packet of a service flow looks up the interface the kernel
 * would route its backend to: a workload interface of this node means the flow stays on the
 * node, and both of its directions are then redirected interface to interface, past the
 * host stack (lib/forward.h). */
#ifndef WEIR_FORWARD_H
#define WEIR_FORWARD_H

#include <linux/types.h>

enum weir_iface_flags {
	WEIR_IFACE_WORKLOAD = 1 << 0, /* a pod's interface (host side): from_pod / to_pod */
};

struct weir_iface {
	__u32 flags; /* enum weir_iface_flags */
};

#endif
