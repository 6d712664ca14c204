// SPDX-License-Identifier: GPL-2.0-only OR MIT
//
// An XDP program that passes every frame. veth hands frames sent with
// XDP_TX or redirected to it to the far end only when that end runs NAPI,
// which an attached XDP program guarantees (drivers/net/veth.c); tests and
// the testbed attach this one to the far ends of their veth pairs.

#include <linux/bpf.h>

__attribute__((section("xdp"), used)) int uturn_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] __attribute__((section("license"), used)) = "Dual MIT/GPL";
