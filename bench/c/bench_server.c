/*
 * The C server of idl/bench.x for `npm run bench` (bench/rpc.ts): the reference the RPC
 * section's C client (bench_client.c) calls Null() on, as Firefly/LRPC measured.
 *
 * Built by test/interop/c-peer.ts's recipe (system rpcgen -N, gcc, -ltirpc) with this file
 * as the server procedures + main: `rpcgen -N -m` writes the dispatch routine bench_prog_1.
 *
 *   NULLPROC   answered by the generated dispatcher's procedure stub (nullproc_1_svc below)
 *   MAXARG     accepts its 1440 bytes and returns nothing
 *   MAXRESULT  returns n bytes (at most BENCH_MAXDATA) of a static buffer
 *   ECHO_RECORD returns its record
 *
 * main: bench_server
 *   Creates a TCP and a UDP transport on ephemeral ports, registers BENCH_PROG BENCH_V1 on
 *   both WITHOUT the portmapper, prints `tcp <port>\nudp <port>\n`, flushes, runs svc_run().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include "bench.h"

void bench_prog_1(struct svc_req *rqstp, SVCXPRT *transp);

static char payload[BENCH_MAXDATA];

void *nullproc_1_svc(struct svc_req *rqstp) {
	static char nothing;
	(void)rqstp;
	return &nothing;
}

void *maxarg_1_svc(bench_data arg, struct svc_req *rqstp) {
	static char nothing;
	(void)arg;
	(void)rqstp;
	return &nothing;
}

bench_data *maxresult_1_svc(u_int n, struct svc_req *rqstp) {
	static bench_data result;
	(void)rqstp;
	result.bench_data_len = n > BENCH_MAXDATA ? BENCH_MAXDATA : n;
	result.bench_data_val = payload;
	return &result;
}

bench_record *echo_record_1_svc(bench_record r, struct svc_req *rqstp) {
	static bench_record result;
	(void)rqstp;
	result = r;
	return &result;
}

int main(void) {
	for (unsigned i = 0; i < sizeof payload; i++) payload[i] = (char)(i * 131u + 7u);
	signal(SIGPIPE, SIG_IGN); /* a client that goes away must not kill the server */

	SVCXPRT *tcp = svctcp_create(RPC_ANYSOCK, 0, 0);
	if (tcp == NULL) {
		fprintf(stderr, "bench_server: svctcp_create failed\n");
		return 1;
	}
	if (!svc_register(tcp, BENCH_PROG, BENCH_V1, bench_prog_1, 0)) {
		fprintf(stderr, "bench_server: svc_register (tcp) failed\n");
		return 1;
	}
	SVCXPRT *udp = svcudp_create(RPC_ANYSOCK);
	if (udp == NULL) {
		fprintf(stderr, "bench_server: svcudp_create failed\n");
		return 1;
	}
	if (!svc_register(udp, BENCH_PROG, BENCH_V1, bench_prog_1, 0)) {
		fprintf(stderr, "bench_server: svc_register (udp) failed\n");
		return 1;
	}
	printf("tcp %u\nudp %u\n", (unsigned)tcp->xp_port, (unsigned)udp->xp_port);
	fflush(stdout);
	svc_run();
	fprintf(stderr, "bench_server: svc_run returned\n");
	return 1;
}
