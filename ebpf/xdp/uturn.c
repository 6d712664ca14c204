// SPDX-License-Identifier: GPL-2.0-only OR MIT
//
// uturn's XDP fast path: ChannelData from a client becomes the peer's UDP
// datagram, and a peer's UDP datagram becomes ChannelData to the client,
// without the packet reaching a socket (RFC 8656 §12.5-§12.7 over UDP).
//
// The maps are the contract with the control plane (ebpf/src/lib.rs writes
// them; docs/xdp.md describes them). Anything this program is not sure about
// goes up with XDP_PASS, and the userspace relay answers as before: IP
// options, fragments, IPv6 extension headers, unknown 5-tuples or channels,
// a ChannelData length that is not exactly the UDP payload (padding,
// truncation), a route that needs a neighbour the kernel has not resolved,
// a result larger than the egress MTU.
//
// Dual-licensed (unlike the Rust code) because the kernel lets only
// GPL-compatible programs call bpf_fib_lookup; see `_license` at the bottom.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>

#define SEC(name) __attribute__((section(name), used))
#undef __always_inline
#define __always_inline inline __attribute__((always_inline))
// A BPF-to-BPF call: its own stack frame, so the per-family paths do not add
// up against the 512-byte stack limit.
#define __subprog static __attribute__((noinline))
// BTF map definitions, the layout loaders (aya, libbpf) read from ".maps".
#define __uint(name, val) int(*name)[val]
#define __type(name, val) typeof(val) *name

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define be16(x) __builtin_bswap16(x)
#else
#define be16(x) (x)
#endif

#define AF_INET 2
#define AF_INET6 10

// Helper declarations (the numbers come from enum bpf_func_id in linux/bpf.h).
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)BPF_FUNC_ktime_get_ns;
static long (*bpf_redirect)(__u32 ifindex, __u64 flags) = (void *)BPF_FUNC_redirect;
static long (*bpf_xdp_adjust_head)(struct xdp_md *ctx, int delta) = (void *)BPF_FUNC_xdp_adjust_head;
static long (*bpf_fib_lookup)(void *ctx, struct bpf_fib_lookup *params, int plen,
                              __u32 flags) = (void *)BPF_FUNC_fib_lookup;

// ChannelData header: channel number and length (RFC 8656 §12.4).
#define CHANNEL_HEADER_LEN 4
// Hop limit of the datagrams the relay originates (as a socket would).
#define RELAY_TTL 64

// Both families use 16-byte addresses; IPv4 is stored IPv4-mapped
// (::ffff:a.b.c.d), so one map per direction serves both.
struct client_key {
	__u8 client_addr[16];
	__u8 listener_addr[16];
	__be16 client_port;
	__be16 listener_port;
	__be16 channel;
	__u16 pad; // always 0
};

// (peer, relay): the key of peer-side rules and the value of client-side ones.
struct relay_tuple {
	__u8 peer_addr[16];
	__u8 relay_addr[16];
	__be16 peer_port;
	__be16 relay_port;
};

enum direction { TO_PEER = 0, TO_CLIENT = 1 };

// Per rule (keyed like the client side), per CPU.
struct rule_stats {
	__u64 packets[2]; // indexed by enum direction
	__u64 bytes[2];   // application payload bytes, as userspace counts them
	__u64 last_seen_ns; // CLOCK_MONOTONIC (bpf_ktime_get_ns)
};

// Why packets took which way; the loader reads these for metrics and tests.
enum event {
	EV_TO_PEER = 0,
	EV_TO_CLIENT,
	EV_PASS_LENGTH,   // ChannelData length does not match the UDP payload
	EV_PASS_FIB,      // no route, blackhole, ... : userspace decides
	EV_PASS_FWD_DISABLED, // forwarding is off on the ingress interface
	EV_PASS_NO_NEIGH, // neighbour not resolved yet: the stack resolves it
	EV_PASS_MTU,      // the result would exceed the egress MTU
	EV_PASS_HEADROOM, // bpf_xdp_adjust_head refused
	EV_PASS_CHECKSUM, // no UDP checksum on IPv6, or a partial one (see looks_partial)
	EV_COUNT,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct client_key);
	__type(value, struct relay_tuple);
} to_peer SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct relay_tuple);
	__type(value, struct client_key);
} to_client SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct client_key);
	__type(value, struct rule_stats);
} rule_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EV_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} events SEC(".maps");

static __always_inline void count(__u32 ev)
{
	__u64 *n = bpf_map_lookup_elem(&events, &ev);
	if (n)
		*n += 1;
}

static __always_inline void account(const struct client_key *key, enum direction dir, __u32 bytes)
{
	struct rule_stats *s = bpf_map_lookup_elem(&rule_stats, key);
	if (!s)
		return;
	// Per-CPU value: no other CPU writes it, so plain adds are exact.
	if (dir == TO_PEER) {
		s->packets[TO_PEER] += 1;
		s->bytes[TO_PEER] += bytes;
	} else {
		s->packets[TO_CLIENT] += 1;
		s->bytes[TO_CLIENT] += bytes;
	}
	s->last_seen_ns = bpf_ktime_get_ns();
}

// One's complement arithmetic on 16-bit words as they lie in memory (the
// sum is byte-order independent as long as every word is read the same way).
static __always_inline __u32 csum_add(__u32 sum, __u16 word)
{
	return sum + word;
}

static __always_inline __u32 csum_sub(__u32 sum, __u16 word)
{
	return sum + (__u16)~word;
}

static __always_inline __u32 csum_add32(__u32 sum, __u32 word)
{
	return sum + (word & 0xffff) + (word >> 16);
}

static __always_inline __u32 csum_sub32(__u32 sum, __u32 word)
{
	return csum_sub(csum_sub(sum, word & 0xffff), word >> 16);
}

static __always_inline __u32 csum_add_addr(__u32 sum, const __u8 *a)
{
	const __u16 *w = (const __u16 *)a;
#pragma unroll
	for (int i = 0; i < 8; i++)
		sum = csum_add(sum, w[i]);
	return sum;
}

static __always_inline __u32 csum_sub_addr(__u32 sum, const __u8 *a)
{
	const __u16 *w = (const __u16 *)a;
#pragma unroll
	for (int i = 0; i < 8; i++)
		sum = csum_sub(sum, w[i]);
	return sum;
}

static __always_inline __u16 csum_fold(__u32 sum)
{
	// At most a few dozen words were added, so two folds reach 16 bits.
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'). Starts an update of checksum `check`.
static __always_inline __u32 csum_start(__u16 check)
{
	return (__u16)~check;
}

// UDP transmits a computed 0 as all ones (RFC 768); 0 means "no checksum".
static __always_inline __u16 udp_csum_final(__u32 sum)
{
	__u16 c = csum_fold(sum);
	return c ? c : 0xffff;
}

// A sender on the same host whose device offloads checksums (veth does)
// hands over CHECKSUM_PARTIAL frames: the UDP checksum field holds only the
// folded pseudo-header sum, for the hardware to finish. XDP cannot see the
// skb's flag, and an incremental update of such a field yields garbage, so
// a checksum equal to the pseudo-header sum goes to the stack. A complete
// checksum equals it by chance for about 1 datagram in 65536, which then
// merely takes the userspace path.
static __always_inline int looks_partial(__u32 pseudo_sum, __u16 check)
{
	return check == (__u16)~csum_fold(pseudo_sum);
}

static __always_inline __u16 ipv4_header_csum(const struct iphdr *ip)
{
	const __u16 *w = (const __u16 *)ip;
	__u32 sum = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		if (i != 5) // the checksum field itself
			sum += w[i];
	return csum_fold(sum);
}

static __always_inline void map_v4(__u8 *dst, __be32 addr)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &addr, 4);
}

static __always_inline __u32 v4_pseudo_sum(const struct iphdr *ip, const struct udphdr *udp)
{
	__u32 sum = csum_add32(0, ip->saddr);
	sum = csum_add32(sum, ip->daddr);
	sum = csum_add(sum, be16(IPPROTO_UDP));
	return csum_add(sum, udp->len);
}

static __always_inline __be32 v4_of(const __u8 *a)
{
	__be32 v;
	__builtin_memcpy(&v, a + 12, 4);
	return v;
}

// Asks the kernel's FIB where `dst` goes from `src` (and the neighbour's
// MAC). Returns 0 when the packet can be sent, else the event to count.
static __always_inline int route(struct xdp_md *ctx, struct bpf_fib_lookup *fib)
{
	long rc = bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
	switch (rc) {
	case BPF_FIB_LKUP_RET_SUCCESS:
		return 0;
	case BPF_FIB_LKUP_RET_FWD_DISABLED:
		return EV_PASS_FWD_DISABLED;
	case BPF_FIB_LKUP_RET_NO_NEIGH:
		return EV_PASS_NO_NEIGH;
	case BPF_FIB_LKUP_RET_FRAG_NEEDED:
		return EV_PASS_MTU;
	default:
		return EV_PASS_FIB;
	}
}

static __always_inline int send(struct xdp_md *ctx, const struct bpf_fib_lookup *fib)
{
	if (fib->ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(fib->ifindex, 0);
}

// ---- IPv4 --------------------------------------------------------------

// The headers are copied to the stack, rewritten there and copied back to
// their new place. The verifier wants stack accesses aligned, so `pad` puts
// the IP header on a 4-byte boundary; eth..udp are contiguous.
struct v4_headers {
	__u16 pad;
	struct ethhdr eth;
	struct iphdr ip;
	struct udphdr udp;
};
#define V4_HDR_LEN (sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct udphdr))

__subprog int v4_to_peer(struct xdp_md *ctx, struct v4_headers *h, const struct client_key *key,
			    const struct relay_tuple *route_to)
{
	// The caller checked that the ChannelData length is the UDP payload's.
	__u16 chan_word = key->channel;
	__u16 udp_len = be16(h->udp.len);
	__u16 data_len = udp_len - sizeof(struct udphdr) - CHANNEL_HEADER_LEN;
	__u16 len_word = be16(data_len);
	__be32 src = v4_of(route_to->relay_addr);
	__be32 dst = v4_of(route_to->peer_addr);
	__be16 new_len = be16(udp_len - CHANNEL_HEADER_LEN);

	struct bpf_fib_lookup fib = {};
	fib.family = AF_INET;
	fib.l4_protocol = IPPROTO_UDP;
	fib.sport = route_to->relay_port;
	fib.dport = route_to->peer_port;
	fib.tot_len = sizeof(struct iphdr) + udp_len - CHANNEL_HEADER_LEN;
	fib.tos = h->ip.tos;
	fib.ipv4_src = src;
	fib.ipv4_dst = dst;
	fib.ifindex = ctx->ingress_ifindex;
	int ev = route(ctx, &fib);
	if (ev) {
		count(ev);
		return XDP_PASS;
	}

	// UDP checksum: the data moves 4 bytes towards the header, an even
	// distance, so its words keep their alignment and their sum. What
	// changes is the pseudo-header (addresses, length), the ports, the
	// length field and the removed ChannelData header words.
	if (h->udp.check) {
		__u32 sum = csum_start(h->udp.check);
		sum = csum_sub32(sum, h->ip.saddr);
		sum = csum_sub32(sum, h->ip.daddr);
		sum = csum_sub(sum, h->udp.source);
		sum = csum_sub(sum, h->udp.dest);
		sum = csum_sub(sum, h->udp.len); // header
		sum = csum_sub(sum, h->udp.len); // pseudo-header
		sum = csum_sub(sum, chan_word);
		sum = csum_sub(sum, len_word);
		sum = csum_add32(sum, src);
		sum = csum_add32(sum, dst);
		sum = csum_add(sum, route_to->relay_port);
		sum = csum_add(sum, route_to->peer_port);
		sum = csum_add(sum, new_len);
		sum = csum_add(sum, new_len);
		h->udp.check = udp_csum_final(sum);
	}
	h->udp.source = route_to->relay_port;
	h->udp.dest = route_to->peer_port;
	h->udp.len = new_len;
	h->ip.saddr = src;
	h->ip.daddr = dst;
	h->ip.tot_len = be16(be16(h->ip.tot_len) - CHANNEL_HEADER_LEN);
	h->ip.ttl = RELAY_TTL;
	h->ip.check = ipv4_header_csum(&h->ip);
	__builtin_memcpy(h->eth.h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(h->eth.h_source, fib.smac, ETH_ALEN);

	if (bpf_xdp_adjust_head(ctx, CHANNEL_HEADER_LEN)) {
		count(EV_PASS_HEADROOM);
		return XDP_PASS; // the packet is untouched: the headers live on the stack
	}
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (data + V4_HDR_LEN > data_end)
		return XDP_DROP; // cannot happen: the packet only lost its first 4 bytes
	__builtin_memcpy(data, &h->eth, V4_HDR_LEN);

	account(key, TO_PEER, data_len);
	count(EV_TO_PEER);
	return send(ctx, &fib);
}

__subprog int v4_to_client(struct xdp_md *ctx, struct v4_headers *h, const struct client_key *ck)
{
	__u16 udp_len = be16(h->udp.len);
	__u16 data_len = udp_len - sizeof(struct udphdr);
	__be32 src = v4_of(ck->listener_addr);
	__be32 dst = v4_of(ck->client_addr);
	__be16 new_len = be16(udp_len + CHANNEL_HEADER_LEN);
	__u16 cd_len = be16(data_len);

	struct bpf_fib_lookup fib = {};
	fib.family = AF_INET;
	fib.l4_protocol = IPPROTO_UDP;
	fib.sport = ck->listener_port;
	fib.dport = ck->client_port;
	fib.tot_len = sizeof(struct iphdr) + udp_len + CHANNEL_HEADER_LEN;
	fib.tos = h->ip.tos;
	fib.ipv4_src = src;
	fib.ipv4_dst = dst;
	fib.ifindex = ctx->ingress_ifindex;
	int ev = route(ctx, &fib);
	if (ev) {
		count(ev);
		return XDP_PASS;
	}

	// The mirror image of v4_to_peer: the data moves 4 bytes away from the
	// header and the ChannelData header words join the sum.
	if (h->udp.check) {
		__u32 sum = csum_start(h->udp.check);
		sum = csum_sub32(sum, h->ip.saddr);
		sum = csum_sub32(sum, h->ip.daddr);
		sum = csum_sub(sum, h->udp.source);
		sum = csum_sub(sum, h->udp.dest);
		sum = csum_sub(sum, h->udp.len);
		sum = csum_sub(sum, h->udp.len);
		sum = csum_add32(sum, src);
		sum = csum_add32(sum, dst);
		sum = csum_add(sum, ck->listener_port);
		sum = csum_add(sum, ck->client_port);
		sum = csum_add(sum, new_len);
		sum = csum_add(sum, new_len);
		sum = csum_add(sum, ck->channel);
		sum = csum_add(sum, cd_len);
		h->udp.check = udp_csum_final(sum);
	}
	h->udp.source = ck->listener_port;
	h->udp.dest = ck->client_port;
	h->udp.len = new_len;
	h->ip.saddr = src;
	h->ip.daddr = dst;
	h->ip.tot_len = be16(be16(h->ip.tot_len) + CHANNEL_HEADER_LEN);
	h->ip.ttl = RELAY_TTL;
	h->ip.check = ipv4_header_csum(&h->ip);
	__builtin_memcpy(h->eth.h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(h->eth.h_source, fib.smac, ETH_ALEN);

	if (bpf_xdp_adjust_head(ctx, -CHANNEL_HEADER_LEN)) {
		count(EV_PASS_HEADROOM);
		return XDP_PASS;
	}
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (data + V4_HDR_LEN + CHANNEL_HEADER_LEN > data_end)
		return XDP_DROP; // cannot happen: the packet grew by 4 bytes
	__builtin_memcpy(data, &h->eth, V4_HDR_LEN);
	__u16 *cd = data + V4_HDR_LEN;
	cd[0] = ck->channel;
	cd[1] = cd_len;

	account(ck, TO_CLIENT, data_len);
	count(EV_TO_CLIENT);
	return send(ctx, &fib);
}

__subprog int handle_ipv4(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct v4_headers h;
	if (data + V4_HDR_LEN > data_end)
		return XDP_PASS;
	__builtin_memcpy(&h.eth, data, V4_HDR_LEN);
	// Options, fragments and other protocols are the stack's business.
	if (h.ip.version != 4 || h.ip.ihl != 5 || h.ip.protocol != IPPROTO_UDP)
		return XDP_PASS;
	if (h.ip.frag_off & be16(0x3fff))
		return XDP_PASS;
	__u16 udp_len = be16(h.udp.len);
	if (udp_len < sizeof(struct udphdr) || be16(h.ip.tot_len) != sizeof(struct iphdr) + udp_len)
		return XDP_PASS;
	// The frame may carry Ethernet padding after the IP packet; never less.
	if (data + sizeof(struct ethhdr) + sizeof(struct iphdr) + udp_len > data_end)
		return XDP_PASS;

	// From a peer to a relay address?
	struct relay_tuple rt = {};
	map_v4(rt.peer_addr, h.ip.saddr);
	map_v4(rt.relay_addr, h.ip.daddr);
	rt.peer_port = h.udp.source;
	rt.relay_port = h.udp.dest;
	struct client_key *ck = bpf_map_lookup_elem(&to_client, &rt);
	if (ck) {
		if (h.udp.check && looks_partial(v4_pseudo_sum(&h.ip, &h.udp), h.udp.check)) {
			count(EV_PASS_CHECKSUM);
			return XDP_PASS;
		}
		return v4_to_client(ctx, &h, ck);
	}

	// ChannelData from a client to a listener?
	__u16 *cd = data + V4_HDR_LEN;
	if ((void *)(cd + 2) > data_end || udp_len < sizeof(struct udphdr) + CHANNEL_HEADER_LEN)
		return XDP_PASS;
	__u16 chan_word = cd[0];
	__u16 len_word = cd[1];
	// 0x4000-0x7FFF: the first byte range RFC 7983 gives ChannelData.
	if ((be16(chan_word) & 0xc000) != 0x4000)
		return XDP_PASS;
	struct client_key key = {};
	map_v4(key.client_addr, h.ip.saddr);
	map_v4(key.listener_addr, h.ip.daddr);
	key.client_port = h.udp.source;
	key.listener_port = h.udp.dest;
	key.channel = chan_word;
	struct relay_tuple *to = bpf_map_lookup_elem(&to_peer, &key);
	if (!to)
		return XDP_PASS;
	// Exactly the UDP payload: padding or truncation is userspace's call.
	if (be16(len_word) != udp_len - sizeof(struct udphdr) - CHANNEL_HEADER_LEN) {
		count(EV_PASS_LENGTH);
		return XDP_PASS;
	}
	if (h.udp.check && looks_partial(v4_pseudo_sum(&h.ip, &h.udp), h.udp.check)) {
		count(EV_PASS_CHECKSUM);
		return XDP_PASS;
	}
	return v4_to_peer(ctx, &h, &key, to);
}

// ---- IPv6 --------------------------------------------------------------

struct v6_headers {
	__u16 pad;
	struct ethhdr eth;
	struct ipv6hdr ip;
	struct udphdr udp;
};
#define V6_HDR_LEN (sizeof(struct ethhdr) + sizeof(struct ipv6hdr) + sizeof(struct udphdr))

// RFC 8200 §8.1: addresses, 32-bit length, 24 zero bits and next header.
static __always_inline __u32 v6_pseudo_sum(const struct ipv6hdr *ip, const struct udphdr *udp)
{
	__u32 sum = csum_add_addr(0, (const __u8 *)&ip->saddr);
	sum = csum_add_addr(sum, (const __u8 *)&ip->daddr);
	sum = csum_add(sum, be16(IPPROTO_UDP));
	return csum_add(sum, udp->len);
}

__subprog int v6_to_peer(struct xdp_md *ctx, struct v6_headers *h, const struct client_key *key,
			    const struct relay_tuple *route_to)
{
	// The caller checked that the ChannelData length is the UDP payload's.
	__u16 chan_word = key->channel;
	__u16 udp_len = be16(h->udp.len);
	__u16 data_len = udp_len - sizeof(struct udphdr) - CHANNEL_HEADER_LEN;
	__u16 len_word = be16(data_len);
	__be16 new_len = be16(udp_len - CHANNEL_HEADER_LEN);

	struct bpf_fib_lookup fib = {};
	fib.family = AF_INET6;
	fib.l4_protocol = IPPROTO_UDP;
	fib.sport = route_to->relay_port;
	fib.dport = route_to->peer_port;
	fib.tot_len = sizeof(struct ipv6hdr) + udp_len - CHANNEL_HEADER_LEN;
	__builtin_memcpy(fib.ipv6_src, route_to->relay_addr, 16);
	__builtin_memcpy(fib.ipv6_dst, route_to->peer_addr, 16);
	fib.ifindex = ctx->ingress_ifindex;
	int ev = route(ctx, &fib);
	if (ev) {
		count(ev);
		return XDP_PASS;
	}

	// As for IPv4; IPv6 always carries a UDP checksum (RFC 8200 §8.1).
	__u32 sum = csum_start(h->udp.check);
	sum = csum_sub_addr(sum, (const __u8 *)&h->ip.saddr);
	sum = csum_sub_addr(sum, (const __u8 *)&h->ip.daddr);
	sum = csum_sub(sum, h->udp.source);
	sum = csum_sub(sum, h->udp.dest);
	sum = csum_sub(sum, h->udp.len);
	sum = csum_sub(sum, h->udp.len);
	sum = csum_sub(sum, chan_word);
	sum = csum_sub(sum, len_word);
	sum = csum_add_addr(sum, route_to->relay_addr);
	sum = csum_add_addr(sum, route_to->peer_addr);
	sum = csum_add(sum, route_to->relay_port);
	sum = csum_add(sum, route_to->peer_port);
	sum = csum_add(sum, new_len);
	sum = csum_add(sum, new_len);
	h->udp.check = udp_csum_final(sum);
	h->udp.source = route_to->relay_port;
	h->udp.dest = route_to->peer_port;
	h->udp.len = new_len;
	__builtin_memcpy(&h->ip.saddr, route_to->relay_addr, 16);
	__builtin_memcpy(&h->ip.daddr, route_to->peer_addr, 16);
	h->ip.payload_len = new_len;
	h->ip.hop_limit = RELAY_TTL;
	__builtin_memcpy(h->eth.h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(h->eth.h_source, fib.smac, ETH_ALEN);

	if (bpf_xdp_adjust_head(ctx, CHANNEL_HEADER_LEN)) {
		count(EV_PASS_HEADROOM);
		return XDP_PASS;
	}
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (data + V6_HDR_LEN > data_end)
		return XDP_DROP; // cannot happen: the packet only lost its first 4 bytes
	__builtin_memcpy(data, &h->eth, V6_HDR_LEN);

	account(key, TO_PEER, data_len);
	count(EV_TO_PEER);
	return send(ctx, &fib);
}

__subprog int v6_to_client(struct xdp_md *ctx, struct v6_headers *h, const struct client_key *ck)
{
	__u16 udp_len = be16(h->udp.len);
	__u16 data_len = udp_len - sizeof(struct udphdr);
	__be16 new_len = be16(udp_len + CHANNEL_HEADER_LEN);
	__u16 cd_len = be16(data_len);

	struct bpf_fib_lookup fib = {};
	fib.family = AF_INET6;
	fib.l4_protocol = IPPROTO_UDP;
	fib.sport = ck->listener_port;
	fib.dport = ck->client_port;
	fib.tot_len = sizeof(struct ipv6hdr) + udp_len + CHANNEL_HEADER_LEN;
	__builtin_memcpy(fib.ipv6_src, ck->listener_addr, 16);
	__builtin_memcpy(fib.ipv6_dst, ck->client_addr, 16);
	fib.ifindex = ctx->ingress_ifindex;
	int ev = route(ctx, &fib);
	if (ev) {
		count(ev);
		return XDP_PASS;
	}

	__u32 sum = csum_start(h->udp.check);
	sum = csum_sub_addr(sum, (const __u8 *)&h->ip.saddr);
	sum = csum_sub_addr(sum, (const __u8 *)&h->ip.daddr);
	sum = csum_sub(sum, h->udp.source);
	sum = csum_sub(sum, h->udp.dest);
	sum = csum_sub(sum, h->udp.len);
	sum = csum_sub(sum, h->udp.len);
	sum = csum_add_addr(sum, ck->listener_addr);
	sum = csum_add_addr(sum, ck->client_addr);
	sum = csum_add(sum, ck->listener_port);
	sum = csum_add(sum, ck->client_port);
	sum = csum_add(sum, new_len);
	sum = csum_add(sum, new_len);
	sum = csum_add(sum, ck->channel);
	sum = csum_add(sum, cd_len);
	h->udp.check = udp_csum_final(sum);
	h->udp.source = ck->listener_port;
	h->udp.dest = ck->client_port;
	h->udp.len = new_len;
	__builtin_memcpy(&h->ip.saddr, ck->listener_addr, 16);
	__builtin_memcpy(&h->ip.daddr, ck->client_addr, 16);
	h->ip.payload_len = new_len;
	h->ip.hop_limit = RELAY_TTL;
	__builtin_memcpy(h->eth.h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(h->eth.h_source, fib.smac, ETH_ALEN);

	if (bpf_xdp_adjust_head(ctx, -CHANNEL_HEADER_LEN)) {
		count(EV_PASS_HEADROOM);
		return XDP_PASS;
	}
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (data + V6_HDR_LEN + CHANNEL_HEADER_LEN > data_end)
		return XDP_DROP; // cannot happen: the packet grew by 4 bytes
	__builtin_memcpy(data, &h->eth, V6_HDR_LEN);
	__u16 *cd = data + V6_HDR_LEN;
	cd[0] = ck->channel;
	cd[1] = cd_len;

	account(ck, TO_CLIENT, data_len);
	count(EV_TO_CLIENT);
	return send(ctx, &fib);
}

__subprog int handle_ipv6(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct v6_headers h;
	if (data + V6_HDR_LEN > data_end)
		return XDP_PASS;
	__builtin_memcpy(&h.eth, data, V6_HDR_LEN);
	// Extension headers (fragments included) are the stack's business.
	if (h.ip.version != 6 || h.ip.nexthdr != IPPROTO_UDP)
		return XDP_PASS;
	__u16 udp_len = be16(h.udp.len);
	if (udp_len < sizeof(struct udphdr) || be16(h.ip.payload_len) != udp_len)
		return XDP_PASS;
	if (data + sizeof(struct ethhdr) + sizeof(struct ipv6hdr) + udp_len > data_end)
		return XDP_PASS;

	struct relay_tuple rt = {};
	__builtin_memcpy(rt.peer_addr, &h.ip.saddr, 16);
	__builtin_memcpy(rt.relay_addr, &h.ip.daddr, 16);
	rt.peer_port = h.udp.source;
	rt.relay_port = h.udp.dest;
	struct client_key *ck = bpf_map_lookup_elem(&to_client, &rt);
	if (ck) {
		if (!h.udp.check || looks_partial(v6_pseudo_sum(&h.ip, &h.udp), h.udp.check)) {
			count(EV_PASS_CHECKSUM);
			return XDP_PASS;
		}
		return v6_to_client(ctx, &h, ck);
	}

	__u16 *cd = data + V6_HDR_LEN;
	if ((void *)(cd + 2) > data_end || udp_len < sizeof(struct udphdr) + CHANNEL_HEADER_LEN)
		return XDP_PASS;
	__u16 chan_word = cd[0];
	__u16 len_word = cd[1];
	if ((be16(chan_word) & 0xc000) != 0x4000)
		return XDP_PASS;
	struct client_key key = {};
	__builtin_memcpy(key.client_addr, &h.ip.saddr, 16);
	__builtin_memcpy(key.listener_addr, &h.ip.daddr, 16);
	key.client_port = h.udp.source;
	key.listener_port = h.udp.dest;
	key.channel = chan_word;
	struct relay_tuple *to = bpf_map_lookup_elem(&to_peer, &key);
	if (!to)
		return XDP_PASS;
	if (be16(len_word) != udp_len - sizeof(struct udphdr) - CHANNEL_HEADER_LEN) {
		count(EV_PASS_LENGTH);
		return XDP_PASS;
	}
	if (!h.udp.check || looks_partial(v6_pseudo_sum(&h.ip, &h.udp), h.udp.check)) {
		count(EV_PASS_CHECKSUM);
		return XDP_PASS;
	}
	return v6_to_peer(ctx, &h, &key, to);
}

SEC("xdp")
int uturn_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto == be16(ETH_P_IP))
		return handle_ipv4(ctx);
	if (eth->h_proto == be16(ETH_P_IPV6))
		return handle_ipv6(ctx);
	return XDP_PASS;
}

// bpf_fib_lookup is GPL-only; the kernel checks this string.
char _license[] SEC("license") = "Dual MIT/GPL";
