// SPDX-License-Identifier: GPL-2.0
/*
 * testcni vxlan mode: tc (direct-action) programs of the pod dataplane.
 *
 *   tcni_from_pod    ingress of the host side of every pod veth (drops IPv4 whose source is
 *                    not the pod's own address)
 *   tcni_from_vxlan  ingress of the node's external (collect_md) VXLAN device
 *   tcni_to_vxlan    egress of that VXLAN device (traffic the host stack routes into it)
 *
 * Map layouts: testcni_maps.h. Anything the programs do not handle goes to the normal
 * stack (TC_ACT_OK), which validates, routes and counts it as usual.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "testcni_maps.h"

char LICENSE[] SEC("license") = "GPL";

/* No `pinning`: user space pins into a per-node directory (see README.md). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TESTCNI_DEFAULT_ENDPOINTS);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint);
} testcni_eps SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, TESTCNI_DEFAULT_REMOTE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct remote_key);
	__type(value, struct remote);
} testcni_remote SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} testcni_cfg SEC(".maps");

#define L3_END (sizeof(struct ethhdr) + sizeof(struct iphdr))

/*
 * Netfilter conntrack, read through its kfunc: replies of connections the node's stack
 * translated (kube-proxy's Service DNAT, masquerade) must go back through the stack for the
 * reverse translation, so the programs leave those packets to it.
 */
struct nf_conn {
	unsigned long status;
} __attribute__((preserve_access_index));

struct bpf_ct_opts___local {
	__s32 netns_id;
	__s32 error;
	__u8 l4proto;
	__u8 dir;
	__u8 reserved[2];
};

extern struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *, struct bpf_sock_tuple *, __u32,
					 struct bpf_ct_opts___local *, __u32) __ksym __weak;
extern void bpf_ct_release(struct nf_conn *) __ksym __weak;

#define IPS_NAT_MASK ((1UL << 4) | (1UL << 5)) /* IPS_SRC_NAT | IPS_DST_NAT */

/*
 * The Ethernet and IPv4 headers of an IPv4 packet, bounds-checked, or -1 for anything else
 * (other protocols, truncated or malformed headers). Headers outside the linear part are
 * pulled in first, so a GSO packet is handled like any other.
 */
static __always_inline int ipv4_headers(struct __sk_buff *skb, struct ethhdr **eth, struct iphdr **ip)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;

	if (data + L3_END > end) {
		if (skb->len < L3_END || bpf_skb_pull_data(skb, L3_END) < 0)
			return -1;
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
		if (data + L3_END > end)
			return -1;
	}
	*eth = data;
	*ip = data + sizeof(struct ethhdr);
	if ((*eth)->h_proto != bpf_htons(ETH_P_IP))
		return -1;
	if ((*ip)->version != 4 || (*ip)->ihl < 5)
		return -1;
	/* A packet shorter than its header says is left to the stack to drop and count. */
	if (skb->len < sizeof(struct ethhdr) + (__u32)(*ip)->ihl * 4 ||
	    skb->len < sizeof(struct ethhdr) + (__u32)bpf_ntohs((*ip)->tot_len))
		return -1;
	return 0;
}

/* One routing hop: TTL minus one with an incremental checksum update (RFC 1624). */
static __always_inline void decrement_ttl(struct iphdr *ip)
{
	__u32 check = (__u32)ip->check + (__u32)bpf_htons(0x0100);

	ip->check = (__sum16)(check + (check >= 0xFFFF));
	ip->ttl--;
}

static __always_inline void set_macs(struct ethhdr *eth, const __u8 *src, const __u8 *dst)
{
	__builtin_memcpy(eth->h_source, src, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, dst, ETH_ALEN);
}

static __always_inline int deliver_local(struct ethhdr *eth, struct iphdr *ip, const struct endpoint *ep)
{
	set_macs(eth, ep->host_mac, ep->pod_mac);
	decrement_ttl(ip);
	return bpf_redirect_peer(ep->ifindex, 0);
}

/* True when conntrack knows this TCP/UDP flow as one the stack translated. */
static __always_inline int nat_by_stack(struct __sk_buff *skb, struct iphdr *ip)
{
	struct bpf_ct_opts___local opts = { .netns_id = BPF_F_CURRENT_NETNS, .l4proto = ip->protocol };
	struct bpf_sock_tuple tuple = {};
	void *end = (void *)(long)skb->data_end;
	__u16 *ports = (void *)ip + ip->ihl * 4;
	struct nf_conn *ct;
	int nat;

	if (!bpf_skb_ct_lookup || (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP))
		return 0;
	/* Fragments after the first carry no ports; the stack reassembles them anyway. */
	if (ip->frag_off & bpf_htons(0x1fff))
		return 1;
	if ((void *)(ports + 2) > end)
		return 1;
	tuple.ipv4.saddr = ip->saddr;
	tuple.ipv4.daddr = ip->daddr;
	tuple.ipv4.sport = ports[0];
	tuple.ipv4.dport = ports[1];
	ct = bpf_skb_ct_lookup(skb, &tuple, sizeof(tuple.ipv4), &opts, sizeof(opts));
	if (!ct)
		return 0;
	nat = (ct->status & IPS_NAT_MASK) != 0;
	bpf_ct_release(ct);
	return nat;
}

static __always_inline struct remote *remote_of(__be32 daddr)
{
	struct remote_key key = { .prefixlen = 32, .ip_be = daddr };

	return bpf_map_lookup_elem(&testcni_remote, &key);
}

/* Outer header of the tunnel: the remote node, this node's VNI and TTL. */
static __always_inline int set_tunnel(struct __sk_buff *skb, const struct remote *r, const struct config *cfg)
{
	struct bpf_tunnel_key key = {
		.tunnel_id = cfg->vni,
		.remote_ipv4 = bpf_ntohl(r->node_ip_be),
		.tunnel_ttl = cfg->ttl,
	};

	/* Zero outer UDP checksum over IPv4, as RFC 7348 recommends and kernel VXLAN does. */
	return bpf_skb_set_tunnel_key(skb, &key, sizeof(key), BPF_F_ZERO_CSUM_TX);
}

static __always_inline struct config *config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&testcni_cfg, &zero);
}

SEC("tc")
int tcni_from_pod(struct __sk_buff *skb)
{
	struct ethhdr *eth;
	struct iphdr *ip;

	if (ipv4_headers(skb, &eth, &ip) < 0)
		return TC_ACT_OK;
	/* A pod sends from its own address only: the veth it came from is that endpoint's. */
	struct endpoint_key sk = { .ip_be = ip->saddr };
	struct endpoint *src = bpf_map_lookup_elem(&testcni_eps, &sk);
	if (!src || src->ifindex != skb->ifindex)
		return TC_ACT_SHOT;
	/* The stack forwards it and answers with ICMP time exceeded. */
	if (ip->ttl <= 1)
		return TC_ACT_OK;

	struct endpoint_key ek = { .ip_be = ip->daddr };
	struct endpoint *ep = bpf_map_lookup_elem(&testcni_eps, &ek);
	if (ep)
		return nat_by_stack(skb, ip) ? TC_ACT_OK : deliver_local(eth, ip, ep);

	struct remote *r = remote_of(ip->daddr);
	struct config *cfg = config();
	if (!r || !cfg || cfg->vxlan_ifindex == 0 || nat_by_stack(skb, ip))
		return TC_ACT_OK;
	if (set_tunnel(skb, r, cfg) < 0)
		return TC_ACT_SHOT;
	set_macs(eth, cfg->vxlan_mac, r->vtep_mac);
	decrement_ttl(ip);
	return bpf_redirect(cfg->vxlan_ifindex, 0);
}

SEC("tc")
int tcni_from_vxlan(struct __sk_buff *skb)
{
	struct bpf_tunnel_key key = {};
	struct config *cfg = config();
	struct ethhdr *eth;
	struct iphdr *ip;

	/* An external device accepts every VNI on its port: only ours gets in. */
	if (!cfg || bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) < 0 || key.tunnel_id != cfg->vni)
		return TC_ACT_SHOT;
	if (ipv4_headers(skb, &eth, &ip) < 0 || ip->ttl <= 1)
		return TC_ACT_OK;

	struct endpoint_key ek = { .ip_be = ip->daddr };
	struct endpoint *ep = bpf_map_lookup_elem(&testcni_eps, &ek);
	if (!ep || nat_by_stack(skb, ip))
		return TC_ACT_OK;
	return deliver_local(eth, ip, ep);
}

SEC("tc")
int tcni_to_vxlan(struct __sk_buff *skb)
{
	struct bpf_tunnel_key key = {};
	struct ethhdr *eth;
	struct iphdr *ip;

	/* Redirected by tcni_from_pod, which set the key already. */
	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) == 0)
		return TC_ACT_OK;
	/* Routed here by the host stack: the key comes from the remote block of the destination. */
	if (ipv4_headers(skb, &eth, &ip) < 0)
		return TC_ACT_SHOT;
	struct remote *r = remote_of(ip->daddr);
	struct config *cfg = config();
	if (!r || !cfg)
		return TC_ACT_SHOT;
	if (set_tunnel(skb, r, cfg) < 0)
		return TC_ACT_SHOT;
	set_macs(eth, cfg->vxlan_mac, r->vtep_mac);
	return TC_ACT_OK;
}
