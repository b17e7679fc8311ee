/* SPDX-License-Identifier: GPL-2.0 */
/*
 * testcni vxlan dataplane: the maps shared by the tc programs and user space.
 *
 * This header is the one description of every key and value layout. bpf/maps.ts encodes
 * entries for `bpftool map update` from it byte for byte; change both together.
 *
 * Byte order: fields named *_be are network order (addresses, as they appear in packets);
 * every other integer is host order (little-endian on x86_64 and arm64, the only targets).
 * Padding is explicit and must be zero.
 *
 * The maps are created by user space (`bpftool map create`, pinned per node) with the
 * node's configured sizes, then handed to `bpftool prog loadall ... map name NAME pinned
 * PATH`, which reuses them; the max_entries below are only the defaults of the object.
 */
#ifndef TESTCNI_MAPS_H
#define TESTCNI_MAPS_H

#include <linux/types.h>

/* Map names (at most 15 characters: the kernel's object name limit). */
#define TESTCNI_MAP_ENDPOINTS "testcni_eps"
#define TESTCNI_MAP_REMOTE    "testcni_remote"
#define TESTCNI_MAP_CONFIG    "testcni_cfg"

#define TESTCNI_DEFAULT_ENDPOINTS 16384
#define TESTCNI_DEFAULT_REMOTE    4096

/*
 * testcni_eps: BPF_MAP_TYPE_HASH, one entry per pod on this node.
 *   key   4 bytes: pod IPv4 address, network order
 *   value 16 bytes: struct endpoint
 */
struct endpoint_key {
	__be32 ip_be;
};

struct endpoint {
	__u32 ifindex;      /* host side of the pod's veth, in the node's namespace */
	__u8 pod_mac[6];    /* MAC of the pod's interface (destination when delivering) */
	__u8 host_mac[6];   /* MAC of the host veth (source when delivering) */
};

/*
 * testcni_remote: BPF_MAP_TYPE_LPM_TRIE (BPF_F_NO_PREALLOC), one entry per prefix reached
 * through another node: its pod block, and its underlay address as a /32 so pods reach
 * other nodes through the tunnel as well.
 *   key   8 bytes: struct remote_key (prefix length host order, address network order)
 *   value 12 bytes: struct remote
 */
struct remote_key {
	__u32 prefixlen;
	__be32 ip_be;
};

struct remote {
	__be32 node_ip_be;  /* the remote node's underlay IPv4: the outer destination */
	__u8 vtep_mac[6];   /* the remote VXLAN device's MAC: the inner destination it accepts */
	__u16 pad;
};

/*
 * testcni_cfg: BPF_MAP_TYPE_ARRAY with a single entry, key 0 (4 bytes, host order).
 *   value 16 bytes: struct config
 */
struct config {
	__u32 vxlan_ifindex; /* this node's VXLAN device (external / collect_md) */
	__u32 vni;           /* 24 bits */
	__u8 vxlan_mac[6];   /* this node's VXLAN device MAC: inner source */
	__u8 ttl;            /* outer TTL, 64 unless configured */
	__u8 pad;
};

#endif
